#!/usr/bin/env bash
# Download the SentEval evaluation data into the folder this script lives in:
# 1. the STS sets (STS12-16, STS Benchmark, SICK) from the single archive SimCSE's evaluation uses, on the Hugging
#    Face Hub: https://huggingface.co/datasets/princeton-nlp/datasets-for-simcse/resolve/main/senteval.tar
#    (the official SemEval STS 2012-2016 test sets, the STS Benchmark and SICK, each under its own license; see the
#    LICENSE / readme files inside the extracted folders); installed as downloaded;
# 2. the transfer tasks (MR, CR, SUBJ, MPQA, SST2, TREC, MRPC) from the sources SentEval's get_transfer_data.bash
#    uses, converted as that script does, by python -m simcse_gs.data_files transfer --fetch (SHA-256 verified:
#    nothing is installed if a file differs). SICK-E uses SICK from step 1.
#
# Usage: bash SentEval/data/downstream/download_dataset.sh [--force] [--sts_only]
#   --force      download again even if the data is already present
#   --sts_only   only step 1
# PYTHON (default: python3, else python) is the interpreter with this repository's requirements installed.
set -euo pipefail

URL="https://huggingface.co/datasets/princeton-nlp/datasets-for-simcse/resolve/main/senteval.tar"
DEST="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$DEST/../../.." && pwd)"
FORCE=0
STS_ONLY=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        --sts_only) STS_ONLY=1 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

fetch_transfer_tasks() {
    local python="${PYTHON:-}"
    if [[ -z "$python" ]]; then
        python="$(command -v python3 || command -v python || true)"
    fi
    [[ -n "$python" ]] || { echo "error: no python found for the transfer tasks; set PYTHON." >&2; exit 1; }
    if [[ $FORCE -eq 1 ]]; then
        (cd "$REPO" && "$python" -c 'import sys; from simcse_gs.data_files import fetch_transfer; fetch_transfer(sys.argv[1])' "$DEST")
    else  # finds a complete copy in $DEST first, downloads only what is not there
        (cd "$REPO" && "$python" -m simcse_gs.data_files transfer --senteval_data "$DEST" --fetch >/dev/null)
    fi
    echo "Transfer tasks ready in $DEST (MR, CR, SUBJ, MPQA, SST/binary, TREC, MRPC)."
}

if [[ $FORCE -eq 0 && -d "$DEST/STS" && -d "$DEST/SICK" ]]; then
    echo "STS data already present in $DEST (STS/ and SICK/); use --force to download again."
    [[ $STS_ONLY -eq 1 ]] || fetch_transfer_tasks
    exit 0
fi

if command -v curl >/dev/null 2>&1; then
    fetch() { curl -fL --retry 3 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
    fetch() { wget -O "$2" "$1"; }
else
    echo "error: neither curl nor wget is installed; install one of them and rerun." >&2
    exit 1
fi
command -v tar >/dev/null 2>&1 || { echo "error: tar is not installed." >&2; exit 1; }

TMP="$(mktemp -d "$DEST/.download.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

echo "Downloading $URL"
fetch "$URL" "$TMP/senteval.tar"
echo "Extracting into a temporary folder"
tar -xf "$TMP/senteval.tar" -C "$TMP"
rm -f "$TMP/senteval.tar"

# The archive layout has varied; find the folder that holds STS/ and move its task folders here.
STS_DIR="$(find "$TMP" -maxdepth 4 -type d -name STS -print -quit)"
if [[ -z "$STS_DIR" ]]; then
    echo "error: the archive has no STS/ folder; its layout is unexpected:" >&2
    find "$TMP" -maxdepth 3 >&2
    exit 1
fi
SRC="$(dirname "$STS_DIR")"
for item in "$SRC"/*; do
    name="$(basename "$item")"
    [[ -d "$item" ]] || continue
    rm -rf "${DEST:?}/$name"
    mv "$item" "$DEST/$name"
    echo "  installed $DEST/$name"
done

for needed in STS/STS12-en-test STS/STS16-en-test STS/STSBenchmark SICK; do
    [[ -d "$DEST/$needed" ]] || { echo "error: $DEST/$needed is missing after extraction." >&2; exit 1; }
done
[[ $STS_ONLY -eq 1 ]] || fetch_transfer_tasks
echo "Done. Evaluate with --senteval_data $DEST (this is also the default location)."
