#!/usr/bin/env bash
# Download the STS evaluation data (STS12-16, STS Benchmark, SICK) into the folder this script lives in.
#
# Source: the single archive that SimCSE's evaluation uses, hosted on the Hugging Face Hub:
#   https://huggingface.co/datasets/princeton-nlp/datasets-for-simcse/resolve/main/senteval.tar
# It bundles the official SemEval STS 2012-2016 test sets, the STS Benchmark and SICK (each under its own
# license; see the LICENSE / readme files inside the extracted folders).
#
# Usage: bash SentEval/data/downstream/download_dataset.sh [--force]
#   --force   download again even if STS/ and SICK/ are already present
set -euo pipefail

URL="https://huggingface.co/datasets/princeton-nlp/datasets-for-simcse/resolve/main/senteval.tar"
DEST="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FORCE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

if [[ $FORCE -eq 0 && -d "$DEST/STS" && -d "$DEST/SICK" ]]; then
    echo "Data already present in $DEST (STS/ and SICK/); use --force to download again."
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
echo "Done. Evaluate with --senteval_data $DEST (this is also the default location)."
