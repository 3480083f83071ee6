#!/usr/bin/env bash
# Keep-rate control sweep of docs/RESULTS.md: unsupervised GS on the packaged MiniLM with the penalty
# λ (mean keep probability - r)^2 for r in RATES, SEEDS seeds, STEPS steps; evaluated on STS-B dev + SICK-R dev
# (evaluation.py --mode dev), which also measures the inference keep rate. Then plots STS vs keep rate.
#   bash scripts/keep_rate_sweep.sh        # RATES="1.0 0.5 0.7 0.9 0.8" SEEDS="1 2 3" STEPS=40 WEIGHT=1.0
set -euo pipefail
cd "$(dirname "$0")/.."
RATES="${RATES:-1.0 0.5 0.7 0.9 0.8}"; SEEDS="${SEEDS:-1 2 3}"; STEPS="${STEPS:-40}"; WEIGHT="${WEIGHT:-1.0}"
OUTPUT_ROOT="${OUTPUT_ROOT:-results/sweep}"; KEEP="docs/results/sweep"
SENTEVAL_DATA=$(python -m simcse_gs.data_files sts) || exit 2   # $SENTEVAL_DATA, SentEval/data/downstream or the shared copy
for seed in $SEEDS; do
  for r in $RATES; do
    run="$OUTPUT_ROOT/r$r/seed$seed"
    if [ ! -f "$run/eval_dev.json" ]; then
      mkdir -p "$run"
      python train.py configs/cpu-minilm-unsup-gs.yaml --output_dir "$run" --overwrite_output_dir --seed "$seed" \
        --max_steps "$STEPS" --gs_target_keep_rate "$r" --gs_keep_rate_weight "$WEIGHT" > "$run/train_log.txt" 2>&1
      python evaluation.py --model_name_or_path "$run" --mode dev --senteval_data "$SENTEVAL_DATA" --no_progress \
        --output_json "$run/eval_dev.json.part" > "$run/eval_log.txt" 2>&1
      mv "$run/eval_dev.json.part" "$run/eval_dev.json"
    fi
    mkdir -p "$KEEP/r$r/seed$seed"
    cp "$run/eval_dev.json" "$run/trainer_state.json" "$KEEP/r$r/seed$seed/"
    echo "done r=$r seed=$seed"
  done
done
python scripts/plot_sweep.py "$KEEP" --output docs/figures/keep_rate_sweep.png --baseline 83.26  # MiniLM, dev avg
