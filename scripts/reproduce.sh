#!/usr/bin/env bash
# Plain SimCSE rows of the original study's table: {unsup, sup} x {bert-base-uncased, roberta-base}.
# Needs a GPU (fp16, batch 512 for three of the four) and the data from scripts/download_data.sh.
#   bash scripts/reproduce.sh [run_experiment.sh options] [-- extra train.py flags]
#   CPU check of the same pipeline on the packaged MiniLM: CONFIGS="cpu-minilm-unsup-simcse cpu-minilm-sup-simcse" bash scripts/reproduce.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for name in ${CONFIGS:-unsup-bert-base-simcse unsup-roberta-base-simcse sup-bert-base-simcse sup-roberta-base-simcse}; do
  bash scripts/run_experiment.sh "configs/$name.yaml" "$@"
done
python scripts/make_table.py "${OUTPUT_ROOT:-results}"
