#!/usr/bin/env bash
# Download SimCSE's training files (needs internet). Source: the SimCSE authors' copies on the Hugging Face Hub
# (princeton-nlp/datasets-for-simcse), as listed in SimCSE's data/download_wiki.sh and download_nli.sh.
#   wiki1m_for_simcse.txt  - 1M English Wikipedia sentences (unsupervised)
#   nli_for_simcse.csv     - SNLI+MNLI (sent0, sent1, hard_neg) triples (supervised)
# Usage: bash scripts/download_data.sh [DEST_DIR]   (default: data/)
set -euo pipefail
dest="${1:-data}"
base="https://huggingface.co/datasets/princeton-nlp/datasets-for-simcse/resolve/main"
mkdir -p "$dest"
fetch() {
  if command -v curl >/dev/null; then curl -fL --retry 3 -o "$2" "$1";
  elif command -v wget >/dev/null; then wget -O "$2" "$1";
  else echo "error: need curl or wget" >&2; exit 1; fi
}
for f in wiki1m_for_simcse.txt nli_for_simcse.csv; do
  if [ -s "$dest/$f" ]; then echo "$dest/$f already present"; continue; fi
  echo "downloading $f -> $dest/"
  fetch "$base/$f" "$dest/$f.part" && mv "$dest/$f.part" "$dest/$f"
done
echo "done: $(ls -1 "$dest" | tr '\n' ' ')"
