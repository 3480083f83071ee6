"""SimCSETrainer: the keep-probability histogram, the same numbers for the same seed, a NaN loss stops training and
keeps the last checkpoint intact."""

from __future__ import annotations

import math

import pytest
import torch

import train
from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.keep import KeepStatsAccumulator
from simcse_gs.training.trainer import add_keep_histogram
from tests.conftest import SENTENCES, build, history, randomise_proxy_head, sha256s, train_args, write_tiny_sts


class _Writer:
    def __init__(self):
        self.calls = []

    def add_histogram(self, tag, values, step):
        self.calls.append((tag, values, step))


class _TBCallback:
    def __init__(self):
        self.tb_writer = _Writer()


def test_keep_stats_sample_is_bounded_and_the_histogram_is_a_no_op_without_tensorboard():
    acc = KeepStatsAccumulator(sample_size=100)
    torch.manual_seed(0)
    for _ in range(20):
        acc.update(torch.rand(4, 30), torch.ones(4, 30), torch.ones(4, 30, dtype=torch.bool))
    assert len(acc.prob_sample) == 100 and acc.tokens == 2400
    assert 0.3 < float(acc.prob_sample.mean()) < 0.7  # a uniform sample of U(0, 1) values
    assert len(KeepStatsAccumulator().prob_sample) == 0  # no sample unless asked
    assert not add_keep_histogram([object()], acc, step=3)  # no tb_writer: nothing happens
    callback = _TBCallback()
    assert add_keep_histogram([object(), callback], acc, step=3)
    tag, values, step = callback.tb_writer.calls[0]
    assert tag == "eval/keep_prob" and step == 3 and len(values) == 100


def test_trainer_evaluate_logs_the_keep_probability_histogram(tiny_bert_dir, tmp_path):
    from simcse_gs.evaluation.sts import STSEvaluator
    from simcse_gs.training.arguments import SimCSETrainingArguments
    from simcse_gs.training.trainer import SimCSETrainer

    class FakeEvaluator(STSEvaluator):
        def __init__(self):  # no SentEval data needed: encode a few sentences the way STSEvaluator does
            pass

        def __call__(self, model, keep_stats=None):
            stats = keep_stats if keep_stats is not None else KeepStatsAccumulator()
            model.encode(SENTENCES, batch_size=4, keep_stats=stats)
            return {"stsb_spearman": 0.0, **stats.compute()}

    model = build(tiny_bert_dir, use_gs=True)
    randomise_proxy_head(model)
    args = SimCSETrainingArguments(output_dir=str(tmp_path / "t"), report_to="none")
    trainer = SimCSETrainer(model=model, args=args, sts_evaluator=FakeEvaluator())
    metrics = trainer.evaluate()  # no tensorboard callback: no histogram, no error
    assert "eval_keep_prob" in metrics
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    writer = SummaryWriter(str(tmp_path / "tb"))
    trainer.add_callback(TensorBoardCallback(tb_writer=writer))
    trainer.evaluate()
    writer.flush()
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"histograms": 0})
    events.Reload()
    (histogram,) = events.Histograms("eval/keep_prob")
    n_decided = sum(len(model.tokenizer(s)["input_ids"]) - 2 for s in SENTENCES)
    assert histogram.step == 0 and histogram.histogram_value.num == n_decided
    assert histogram.histogram_value.sum / n_decided == pytest.approx(metrics["eval_keep_prob"], abs=1e-5)


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
