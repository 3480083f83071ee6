"""DDP: embeddings are gathered across processes, so 2 processes == 1 process on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def run_worker(nproc: int, model_dir: str, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(WORKER), model_dir, str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return torch.load(out, weights_only=True)


@pytest.mark.slow
def test_two_processes_match_one_process(tiny_bert_dir, tmp_path):
    one = run_worker(1, tiny_bert_dir, tmp_path / "one.pt")
    two = run_worker(2, tiny_bert_dir, tmp_path / "two.pt")
    torch.testing.assert_close(two["loss"], one["loss"], atol=1e-5, rtol=1e-5)
    assert one["grads"].keys() == two["grads"].keys()
    for name, grad in one["grads"].items():
        torch.testing.assert_close(two["grads"][name], grad, atol=1e-5, rtol=1e-4, msg=name)
