"""Resuming: exact after SIGKILL, an incomplete checkpoint skipped by ``last``, missing or partial ones refused."""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train
from simcse_gs.model import SimCSEGSModel
from simcse_gs.training.resume import resolve_resume_checkpoint
from tests.conftest import REPO, SENTENCES, cli_error, history, train_args


def step_logs(out: Path) -> dict[int, dict]:
    return {h["step"]: h for h in history(out) if "loss" in h}


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), (key, (wa[key] - wb[key]).abs().max().item())


def _complete_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def test_resume_after_sigkill_continues_exactly(tiny_bert_dir, tmp_path):
    """GS on (Gumbel noise), dropout on, data crossing an epoch boundary; killed after checkpoint-3, resumed."""
    data = tmp_path / "train.txt"
    data.write_text("\n".join((SENTENCES * 3)[:16]) + "\n", encoding="utf-8")  # 4 steps per epoch
    common = ["--max_steps", "6", "--save_strategy", "steps", "--save_steps", "3", "--seed", "5", "--use_gs", "true",
              "--learning_rate", "1e-3", "--tau_decay_rate", "0.2", "--min_tau", "0.1"]

    # 1. python train.py, SIGKILLed as soon as checkpoint-3 is complete (trainer_state.json is written last)
    killed = tmp_path / "killed"
    log = (tmp_path / "killed.log").open("wb")
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *train_args(tiny_bert_dir, data, killed, *common)],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    state = killed / "checkpoint-3" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if _complete_json(state):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    log.close()
    assert _complete_json(state), (tmp_path / "killed.log").read_text()[-3000:]
    was_killed = proc.returncode == -signal.SIGKILL

    # 2. the uninterrupted run, in this process
    full = tmp_path / "full"
    train.main(train_args(tiny_bert_dir, data, full, *common))

    # 3. resume: in place with "last" when the kill landed, else from a copy of checkpoint-3 in a fresh folder
    if was_killed:
        assert not (killed / "model.safetensors").exists()  # it really stopped before the end
        assert resolve_resume_checkpoint("last", str(killed)) == str(killed / "checkpoint-3")
        resumed, resume_from = killed, "last"
    else:  # the run finished before the kill: still check resuming from its checkpoint-3
        warnings.warn("train.py finished before the SIGKILL landed; resuming from a copy of checkpoint-3", stacklevel=1)
        resumed = tmp_path / "resumed"
        shutil.copytree(killed / "checkpoint-3", resumed / "checkpoint-3")
        resume_from = str(resumed / "checkpoint-3")
    assert_same_weights(killed / "checkpoint-3", full / "checkpoint-3")  # subprocess and in-process agree so far
    train.main(train_args(tiny_bert_dir, data, resumed, *common, "--resume_from_checkpoint", resume_from))

    a, b = step_logs(full), step_logs(resumed)
    assert sorted(a) == list(range(1, 7))
    for step in (4, 5, 6):
        for key in ("loss", "contrastive_loss", "tau", "keep_prob", "keep_entropy", "learning_rate", "grad_norm",
                    "epoch"):
            assert b[step][key] == a[step][key], (step, key)  # bit for bit
    assert a[4]["tau"] == pytest.approx(math.exp(-0.2 * 3))  # step 4 used tau(global_step=3): schedule continued
    assert_same_weights(full, resumed)
    assert_same_weights(full / "checkpoint-6", resumed / "checkpoint-6")


def test_incomplete_checkpoint_is_skipped_by_last(tiny_bert_dir, tmp_path):
    """A checkpoint cut off while saving (no trainer_state.json) is never the one 'last' resumes from."""
    from simcse_gs.training.resume import CheckpointError, check_resume_checkpoint

    out = tmp_path / "run"
    ckpt = out / "checkpoint-2"
    SimCSEGSModel.from_backbone(tiny_bert_dir, use_gs=False).save_pretrained(ckpt)
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (ckpt / name).write_bytes(b"")  # only their presence is checked here
    (ckpt / "trainer_state.json").write_text("{}")
    shutil.copytree(ckpt, out / "checkpoint-4")
    (out / "checkpoint-4" / "trainer_state.json").unlink()  # killed while writing checkpoint-4
    assert resolve_resume_checkpoint("last", str(out)) == str(ckpt)
    with pytest.raises(CheckpointError, match=r"checkpoint-4 is incomplete.*checkpoints beside it: .*checkpoint-2"):
        check_resume_checkpoint(out / "checkpoint-4")


def test_resume_from_a_missing_or_partial_checkpoint(saved_model, tmp_path, capsys):
    argv = train_args(saved_model, "x.txt", tmp_path / "o")
    message = cli_error(capsys, [*argv, "--resume_from_checkpoint", str(tmp_path / "o" / "checkpoint-9")])
    assert "checkpoint-9: folder not found" in message
    partial = tmp_path / "o" / "checkpoint-2"
    shutil.copytree(saved_model, partial)
    (partial / "trainer_state.json").write_text("{}")
    message = cli_error(capsys, [*argv, "--resume_from_checkpoint", str(partial)])
    assert "has no optimizer.pt or scheduler.pt: it cannot resume training exactly" in message
    message = cli_error(capsys, [*argv, "--resume_from_checkpoint", "last"])
    assert "no complete checkpoint-N folder in --output_dir" in message
