#!/usr/bin/env bash
# GS rows of the original study's table, with the original study's recipe (configs/original/*-gs.yaml, as its own
# scripts/gumbel_softmax.sh ran them): {unsup, sup} x {bert-base-uncased, roberta-base}, proxy DistilBERT /
# DistilRoBERTa. Needs a GPU (fp16) and the data from scripts/download_data.sh.
#   bash scripts/gumbel_softmax.sh [run_experiment.sh options] [-- extra train.py flags]
#   SimCSE paper's recipe instead: CONFIGS="simcse-paper/unsup-bert-gs ..." OUTPUT_ROOT=results/simcse-paper
#   CPU check on the packaged MiniLM: CONFIGS="cpu-minilm-unsup-gs cpu-minilm-sup-gs" bash scripts/gumbel_softmax.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OUTPUT_ROOT="${OUTPUT_ROOT:-results/original}"
for name in ${CONFIGS:-original/unsup-bert-gs original/unsup-roberta-gs original/sup-bert-gs original/sup-roberta-gs}; do
  bash scripts/run_experiment.sh "configs/$name.yaml" "$@"
done
python scripts/make_table.py "$OUTPUT_ROOT"
