#!/usr/bin/env bash
# The token-selection experiment of docs/RESULTS.md: STS (SimCSE's test protocol) against the inference keep rate r
# for learned selection (topk, hard-concrete), the IDF heuristic and random dropping, each trained and evaluated at
# the same r, in the [CLS] setting on the packaged MiniLM (configs/cpu-minilm-cls-*.yaml); r = 1 is plain SimCSE.
# Seeds run in the outer loop so that a stopped run leaves a balanced table; re-running skips finished runs.
#   bash scripts/selection_experiment.sh      # RATES="0.9 0.8 0.7 0.6" SEEDS="1 2 3" STEPS=60 PRECISION=bf16
#                                             # OUTPUT_ROOT=results/selection
# TRAIN_RATE=0.8 trains each method once per seed, at that rate, and evaluates the one checkpoint at every inference
# budget of RATES (evaluation.py --keep_budget r --prune): 4x fewer trainings, the cheaper design that
# docs/RESULTS.md's table used on 2 CPU cores. The folder <method>-r<r>/seed<S>/ then holds that evaluation only
# (its eval_test.json names the checkpoint it read). The two designs name their folders alike: give each its own
# OUTPUT_ROOT (docs/RESULTS.md used results/selection for TRAIN_RATE=0.8 and results/selection-matched for the rest).
# PRECISION=bf16 trains under bf16 autocast and encodes in bf16 (2x faster on CPUs with AVX-512 BF16 / AMX, and on
# GPUs: docs/PERFORMANCE.md); PRECISION=fp32 for full precision.
# Small result files are copied to KEEP_DIR (default docs/results/<basename of OUTPUT_ROOT>/); then:
#   python scripts/make_table.py docs/results/selection
#   python scripts/plot_pareto.py docs/results/selection --output docs/figures/keep_pareto.png
set -euo pipefail
cd "$(dirname "$0")/.."
RATES="${RATES:-0.9 0.8 0.7 0.6}"; SEEDS="${SEEDS:-1 2 3}"; STEPS="${STEPS:-60}"
METHODS="${METHODS:-topk hard-concrete idf-drop random-drop}"; OUTPUT_ROOT="${OUTPUT_ROOT:-results/selection}"
PRECISION="${PRECISION:-bf16}"
case "$PRECISION" in
  bf16) precision_flags=(--bf16 true --eval_precision bf16) ;;
  fp32) precision_flags=() ;;
  *) echo "error: PRECISION must be bf16 or fp32, got '$PRECISION'" >&2; exit 2 ;;
esac
keep_dir="${KEEP_DIR:-docs/results/$(basename "$OUTPUT_ROOT")}"

run() {  # run NAME CONFIG SEED EVAL_FLAGS [train.py flags...]
  local name="$1" config="$2" seed="$3" eval_flags="$4"; shift 4
  bash scripts/run_experiment.sh "$config" --seeds "$seed" --output_root "$OUTPUT_ROOT" --name "$name" \
    --eval_flags "--protocol simcse --no_progress --precision $PRECISION $eval_flags" -- --max_steps "$STEPS" \
    "${precision_flags[@]}" "$@"
  mkdir -p "$keep_dir/$name/seed$seed"
  cp "$OUTPUT_ROOT/$name/seed$seed/eval_test.json" "$OUTPUT_ROOT/$name/seed$seed/trainer_state.json" \
    "$keep_dir/$name/seed$seed/"
}

train_flags() {  # train_flags METHOD RATE: the flags that train METHOD at keep rate RATE
  local q; q=$(python -c "print(round(1 - $2, 6))")
  case "$1" in
    topk|hard-concrete) echo "--gs_target_keep_rate $2" ;;
    idf-drop|random-drop) echo "--token_drop_rate $q" ;;
    *) echo "error: unknown method '$1' (topk, hard-concrete, idf-drop, random-drop)" >&2; return 2 ;;
  esac
}

evaluate_at() {  # evaluate_at CHECKPOINT NAME SEED RATE: the checkpoint at inference budget RATE, into NAME/seedSEED
  local out="$OUTPUT_ROOT/$2/seed$3"
  mkdir -p "$out" "$keep_dir/$2/seed$3"
  if [ ! -f "$out/eval_test.json" ]; then
    echo "== $out: evaluating $1 at keep budget $4"
    python evaluation.py --model_name_or_path "$1" --mode test --output_json "$out/eval_test.json.part" \
      --protocol simcse --no_progress --precision "$PRECISION" --keep_budget "$4" --prune
    mv "$out/eval_test.json.part" "$out/eval_test.json"
  fi
  cp "$out/eval_test.json" "$keep_dir/$2/seed$3/"
}

for seed in $SEEDS; do
  run "simcse-r1.0" configs/cpu-minilm-cls-simcse.yaml "$seed" ""
  if [ -n "${TRAIN_RATE:-}" ]; then
    for method in $METHODS; do
      flags=$(train_flags "$method" "$TRAIN_RATE")
      # shellcheck disable=SC2086
      run "$method-r$TRAIN_RATE" "configs/cpu-minilm-cls-$method.yaml" "$seed" "--keep_budget $TRAIN_RATE --prune" $flags
      for r in $RATES; do
        [ "$r" = "$TRAIN_RATE" ] || evaluate_at "$OUTPUT_ROOT/$method-r$TRAIN_RATE/seed$seed" "$method-r$r" "$seed" "$r"
      done
    done
    continue
  fi
  for r in $RATES; do
    for method in $METHODS; do
      flags=$(train_flags "$method" "$r")
      # shellcheck disable=SC2086
      run "$method-r$r" "configs/cpu-minilm-cls-$method.yaml" "$seed" "--keep_budget $r --prune" $flags
    done
  done
done
python scripts/make_table.py "$keep_dir"
