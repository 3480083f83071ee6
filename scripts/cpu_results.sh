#!/usr/bin/env bash
# The CPU results matrix of docs/RESULTS.md: {unsup (Wikipedia), sup (SNLI triples)} x {plain SimCSE, GS} on the
# packaged MiniLM, plus the random-drop control (unsup, q = 0.1); 5 seeds, SimCSE's test protocol. Seeds run in the
# outer loop so that a stopped run leaves a balanced table; re-running skips finished runs. Small result files are
# copied to docs/results/.
#   bash scripts/cpu_results.sh                       # STEPS=60 SEEDS="1 2 3 4 5" OUTPUT_ROOT=results/cpu
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${STEPS:-60}"; SEEDS="${SEEDS:-1 2 3 4 5}"; OUTPUT_ROOT="${OUTPUT_ROOT:-results/cpu}"
CONFIGS="${CONFIGS:-cpu-minilm-unsup-simcse cpu-minilm-unsup-gs cpu-minilm-sup-simcse cpu-minilm-sup-gs cpu-minilm-unsup-random-drop}"
for seed in $SEEDS; do
  for name in $CONFIGS; do
    bash scripts/run_experiment.sh "configs/$name.yaml" --seeds "$seed" --output_root "$OUTPUT_ROOT" \
      --eval_flags "--protocol simcse --no_progress" -- --max_steps "$STEPS" --report_to tensorboard
    keep="docs/results/$(basename "$OUTPUT_ROOT")/$name/seed$seed"
    mkdir -p "$keep"
    cp "$OUTPUT_ROOT/$name/seed$seed/eval_test.json" "$OUTPUT_ROOT/$name/seed$seed/trainer_state.json" "$keep/"
  done
done
python scripts/make_table.py "docs/results/$(basename "$OUTPUT_ROOT")"
