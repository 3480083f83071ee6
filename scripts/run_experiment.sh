#!/usr/bin/env bash
# Train one config for one or more seeds, then evaluate every run on the test protocol.
#
#   bash scripts/run_experiment.sh CONFIG [options] [-- extra train.py flags]
#
# options (each also settable through the environment variable in brackets):
#   --seeds "1 2 3"        seeds to run                               [SEEDS, default "42"]
#   --output_root DIR      runs go to DIR/<config name>/seed<S>/      [OUTPUT_ROOT, default results]
#   --name NAME            folder name instead of the config's        [NAME]
#   --model PATH_OR_NAME   backbone override                          [MODEL]
#   --train_file FILE      training data override                     [TRAIN_FILE]
#   --senteval_data DIR    STS data (else $SENTEVAL_DATA, else SentEval/data/downstream)
#   --eval_flags "..."     extra evaluation.py flags, e.g. "--protocol simcse" [EVAL_FLAGS]
#
# Each run leaves DIR/<name>/seed<S>/ with the checkpoint, train_log.txt, tensorboard logs and eval_test.json
# (read by scripts/make_table.py). A run whose eval_test.json exists is skipped, so the script can be re-run
# after an interruption; a half-finished run is resumed from its last checkpoint when it has one, and a run that
# finished training but not evaluation is only evaluated.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "run_experiment.sh: error: $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: bash scripts/run_experiment.sh CONFIG [--seeds \"1 2 3\"] [--output_root DIR] [-- train.py flags]"
config="$1"; shift
[ -f "$config" ] || die "config '$config' not found (see configs/)"

seeds="${SEEDS:-42}"; output_root="${OUTPUT_ROOT:-results}"; name="${NAME:-$(basename "$config" .yaml)}"
model="${MODEL:-}"; train_file="${TRAIN_FILE:-}"; senteval_data="${SENTEVAL_DATA:-}"; eval_flags="${EVAL_FLAGS:-}"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --output_root) output_root="$2"; shift 2 ;;
    --name) name="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --train_file) train_file="$2"; shift 2 ;;
    --senteval_data) senteval_data="$2"; shift 2 ;;
    --eval_flags) eval_flags="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) die "unknown option '$1' (put train.py flags after --)" ;;
  esac
done

# Fail early, before any training, when the data or the STS sets are missing.
if [ -z "$train_file" ]; then
  train_file=$(python - "$config" <<'PY'
import sys, yaml
print((yaml.safe_load(open(sys.argv[1])) or {}).get("train_file", ""))
PY
)
fi
# data/<name> of the config, or $SIMCSE_GS_DATA/<name>, or the shared copy (simcse_gs/data_files.py says which)
[ -n "$train_file" ] || die "the config names no train_file: pass --train_file FILE"
train_file=$(python -m simcse_gs.data_files train_file "$train_file") || exit 2
eval_data=$(python -m simcse_gs.data_files sts --senteval_data "$senteval_data") || exit 2
if [ -n "$model" ] && [ ! -d "$model" ] && [[ "$model" != */* ]] && [[ "$model" != *-* ]]; then
  die "model '$model' is neither a folder nor a hub name"
fi

for seed in $seeds; do
  run="$output_root/$name/seed$seed"
  if [ -f "$run/eval_test.json" ]; then echo "== $run: done already, skipping"; continue; fi
  mkdir -p "$run"
  args=("$config" --output_dir "$run" --seed "$seed" --train_file "$train_file" --senteval_data "$eval_data" --overwrite_output_dir)
  [ -n "$model" ] && args+=(--model_name_or_path "$model")
  last=$(ls -d "$run"/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -n 1 || true)
  [ -n "$last" ] && args+=(--resume_from_checkpoint "$last")
  if [ -f "$run/all_results.json" ] && [ -f "$run/model.safetensors" ]; then
    echo "== $run: trained already (all_results.json), evaluating only"
  else
    echo "== $run: training (python train.py ${args[*]} ${extra[*]:-})"
    python train.py "${args[@]}" "${extra[@]}" 2>&1 | tee "$run/train_log.txt"
  fi
  echo "== $run: evaluating"
  python evaluation.py --model_name_or_path "$run" --mode test --senteval_data "$eval_data" \
    --output_json "$run/eval_test.json.part" $eval_flags
  mv "$run/eval_test.json.part" "$run/eval_test.json"
done
