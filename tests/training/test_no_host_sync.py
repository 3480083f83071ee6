"""No host synchronisation inside a training step; logged means and the NaN stop unchanged by keeping values on the
device.

The recorder (``bench/device/sync_check.py``) sees every aten operation that makes the host wait for the device
(``.item()`` / ``float()`` / ``bool()`` all run ``_local_scalar_dense``; ``nonzero``, boolean-mask indexing,
tensors built from Python data) plus ``Tensor.tolist`` / ``numpy`` / ``cpu``. On a CPU none of them costs
anything, but each is a GPU stall, so a CPU test can guard the GPU property.
"""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch

import train
from simcse_gs.model import SimCSEGSModel
from tests.conftest import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from bench.device.sync_check import HostSyncRecorder, PhaseCallback, attach  # noqa: E402

# The one synchronisation left inside a step is transformers' own: before building the SDPA padding mask, every
# BERT/RoBERTa forward asks whether the batch has padding at all (`padding_mask.all()`), to drop the mask and allow
# the flash kernel when it has none. It is in the stock model (plain SimCSE pays it too), once per encoder forward.
TRANSFORMERS_MASK_CHECK = "_ignore_bidirectional_mask_sdpa"


def train_args(model_dir, train_file, out, *extra):
    return ["--model_name_or_path", str(model_dir), "--train_file", str(train_file), "--output_dir", str(out),
            "--per_device_train_batch_size", "4", "--report_to", "none", "--save_strategy", "no",
            "--dataloader_num_workers", "0", "--disable_tqdm", "true", *extra]


def test_the_recorder_sees_every_kind_of_sync():
    """Positive control: the recorder must catch what the training step must not do."""
    x = torch.arange(6.0)
    with HostSyncRecorder() as rec:
        float(x.sum())
        if (x > 2).any():
            x.mean().item()
        x[x > 2].sum()  # boolean-mask index (nonzero on the device)
        torch.tensor([1, 2])
        x.tolist()
        x.cpu()
        int(x.argmax())
        x * 2 + torch.where(x > 1, 3, x)  # not a sync: Python scalars go to the kernel as arguments
    ops = [e["op"] for e in rec.events]
    assert ops == ["item/float/int/bool", "item/float/int/bool", "item/float/int/bool", "boolean-mask index",
                   "tensor from host data", "Tensor.tolist", "Tensor.cpu", "item/float/int/bool"]
    assert all(e["where"] and "test_no_host_sync.py" in e["where"][0] for e in rec.events)
    assert torch.Tensor.tolist.__qualname__ == "TensorBase.tolist"  # patches undone


CASES = {
    "gs-soft-unsup-sdpa-bf16": ("unsup", ["--bf16", "true", "--gradient_accumulation_steps", "2"]),
    "gs-st-sup-eager-keep-rate": ("sup", ["--gs_estimator", "st", "--gs_attn_impl", "eager",
                                          "--hard_negative_weight", "0.5", "--gs_keep_rate_weight", "0.1",
                                          "--gs_target_keep_rate", "0.7"]),
    "gs-reinforce-unsup-mlm": ("unsup", ["--gs_estimator", "reinforce", "--do_mlm", "true"]),
    "gs-reinforce-batch-sup": ("sup", ["--gs_estimator", "reinforce", "--gs_reinforce_reward", "batch"]),
    "random-drop": ("unsup", ["--use_gs", "false", "--token_drop_rate", "0.2"]),
    "plain": ("unsup", ["--use_gs", "false", "--pooler_type", "cls", "--mlp_only_train", "true"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_no_host_sync_inside_a_training_step(case, tiny_bert_dir, unsup_file, triples_file, tmp_path):
    data, extra = CASES[case]
    steps = 3
    trainer = train.setup(train_args(tiny_bert_dir, unsup_file if data == "unsup" else triples_file, tmp_path / "o",
                                     "--max_steps", str(steps), "--logging_steps", str(steps), *extra))
    recorder = HostSyncRecorder()
    attach(trainer, PhaseCallback(recorder))
    with recorder:
        trainer.train()
    inside = recorder.inside_steps()
    ours = [e for e in inside if TRANSFORMERS_MASK_CHECK not in e["where"][0]]
    assert ours == [], json.dumps(recorder.summary(), indent=1)
    # what is left is transformers' mask check, once per encoder forward (backbone; the proxy under GS; MLM)
    micro_steps = steps * (2 if "--gradient_accumulation_steps" in extra else 1)
    forwards = 1 + (case.startswith("gs-")) + ("--do_mlm" in extra)
    assert len(inside) == micro_steps * forwards
    # and the boundary did read the logged values (the recorder is not blind there)
    assert any(e["phase"] == "boundary" and "log" in " ".join(e["where"]) for e in recorder.events)


def test_logged_values_are_the_means_of_the_per_step_values(tiny_bert_dir, unsup_file, tmp_path):
    """The statistics summed on the device give exactly the means of the per-step Python floats (as before)."""
    per_step: list[dict[str, float]] = []
    original = SimCSEGSModel.forward

    def recording_forward(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if self.training:
            per_step.append({k: float(out[k].detach()) for k in ("contrastive_loss", "keep_rate_loss", "keep_prob",
                                                        "keep_rate", "keep_entropy")})
        return out

    out_dir = tmp_path / "o"
    trainer = train.setup(train_args(tiny_bert_dir, unsup_file, out_dir, "--max_steps", "5", "--logging_steps", "2",
                                     "--gs_keep_rate_weight", "0.3", "--proxy_learning_rate", "0.05"))
    SimCSEGSModel.forward = recording_forward
    try:
        trainer.train()
    finally:
        SimCSEGSModel.forward = original
    trainer.save_state()
    logs = [h for h in json.loads((out_dir / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert [h["step"] for h in logs] == [2, 4]  # step 5's values are never logged (no log at the end)
    for log, window in zip(logs, (per_step[0:2], per_step[2:4])):
        for key in window[0]:
            assert log[key] == round(sum(step[key] for step in window) / len(window), 6), key
    assert len({round(s["keep_prob"], 6) for s in per_step}) > 1  # the proxy moved: the means are not trivial


def _nan_at(step: int, monkeypatch) -> dict:
    original = SimCSEGSModel.forward
    calls = {"n": 0}

    def forward_with_nan(self, *args, **kwargs):
        outputs = original(self, *args, **kwargs)
        if self.training:
            calls["n"] += 1
            if calls["n"] == step:
                outputs.loss = outputs.loss - float("inf")  # -inf: the check is for inf as well as NaN
        return outputs

    monkeypatch.setattr(SimCSEGSModel, "forward", forward_with_nan)
    return calls


class LogSpy:
    def __init__(self):
        self.logs = []

    def __call__(self, logs):
        self.logs.append(dict(logs))


def test_a_non_finite_loss_is_never_logged_and_stops_before_the_next_boundary(tiny_bert_dir, unsup_file, tmp_path,
                                                                              monkeypatch):
    from transformers import TrainerCallback

    from simcse_gs.training.trainer import NonFiniteLossError

    spy = LogSpy()

    class Spy(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            spy(logs)

    _nan_at(3, monkeypatch)
    out = tmp_path / "o"
    trainer = train.setup(train_args(tiny_bert_dir, unsup_file, out, "--max_steps", "8", "--logging_steps", "2"))
    trainer.add_callback(Spy())
    steps_run = []

    class Count(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            steps_run.append(state.global_step + 1)

    trainer.add_callback(Count())
    with pytest.raises(NonFiniteLossError, match=r"^The loss is -inf at training step 3 \(after 2 optimizer steps"):
        trainer.train()
    assert steps_run == [1, 2, 3, 4]  # stopped at the end of step 4, the first logging boundary after the bad step
    assert [log["loss"] for log in spy.logs] and all(math.isfinite(log["loss"]) for log in spy.logs)
    assert [log.get("epoch") for log in spy.logs] == [pytest.approx(2 / 6)]  # only step 2's log (24 sentences / 4)


def test_a_non_finite_last_step_saves_nothing(tiny_bert_dir, unsup_file, tmp_path, monkeypatch, capsys):
    _nan_at(3, monkeypatch)
    out = tmp_path / "o"
    code = train.cli(train_args(tiny_bert_dir, unsup_file, out, "--max_steps", "3", "--logging_steps", "50"))
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train.py: error:")]
    assert code == 1 and len(errors) == 1
    assert errors[0].startswith("train.py: error: The loss is -inf at training step 3 (after 2 optimizer steps, "
                                "epoch 0.333)")
    assert not (out / "model.safetensors").exists() and not (out / "trainer_state.json").exists()

