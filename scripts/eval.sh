#!/usr/bin/env bash
# Evaluate checkpoints (or plain HF encoders) on the test protocol and write DIR/eval_test.json beside each
# checkpoint, where scripts/make_table.py finds it.
#   bash scripts/eval.sh CHECKPOINT [CHECKPOINT ...] [-- extra evaluation.py flags, e.g. --pooler avg]
#   SENTEVAL_DATA=/path/to/downstream bash scripts/eval.sh results/cpu-minilm-unsup-gs/seed*
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash scripts/eval.sh CHECKPOINT [...] [-- evaluation.py flags]" >&2; exit 2; }
ckpts=(); extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  ckpts+=("$1"); shift
done
for ckpt in "${ckpts[@]}"; do
  if [ -d "$ckpt" ]; then out="$ckpt/eval_test.json"; else out="results/$(echo "$ckpt" | tr '/' '_')/eval_test.json"; fi
  mkdir -p "$(dirname "$out")"
  python evaluation.py --model_name_or_path "$ckpt" --mode test ${SENTEVAL_DATA:+--senteval_data "$SENTEVAL_DATA"} \
    --output_json "$out" "${extra[@]}"
done
