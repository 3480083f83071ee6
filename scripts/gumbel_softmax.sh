#!/usr/bin/env bash
# GS rows of the original study's table: {unsup, sup} x {bert-base-uncased, roberta-base}, proxy DistilBERT /
# DistilRoBERTa. Needs a GPU and the data from scripts/download_data.sh.
#   bash scripts/gumbel_softmax.sh [run_experiment.sh options] [-- extra train.py flags]
#   CPU check on the packaged MiniLM: CONFIGS="cpu-minilm-unsup-gs cpu-minilm-sup-gs" bash scripts/gumbel_softmax.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for name in ${CONFIGS:-unsup-bert-base-gs unsup-roberta-base-gs sup-bert-base-gs sup-roberta-base-gs}; do
  bash scripts/run_experiment.sh "configs/$name.yaml" "$@"
done
python scripts/make_table.py "${OUTPUT_ROOT:-results}"
