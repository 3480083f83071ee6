"""train.py's flags: bad values and combinations are refused at start-up with a message that names the flag."""

from __future__ import annotations

import logging
import re

import pytest

import train
from tests.conftest import cli_error


@pytest.mark.parametrize("flags, message", [
    (["--keep_budget", "1.5"], r"--keep_budget must be in \(0, 1\]"),
    (["--token_drop_heuristic", "tfidf", "--use_gs", "false"],
     "--token_drop_heuristic must be one of random, idf, got 'tfidf'"),
    (["--token_drop_heuristic", "idf"], "use it with --use_gs false"),
    (["--gs_estimator", "topk", "--gs_target_keep_rate", "0"], "topk keeps ceil"),
    (["--gs_estimator", "lottery"], "--gs_estimator must be one of soft, st, reinforce, topk, hard_concrete"),
])
def test_bad_selection_flags_are_refused(flags, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        train.parse_args(["--output_dir", str(tmp_path / "o"), *flags])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--pooler_type", "mean"], "--pooler_type must be one of cls, cls_before_pooler, avg, avg_top2, "
                                    "avg_first_last, got 'mean'"),
        (["--min_tau", "0"], r"min_tau must be > 0"),
        (["--init_tau", "0.2", "--min_tau", "0.5"], r"init_tau \(0.2\) must be >= min_tau \(0.5\)"),
        (["--tau_decay_rate", "-0.1"], "tau_decay_rate must be >= 0"),
        (["--per_device_train_batch_size", "1"], "must be >= 2: the contrastive loss takes its negatives"),
        # every other check of simcse_gs/arguments.py, in the order it makes them
        (["--gs_hard", "--gs_estimator", "reinforce"], r"--gs_hard \(deprecated alias of --gs_estimator st\) "
                                                       "contradicts --gs_estimator reinforce"),
        (["--gs_estimator", "gumbel"],
         "--gs_estimator must be one of soft, st, reinforce, topk, hard_concrete, got 'gumbel'"),
        (["--gs_reinforce_reward", "token"], "--gs_reinforce_reward must be one of sentence, batch, got 'token'"),
        (["--gs_reinforce_baseline_momentum", "1"], r"--gs_reinforce_baseline_momentum must be in \[0, 1\), got 1"),
        (["--gs_attn_impl", "flash"], "--gs_attn_impl must be one of sdpa, eager, got 'flash'"),
        (["--temp", "0"], "--temp must be > 0, got 0"),
        (["--use_gs", "false", "--token_drop_rate", "1"], r"--token_drop_rate must be in \[0, 1\), got 1"),
        (["--token_drop_rate", "0.1"], "--token_drop_rate is the random-drop control: use it with --use_gs false"),
        (["--gs_target_keep_rate", "1.5"], r"--gs_target_keep_rate must be in \[0, 1\], got 1.5"),
        (["--gs_keep_rate_weight", "-1"], "--gs_keep_rate_weight must be >= 0, got -1"),
        (["--proxy_num_layers", "0"], "--proxy_num_layers must be >= 1, got 0"),
        (["--mlm_probability", "1"], r"--mlm_probability must be in \(0, 1\), got 1"),
        (["--eval_split", "test"], "--eval_split must be dev or train_and_dev, got 'test'"),
        (["--max_seq_length", "1"], "--max_seq_length must be >= 2, got 1"),
        (["--learning_rate=-1e-5"], "--learning_rate must be >= 0, got -1e-05: a negative step size"),
        (["--proxy_learning_rate", "-0.001"], "--proxy_learning_rate must be >= 0, got -0.001"),
    ],
)
def test_bad_flags_are_refused_with_a_message(tmp_path, capsys, flags, message):
    argv = ["--train_file", "x.txt", "--output_dir", str(tmp_path / "o"), "--report_to", "none", *flags]
    with pytest.raises(ValueError, match=message):
        train.parse_args(argv)
    assert re.search(message, cli_error(capsys, argv))


def test_non_empty_output_dir_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("precious")
    argv = ["--train_file", "x.txt", "--output_dir", str(out), "--report_to", "none"]
    assert "exists and is not empty. Nothing was changed" in cli_error(capsys, argv)
    assert (out / "results.json").read_text() == "precious"
    train.parse_args([*argv, "--overwrite_output_dir"])  # the explicit opt-in is accepted


def test_fp16_flag_on_a_cpu_warns_that_it_trains_in_float32(caplog, tmp_path):
    """accelerate applies fp16 autocast on GPUs only: --fp16 on a CPU silently trained in float32 before."""
    from simcse_gs.training.arguments import SimCSETrainingArguments

    with caplog.at_level(logging.WARNING, logger="simcse_gs.training.arguments"):
        SimCSETrainingArguments(output_dir=str(tmp_path / "x"), fp16=True, report_to="none")
    assert "--fp16 on a machine without an accelerator trains in float32" in caplog.text
