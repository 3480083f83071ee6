#!/usr/bin/env bash
# Plain SimCSE rows of the original study's table, with the original study's recipe (configs/original/*-plain.yaml,
# as its own scripts/reproduce.sh ran them): {unsup, sup} x {bert-base-uncased, roberta-base}.
# Needs a GPU (fp16) and the data from scripts/download_data.sh.
#   bash scripts/reproduce.sh [run_experiment.sh options] [-- extra train.py flags]
#   SimCSE paper's recipe instead: CONFIGS="simcse-paper/unsup-bert-plain ..." OUTPUT_ROOT=results/simcse-paper
#   CPU check of the same pipeline on the packaged MiniLM: CONFIGS="cpu-minilm-unsup-simcse cpu-minilm-sup-simcse" bash scripts/reproduce.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OUTPUT_ROOT="${OUTPUT_ROOT:-results/original}"
for name in ${CONFIGS:-original/unsup-bert-plain original/unsup-roberta-plain original/sup-bert-plain original/sup-roberta-plain}; do
  bash scripts/run_experiment.sh "configs/$name.yaml" "$@"
done
python scripts/make_table.py "$OUTPUT_ROOT"
