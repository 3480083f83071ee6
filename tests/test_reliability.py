"""Reliability: exact resume after SIGKILL, same seed -> same numbers, a NaN loss keeps the last checkpoint intact.

Exactness. On one CPU with the same thread count, every kernel here is deterministic, and the Trainer restores the
optimizer, scheduler, ``global_step`` (so the Gumbel temperature), the data order and the python/numpy/torch RNG
states (``rng_state.pth``: dropout and the Gumbel noise both draw from torch's global generator) from a
checkpoint. So a resumed run equals an uninterrupted one bit for bit, and the resume test checks exactly that
(``==`` on every logged number and ``torch.equal`` on every weight; the killed run is a subprocess with the same
thread count as this one). Anything actually lost on resume (an RNG state, a data-order shift, a tau off by a step)
changes the numbers by far more (1e-3 and up on these losses).
"""

from __future__ import annotations

import hashlib
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
from tests.conftest import REPO, SENTENCES

STS_PAIRS = [  # (score, sentence 1, sentence 2)
    (5.0, "a man is playing a guitar .", "a man plays the guitar ."),
    (0.4, "the cat sat on the mat", "stocks fell sharply on monday"),
    (3.6, "two dogs run through a field", "two dogs are running in the grass"),
    (1.0, "it is raining", "a woman slices an onion"),
    (4.2, "a woman slices an onion in the kitchen", "a woman is cutting an onion"),
    (0.0, "stocks fell sharply on monday", "a man is playing a guitar ."),
    (2.5, "the cat sat on the mat", "a cat is sitting"),
    (3.0, "it is raining", "rain is falling outside"),
]


def write_tiny_sts(root: Path, stsb: bool = True, sick: bool = True) -> Path:
    """A tiny STS-B + SICK-R folder in SentEval's layout (same pairs in every split)."""
    if stsb:
        folder = root / "STS" / "STSBenchmark"
        folder.mkdir(parents=True)
        rows = [f"main-captions\tMSRvid\t2012test\t{i:04d}\t{s}\t{a}\t{b}" for i, (s, a, b) in enumerate(STS_PAIRS)]
        for split in ("train", "dev", "test"):
            (folder / f"sts-{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    if sick:
        folder = root / "SICK"
        folder.mkdir(parents=True)
        lines = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"]
        lines += [f"{i}\t{a}\t{b}\t{max(1.0, s)}\tNEUTRAL" for i, (s, a, b) in enumerate(STS_PAIRS)]
        for name in ("SICK_train.txt", "SICK_trial.txt", "SICK_test_annotated.txt"):
            (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def train_args(model_dir, train_file, out, *extra) -> list[str]:
    return ["--model_name_or_path", str(model_dir), "--train_file", str(train_file), "--output_dir", str(out),
            "--per_device_train_batch_size", "4", "--report_to", "none", "--logging_steps", "1",
            "--dataloader_num_workers", "0", "--disable_tqdm", "true", *extra]


def history(out: Path) -> list[dict]:
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


def step_logs(out: Path) -> dict[int, dict]:
    return {h["step"]: h for h in history(out) if "loss" in h}


def sha256s(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


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


@pytest.mark.parametrize("use_gs", ["false", "true"])
def test_same_seed_gives_the_same_losses_and_sts_numbers(tiny_bert_dir, unsup_file, tmp_path, use_gs):
    sts = write_tiny_sts(tmp_path / "sts")
    common = ["--max_steps", "2", "--save_strategy", "no", "--use_gs", use_gs, "--eval_strategy", "steps",
              "--eval_steps", "2", "--senteval_data", str(sts), "--learning_rate", "1e-3", "--eval_batch_size", "4"]
    runs = [train.main(train_args(tiny_bert_dir, unsup_file, tmp_path / f"r{i}", "--seed", "11", *common))
            for i in range(2)]
    assert runs[0]["eval_stsb_spearman"] == runs[1]["eval_stsb_spearman"]
    assert runs[0]["eval_sickr_spearman"] == runs[1]["eval_sickr_spearman"]
    assert math.isfinite(runs[0]["eval_stsb_spearman"])
    logs = [history(tmp_path / f"r{i}") for i in range(2)]
    drop = ("runtime", "per_second")  # wall-clock entries
    clean = [[{k: v for k, v in h.items() if not any(d in k for d in drop)} for h in hist] for hist in logs]
    assert clean[0] == clean[1]  # every logged loss, tau, keep statistic and STS number, exactly
    assert any("eval_stsb_spearman" in h for h in clean[0]) and any("loss" in h for h in clean[0])


def test_nan_loss_stops_training_and_keeps_the_last_checkpoint(tiny_bert_dir, unsup_file, tmp_path, monkeypatch,
                                                               capsys):
    out = tmp_path / "out"
    ckpt = out / "checkpoint-2"
    original = SimCSEGSModel.forward
    calls = {"n": 0, "hashes": None}

    def forward_with_nan(self, *args, **kwargs):
        outputs = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:  # the third training step, right after checkpoint-2 was written
            calls["hashes"] = sha256s(ckpt)
            outputs.loss = outputs.loss * float("nan")
        return outputs

    monkeypatch.setattr(SimCSEGSModel, "forward", forward_with_nan)
    code = train.cli(train_args(tiny_bert_dir, unsup_file, out, "--max_steps", "6", "--save_strategy", "steps",
                                "--save_steps", "2", "--use_gs", "true"))
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("train.py: error:")]
    assert code == 1 and len(errors) == 1 and "Traceback" not in stderr
    assert errors[0].startswith("train.py: error: The loss is nan at training step 3 (after 2 optimizer steps")
    assert f"(the last is {ckpt})" in errors[0]
    assert calls["hashes"] and sha256s(ckpt) == calls["hashes"]  # not one byte of the good checkpoint changed
    assert not (out / "checkpoint-3").exists() and not (out / "model.safetensors").exists()
    monkeypatch.setattr(SimCSEGSModel, "forward", original)
    model = SimCSEGSModel.from_pretrained(ckpt)
    assert torch.isfinite(model.encode(SENTENCES)).all()
