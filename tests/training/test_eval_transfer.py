"""--eval_transfer: the transfer tasks' validation accuracies (fast classifier) in the trainer's evaluation, logged as
eval_MR, ..., eval_avg_transfer beside the STS numbers; refused where training does not evaluate, and missing data
fails before any training step (tiny BERT, toy task folders)."""

from __future__ import annotations

import numpy as np
import pytest

from simcse_gs.evaluation.transfer import TRANSFER_SET, TransferEvaluator
from simcse_gs.training import train
from tests.conftest import cli_error, history, train_args, write_tiny_sts
from tests.senteval.conftest import write_evaluation_data

EVAL = ["--max_steps", "2", "--save_strategy", "no", "--eval_strategy", "steps", "--eval_steps", "2",
        "--eval_batch_size", "8"]


@pytest.fixture()
def downstream(tmp_path):
    return write_evaluation_data(tmp_path / "downstream", write_tiny_sts(tmp_path / "sts"))


def test_eval_transfer_logs_every_task_and_their_mean(tiny_bert_dir, unsup_file, downstream, tmp_path):
    out = tmp_path / "run"
    metrics = train.main(train_args(tiny_bert_dir, unsup_file, out, *EVAL, "--senteval_data", str(downstream),
                                    "--eval_transfer", "true"))
    accs = [metrics[f"eval_{task}"] for task in TRANSFER_SET]
    assert all(0 <= a <= 100 for a in accs)
    assert metrics["eval_avg_transfer"] == pytest.approx(np.mean(accs), abs=0.01)
    assert "eval_stsb_spearman" in metrics  # beside the STS numbers, not instead of them
    logged = [h for h in history(out) if "eval_avg_transfer" in h]
    assert logged and all(f"eval_{task}" in logged[0] for task in TRANSFER_SET)
    # the numbers are the fast protocol's validation accuracies of the trained model
    from simcse_gs.model_folder import load_checkpoint

    expected = TransferEvaluator(str(downstream), batch_size=8)(load_checkpoint(str(out)))
    assert {k: metrics[f"eval_{k}"] for k in expected} == expected


def test_eval_transfer_off_by_default(tiny_bert_dir, unsup_file, downstream, tmp_path):
    metrics = train.main(train_args(tiny_bert_dir, unsup_file, tmp_path / "run", *EVAL, "--senteval_data",
                                    str(downstream)))
    assert "eval_stsb_spearman" in metrics and not any(k.startswith("eval_MR") for k in metrics)
    assert "eval_avg_transfer" not in metrics


def test_eval_transfer_needs_evaluation(tiny_bert_dir, unsup_file, tmp_path, capsys):
    msg = cli_error(capsys, train_args(tiny_bert_dir, unsup_file, tmp_path / "run", "--max_steps", "1",
                                       "--eval_transfer", "true"))
    assert "--eval_transfer" in msg and "--eval_strategy" in msg


def test_missing_transfer_data_fails_before_training(tiny_bert_dir, unsup_file, tmp_path, capsys):
    sts_only = write_tiny_sts(tmp_path / "sts")
    out = tmp_path / "run"
    msg = cli_error(capsys, train_args(tiny_bert_dir, unsup_file, out, *EVAL, "--senteval_data", str(sts_only),
                                       "--eval_transfer", "true"))
    assert "MR/" in msg and "python -m simcse_gs.data_files transfer --fetch" in msg
    assert not (out / "trainer_state.json").exists()
