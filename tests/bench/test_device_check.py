"""bench/device/device_check.sh --cpu-smoke: every part of the GPU script runs (a few steps, tiny STS copy, on the
CPU), so the one GPU run it is written for does not fail on a typo. Part a uses the real MiniLM (carried as fp16,
cast back); the BERT-base-sized parts use tiny random models here."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile

import pytest
import torch

from tests.conftest import NLI, REPO, WIKI, minilm_path

PARTS = ("env", "a", "b", "c", "d", "e", "a2")


@pytest.mark.slow
def test_device_check_cpu_smoke(tmp_path, real_sts_data):
    minilm_path()
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "OUT": str(out), "DEVICE_WORK": str(work), "SMOKE_STS": real_sts_data,
           "SMOKE_WIKI": str(WIKI), "SMOKE_NLI": str(NLI),
           "DEVICE_DIR": str(tmp_path / "no-carried-folder")}  # as in CI: built from the packaged MiniLM
    proc = subprocess.run(["bash", "bench/device/device_check.sh", "--cpu-smoke"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    summary = (out / "summary.md").read_text()
    assert proc.returncode == 0, proc.stderr[-3000:]
    statuses = dict(re.findall(r"^## part (\w+): (\S+)", summary, flags=re.M))
    assert statuses == {p: "ok" for p in PARTS}, summary
    # what comes back from $OUT: one summary and one archive (the device returns at most 8 files)
    assert sorted(p.name for p in out.iterdir()) == ["details.tar.gz", "summary.md"]
    with tarfile.open(out / "details.tar.gz") as tar:
        names = tar.getnames()
    assert "results/a-eval.json" in names and "results/b/gpu_precision.json" in names
    assert all(f"logs/{p}.log" in names for p in PARTS)
    # part a: both runs trained, were evaluated and compared with the committed CPU runs
    assert re.search(r"\| unsup-gs-bf16 \|( -?\d+\.\d\d \|){8} \d+\.\d\d \| (yes|NO) \|", summary), summary
    assert "| CPU fp32 seed 1 |" in summary
    # part d: each config trained with a DistilBERT proxy, kept the best checkpoint, reloaded and evaluated
    for name in ("unsup-bert-gs", "sup-bert-gs"):  # the original recipe's rows (configs/original/)
        assert re.search(rf"\| {name} \| 4 steps \(proxy: distilbert\) \| checkpoint-[24], best ", summary), summary
    # part e: no host sync of ours inside a training step (transformers' mask check is the one left)
    syncs = re.findall(r"^\* (gs-bf16), 3 steps on cpu: (\d+) host syncs inside steps: (.*)$", summary, flags=re.M)
    assert [s[0] for s in syncs] == ["gs-bf16"]  # (the smoke runs the GS case only; the GPU run adds plain)
    assert all(place == "none" or "_ignore_bidirectional_mask_sdpa" in place
               for s in syncs for place in s[2].split("; "))
    # the MiniLM that part a trained is the carried fp16 weights cast back to float32
    from safetensors.torch import load_file

    cast = load_file(str(work / "minilm" / "model.safetensors"))
    original = load_file(os.path.join(minilm_path(), "model.safetensors"))
    assert cast.keys() == original.keys()
    for key, value in original.items():  # floats went through fp16; the int64 position ids are untouched
        expected = value.half().float() if value.is_floating_point() else value
        assert cast[key].dtype == value.dtype and torch.equal(cast[key], expected), key
