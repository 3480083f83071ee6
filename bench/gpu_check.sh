#!/usr/bin/env bash
# GPU precision / SDPA-kernel check (see bench/gpu_precision.py and docs/PERFORMANCE.md, section "GPU").
# Run from anywhere on a machine with a CUDA GPU, torch and transformers>=5; needs nothing else (no data, no
# checkpoint, no network). Results go to $OUT (or ./gpu_out): gpu_precision.{json,md}, the log, nvidia-smi.
# Designed to finish in < 5 minutes on an H100 (timing cases are skipped after --budget-s, default 240 s).
# Extra arguments are passed on, e.g. `bash bench/gpu_check.sh --batches 64` or `--quick --device cpu`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
export OUT
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{ nvidia-smi || echo "nvidia-smi not available"; } > "$OUT/nvidia-smi.txt" 2>&1
python - <<'EOF' 2>&1 | tee "$OUT/versions.txt"
import torch, transformers
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
print("transformers", transformers.__version__)
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
EOF
timeout 290 python -m bench.gpu_precision --out-dir "$OUT" "$@" 2>&1 | tee "$OUT/gpu_precision.log"
