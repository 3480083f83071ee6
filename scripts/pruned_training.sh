#!/usr/bin/env bash
# In-encoder pruning with training (issue 20, the deployment setting): unsupervised SimCSE on the packaged MiniLM
# (mean pooling, configs/cpu-minilm-unsup-simcse.yaml) with tokens pruned after layer 2 in training and at
# inference, each run evaluated on SimCSE's STS test protocol (fp32) with the checkpoint's own schedule:
#
#   learned   --prune_scorer learned   (a head on layer 2's hidden states, attention prior) + self-distillation
#   attention --prune_scorer attention (PoWER-BERT's score, fixed) + self-distillation: is the learned head worth it?
#   plain     no pruning, the same training: what the training alone does to MiniLM
#   learned_idf  --prune_scorer learned --prune_scorer_prior idf: the head corrects the IDF table (the best free
#                dropping scorer) instead of the attention score
#   idf       --prune_scorer idf (the training file's table, fixed) + self-distillation: learned_idf's control
#   merge     --prune_scorer merge (ToMe's matching, fixed: merges instead of dropping) + self-distillation
#
#   bash scripts/pruned_training.sh      # SEEDS="1 2 3" STEPS=500 LAYERS=2 RATES=0.5 DISTILL=1.0 PRECISION=fp32 LR=
#                                        # TEACHER=self OUTPUT_ROOT=results/pruned_training
#   TEACHER=initial bash scripts/pruned_training.sh   # distil towards a frozen copy of the starting MiniLM instead
#   TEACHER=initial DISTILL=4.0 METHODS=learned bash scripts/pruned_training.sh   # a heavier distillation (run name -d4.0)
#   TEACHER=initial DISTILL_LOSS=similarity METHODS=merge bash scripts/pruned_training.sh   # match in-batch similarity
#                                                      # distributions instead of embeddings (run name -similarity)
#   TEACHER=initial LR=1e-4 METHODS=idf bash scripts/pruned_training.sh   # another learning rate (run name -lr1e-4)
#   TEACHER=initial LR=3e-4 STEPS=1500 METHODS=merge bash scripts/pruned_training.sh   # longer (run name -steps1500)
#   TEACHER=initial LR=3e-4 SCORER_LR=3e-3 METHODS=learned_idf bash scripts/pruned_training.sh   # the learned head
#                                                      # at its own rate (run name -slr3e-3; learned methods only)
#   CONFIG=configs/cpu-minilm-cls-simcse.yaml OUTPUT_ROOT=results/pruned_training_cls TEACHER=initial \
#     bash scripts/pruned_training.sh                  # setting (b): SimCSE's [CLS] pooler, where training has room
# Seeds run in the outer loop so that a stopped run leaves a balanced table; re-running skips finished runs.
# Small result files (eval_test.json, trainer_state.json) are copied to KEEP_DIR (default docs/results/<basename of
# OUTPUT_ROOT>/); MODEL, TRAIN_FILE and SENTEVAL_DATA reach run_experiment.sh. Training runs in fp32 by default: on
# the Xeon host of docs/RESULTS.md (avx512_bf16, no AMX) the learned run took 1.73 s/step under --bf16 true (3 steps)
# against 1.2-1.3 s/step in fp32.
# Speed of a trained checkpoint against the backbone:
#   python -m bench.pruned_encode --threads 2 --methods attention@2=0.5 --checkpoint results/pruned_training/learned-l2-r0.5/seed1
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="${SEEDS:-1 2 3}"; STEPS="${STEPS:-500}"; LAYERS="${LAYERS:-2}"; RATES="${RATES:-0.5}"
CONFIG="${CONFIG:-configs/cpu-minilm-unsup-simcse.yaml}"
DISTILL="${DISTILL:-1.0}"; DISTILL_LOSS="${DISTILL_LOSS:-cosine}"; LR="${LR:-}"; TEACHER="${TEACHER:-self}"; OUTPUT_ROOT="${OUTPUT_ROOT:-results/pruned_training}"; PRECISION="${PRECISION:-fp32}"
METHODS="${METHODS:-learned attention plain}"
case "$PRECISION" in
  bf16) precision_flags=(--bf16 true) ;;
  fp32) precision_flags=() ;;
  *) echo "error: PRECISION must be bf16 or fp32, got '$PRECISION'" >&2; exit 2 ;;
esac
case "$DISTILL_LOSS" in cosine|similarity) ;;
  *) echo "error: DISTILL_LOSS must be cosine or similarity (--distill_loss), got '$DISTILL_LOSS'" >&2; exit 2 ;;
esac
keep_dir="${KEEP_DIR:-docs/results/$(basename "$OUTPUT_ROOT")}"
tag="l${LAYERS// /,}-r${RATES// /,}"; [ "$TEACHER" = self ] || tag="$tag-$TEACHER"; [ "$DISTILL" = 1.0 ] || tag="$tag-d$DISTILL"
[ "$DISTILL_LOSS" = cosine ] || tag="$tag-$DISTILL_LOSS"   # similarity: in-batch relations instead of points
lr_flags=(); if [ -n "$LR" ]; then lr_flags=(--learning_rate "$LR"); tag="$tag-lr$LR"; fi   # empty: the config's
SCORER_LR="${SCORER_LR:-}"; if [ -n "$SCORER_LR" ]; then tag="$tag-slr$SCORER_LR"; fi
steps_suffix=""; [ "$STEPS" = 500 ] || steps_suffix="-steps$STEPS"   # another budget is another run, not "done already"
tag="$tag$steps_suffix"

for seed in $SEEDS; do
  for method in $METHODS; do
    case "$method" in
      learned|attention|idf|learned_idf|merge) name="$method-$tag"
        # shellcheck disable=SC2086
        flags=(--prune_layers $LAYERS --prune_keep_rates $RATES --prune_scorer "${method%_idf}" --distill_weight "$DISTILL" --distill_loss "$DISTILL_LOSS" --distill_teacher "$TEACHER")
        if [ "$method" = learned_idf ]; then flags+=(--prune_scorer_prior idf); fi
        if [ -n "$SCORER_LR" ]; then
          case "$method" in learned*) flags+=(--scorer_learning_rate "$SCORER_LR") ;;
            *) echo "error: SCORER_LR is the learned head's learning rate; '$method' has none" >&2; exit 2 ;; esac
        fi ;;
      plain) name="plain${LR:+-lr$LR}$steps_suffix"; flags=() ;;
      *) echo "error: unknown method '$method' (learned, attention, plain, learned_idf, idf, merge)" >&2; exit 2 ;;
    esac
    bash scripts/run_experiment.sh "$CONFIG" --seeds "$seed" --output_root "$OUTPUT_ROOT" \
      --name "$name" --eval_flags "--protocol simcse --no_progress" -- --max_steps "$STEPS" --logging_steps 50 \
      "${precision_flags[@]}" "${lr_flags[@]}" "${flags[@]}"
    mkdir -p "$keep_dir/$name/seed$seed"
    cp "$OUTPUT_ROOT/$name/seed$seed/eval_test.json" "$OUTPUT_ROOT/$name/seed$seed/trainer_state.json" \
      "$keep_dir/$name/seed$seed/"
  done
done
