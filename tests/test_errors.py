"""Bad inputs give one clear paragraph (and, from ``python train.py``, ``train.py: error: ...`` with exit code 2).

docs/ERRORS.md lists every case with the test that covers it; cases already tested elsewhere (tests/test_data.py,
test_gumbel.py, test_model.py, test_loss.py, test_senteval.py) are referenced there, not repeated here.
"""

from __future__ import annotations

import logging
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, DistilBertConfig, DistilBertModel

import train
from simcse_gs.model import SimCSEGSModel
from simcse_gs.training.data import TrainFileError, load_train_dataset
from simcse_gs.training.resume import CheckpointError
from simcse_gs.training.trainer import SimCSETrainer
from tests.conftest import REPO
from tests.test_reliability import train_args, write_tiny_sts


def cli_error(capsys, argv: list[str], code: int = 2) -> str:
    """Run ``train.cli``; check the exit code, no traceback, one ``error:`` line; return that line."""
    assert train.cli(argv) == code
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("train.py: error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-2000:]
    return errors[0]


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir):
    return AutoTokenizer.from_pretrained(tiny_bert_dir)


@pytest.fixture(scope="module")
def tiny_distilbert_dir(tiny_bert_dir, tmp_path_factory) -> str:
    """A random 1-layer DistilBERT (a model type the attention patch does not support) with the MiniLM tokenizer."""
    out = tmp_path_factory.mktemp("tiny-distilbert")
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=tok.vocab_size, dim=32, n_layers=1, n_heads=2, hidden_dim=64,
                              max_position_embeddings=64)
    DistilBertModel(config).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def saved_model(tiny_bert_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("saved") / "model"
    SimCSEGSModel.from_backbone(tiny_bert_dir, use_gs=False, pooler_type="avg").save_pretrained(out)
    return out


# ------------------------------------------------------------------ flags (checked at parse time)


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


def test_an_epoch_ending_in_a_batch_of_one_is_refused_at_start_up(tiny_bert_dir, tmp_path, capsys):
    data = tmp_path / "nine.txt"
    data.write_text("\n".join(f"sentence number {i}" for i in range(9)) + "\n", encoding="utf-8")
    argv = train_args(tiny_bert_dir, data, tmp_path / "o", "--use_gs", "false")  # batch 4: 4 + 4 + 1
    message = cli_error(capsys, argv)
    assert "9 training examples in batches of 4 leave a last batch of 1 example" in message
    assert "--dataloader_drop_last" in message
    train.setup([*argv, "--dataloader_drop_last"])
    train.setup([*argv, "--max_steps", "2"])  # never reaches the last batch


def test_non_empty_output_dir_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("precious")
    argv = ["--train_file", "x.txt", "--output_dir", str(out), "--report_to", "none"]
    assert "exists and is not empty. Nothing was changed" in cli_error(capsys, argv)
    assert (out / "results.json").read_text() == "precious"
    train.parse_args([*argv, "--overwrite_output_dir"])  # the explicit opt-in is accepted


def test_traceback_on_request(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMCSE_GS_TRACEBACK", "1")
    with pytest.raises(ValueError, match="--pooler_type must be one of"):
        train.cli(["--output_dir", str(tmp_path / "o"), "--pooler_type", "mean"])


def test_unexpected_errors_keep_their_traceback(tiny_bert_dir, unsup_file, tmp_path, monkeypatch):
    def broken(self, *args, **kwargs):
        raise RuntimeError("a bug, not a user error")

    monkeypatch.setattr(SimCSETrainer, "train", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        train.cli(train_args(tiny_bert_dir, unsup_file, tmp_path / "o", "--max_steps", "1"))


# ------------------------------------------------------------------ training file


def test_cli_prints_the_message_without_a_traceback(tiny_bert_dir, tmp_path):
    """The real command line: ``python train.py`` with a missing training file."""
    missing = tmp_path / "nowhere.txt"
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *train_args(tiny_bert_dir, missing, tmp_path / "o")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    expected = f"train.py: error: Training file not found: {missing}. Check --train_file."
    assert proc.stderr.rstrip().splitlines()[-1] == expected
    assert "Traceback" not in proc.stderr


def _commands() -> dict:
    """Each command's command-line function, by the program name its errors start with."""
    from simcse_gs.evaluation import evaluate

    export_main = runpy.run_path(str(REPO / "export.py"), run_name="export_cli")["main"]
    keep_map_main = runpy.run_path(str(REPO / "scripts" / "keep_map.py"), run_name="keep_map_cli")["main"]
    return {"train.py": train.cli, "evaluation.py": evaluate.main, "export.py": export_main,
            "keep_map.py": keep_map_main}


def _one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]  # (progress bars may come before it)
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: ") and "Traceback" not in err, err[-2000:]
    return lines[0]


def test_every_command_follows_the_cli_convention(tiny_bert_dir, tmp_path, capsys, monkeypatch):
    """docs/ERRORS.md: ``PROG: error: <message>``; 2 for a mistake found before any work, 1 for a failure during
    the run; argparse's own usage errors carry the same prefix and status."""
    commands = _commands()
    missing = str(tmp_path / "no-such-model")
    before_work = {
        "train.py": ["--model_name_or_path", missing, "--train_file", "x.txt", "--output_dir", str(tmp_path / "t")],
        "evaluation.py": ["--model_name_or_path", missing, "--senteval_data", str(write_tiny_sts(tmp_path / "sts")),
                          "--mode", "dev"],
        "export.py": ["--model_name_or_path", missing, "--output_dir", str(tmp_path / "e")],
        "keep_map.py": ["--model_name_or_path", missing, "--sentences", "a sentence"],
    }
    for prog, main in commands.items():
        capsys.readouterr()
        assert main(before_work[prog]) == 2, prog
        assert "no-such-model" in _one_error_line(capsys, prog)
        try:  # an unknown flag: argparse exits itself, HfArgumentParser raises ValueError (the command reports it)
            code = main([*before_work[prog], "--no_such_flag"])
        except SystemExit as usage:
            code = usage.code
        assert code == 2 and f"{prog}: error: " in capsys.readouterr().err and "no_such_flag", prog

    # failures while writing the results: exit 1
    gs = tmp_path / "gs"
    torch.manual_seed(0)
    SimCSEGSModel.from_backbone(tiny_bert_dir, use_gs=True, pooler_type="avg").save_pretrained(gs)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    evaluation_argv = ["--model_name_or_path", str(gs), "--senteval_data", str(tmp_path / "sts"), "--mode", "dev",
                       "--no_progress", "--output_json", str(blocker / "r.json")]
    assert commands["evaluation.py"](evaluation_argv) == 1
    assert "cannot write --output_json" in _one_error_line(capsys, "evaluation.py")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("simcse_gs.sharing.export._write_sentence_transformers", disk_full)
    monkeypatch.setattr("simcse_gs.sharing.export._write_gs_model", disk_full)  # a GS export writes the whole model
    monkeypatch.setitem(commands["keep_map.py"].__globals__, "write_keep_maps", disk_full)
    assert commands["keep_map.py"](["--model_name_or_path", str(gs), "--sentences", "a sentence"]) == 1
    assert "No space left on device" in _one_error_line(capsys, "keep_map.py")
    assert commands["export.py"](["--model_name_or_path", str(gs), "--output_dir", str(tmp_path / "e2")]) == 1
    assert "No space left on device" in _one_error_line(capsys, "export.py")


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return str(path)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("hdr.csv", "sent0,sent1\n", r"hdr\.csv: the header is there but no example follows it"),
        ("wide.csv", "sent0,sent1\na cat,a dog\na cat, sitting,a dog\n",
         r"wide\.csv:3: 3 fields, but the header has 2"),
        ("quote.csv", 'sent0,sent1\na cat,a dog\n"a cat,a dog\nx,y\n', r"quote\.csv:3: malformed csv"),
    ],
)
def test_malformed_csv_names_the_line(tmp_path, tokenizer, name, content, message):
    with pytest.raises(TrainFileError, match=message):
        load_train_dataset(write(tmp_path, name, content), tokenizer)


def test_csv_with_a_byte_order_mark_is_read(tmp_path, tokenizer):
    ds = load_train_dataset(write(tmp_path, "bom.csv", "\ufeffsent0,sent1\na cat,a dog\n"), tokenizer)
    assert len(ds) == 1 and len(ds[0]["input_ids"]) == 2


def test_empty_sentences_are_dropped_with_a_counted_warning(tmp_path, tokenizer, caplog):
    path = write(tmp_path, "gaps.csv", "sent0,sent1,hard_neg\na,b,c\n,b,c\nd,e,f\ng, ,i\nj,k,\n")
    with caplog.at_level(logging.WARNING, logger="simcse_gs.training.data"):
        ds = load_train_dataset(path, tokenizer)
    assert len(ds) == 2
    assert f"Dropped 3 of 5 examples of {path} with an empty sentence." in caplog.messages


def test_missing_training_file_from_the_command_line(tiny_bert_dir, tmp_path, capsys):
    argv = train_args(tiny_bert_dir, tmp_path / "none.txt", tmp_path / "o")
    assert "Training file not found" in cli_error(capsys, argv)


# ------------------------------------------------------------------ model


def test_gs_with_an_unsupported_model_type_names_the_supported_ones(tiny_distilbert_dir, unsup_file, tmp_path,
                                                                    capsys):
    message = cli_error(capsys, train_args(tiny_distilbert_dir, unsup_file, tmp_path / "o", "--use_gs", "true"))
    assert "bert, roberta" in message and "'distilbert'" in message and "--use_gs false" in message


def test_plain_simcse_on_the_unsupported_type_still_builds(tiny_distilbert_dir):
    model = SimCSEGSModel.from_backbone(tiny_distilbert_dir, use_gs=False, pooler_type="avg")
    assert model.backbone.config.model_type == "distilbert"


@pytest.mark.parametrize("value", [False, True])
def test_trust_remote_code_reaches_every_from_pretrained(tiny_bert_dir, unsup_file, tmp_path, monkeypatch, value):
    calls = []
    for cls in (AutoModel, AutoTokenizer):
        original = cls.from_pretrained

        def recording(*args, _original=original, _name=cls.__name__, **kwargs):
            calls.append((_name, kwargs.get("trust_remote_code", "not passed")))
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", staticmethod(recording))
    flags = ["--use_gs", "true", "--trust_remote_code", str(value).lower()]
    train.setup(train_args(tiny_bert_dir, unsup_file, tmp_path / "o", *flags))
    assert {name for name, _ in calls} == {"AutoModel", "AutoTokenizer"}
    assert len(calls) >= 3 and all(flag is value for _, flag in calls), calls  # backbone, proxy, tokenizer


# ------------------------------------------------------------------ STS data


@pytest.mark.parametrize(
    "layout, message",
    [
        ("none", r"SentEval data not found: .*folder does not exist.*--senteval_data"),
        ("sts_only", r"SentEval data not found: .*SICK \(folder is missing\)"),
        ("no_dev", r"SentEval data not found: .*sts-dev\.csv \(file is missing\)"),
    ],
)
def test_missing_or_partial_sts_data_fails_at_start_up(tmp_path, capsys, layout, message):
    root = tmp_path / "sts"
    if layout == "sts_only":
        write_tiny_sts(root, sick=False)
    elif layout == "no_dev":
        write_tiny_sts(root)
        (root / "STS" / "STSBenchmark" / "sts-dev.csv").unlink()
    argv = ["--model_name_or_path", str(tmp_path / "never-loaded"), "--train_file", "x.txt", "--output_dir",
            str(tmp_path / "o"), "--report_to", "none", "--eval_strategy", "steps", "--eval_steps", "5",
            "--senteval_data", str(root)]
    assert re.search(message, cli_error(capsys, argv))  # before the model or the training file is touched


# ------------------------------------------------------------------ checkpoints


def damage(folder: Path, how: str) -> None:
    weights = folder / "model.safetensors"
    if how == "no_weights":
        weights.unlink()
    elif how == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "garbage":
        weights.write_bytes(b"\x00" * 64)
    elif how == "pickle_only":
        weights.unlink()
        (folder / "pytorch_model.bin").write_bytes(b"never unpickled")
    elif how == "no_config":
        (folder / "config.json").unlink()
    elif how == "plain_bert":
        config = (folder / "config.json").read_text().replace('"simcse_gs"', '"bert"')
        (folder / "config.json").write_text(config)


@pytest.mark.parametrize(
    "how, message",
    [
        ("no_weights", r"has no weights \(model\.safetensors is missing\)\. The training run was probably stopped"),
        ("truncated", r"model\.safetensors is not a valid safetensors file .*truncated, overwritten"),
        ("garbage", r"model\.safetensors is not a valid safetensors file"),
        ("pickle_only", r"only has pytorch_model\.bin, a pickle file, which this project does not load"),
        ("no_config", r"has no config\.json, so it is not a model folder"),
        ("plain_bert", r"holds a 'bert' model, not a SimCSE-GS checkpoint.*--model_name_or_path"),
    ],
)
def test_damaged_checkpoint_folder_is_named(saved_model, tmp_path, how, message):
    folder = tmp_path / "ckpt"
    shutil.copytree(saved_model, folder)
    damage(folder, how)
    with pytest.raises(CheckpointError, match=message) as err:
        SimCSEGSModel.from_pretrained(folder)
    assert str(folder) in str(err.value)


def test_missing_checkpoint_folder_does_not_ask_the_hub(tmp_path):
    with pytest.raises(CheckpointError, match=r"Model folder not found: .*nowhere \(a local path"):
        SimCSEGSModel.from_pretrained(tmp_path / "nowhere")


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


# ------------------------------------------------------------------ safe loading


def _code_only(text: str) -> list[str]:
    """The lines of a Python file with string literals and comments blanked: documentation and model-card text
    that *show* ``trust_remote_code=True`` to users are not calls."""
    import io
    import tokenize

    lines = text.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.STRING, tokenize.COMMENT) or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            (r0, c0), (r1, c1) = tok.start, tok.end
            for r in range(r0, r1 + 1):
                start = c0 if r == r0 else 0
                end = c1 if r == r1 else len(lines[r - 1])
                lines[r - 1] = lines[r - 1][:start] + " " * (end - start) + lines[r - 1][end:]
    return lines


def test_nothing_unpickles_or_runs_remote_code_by_default():
    """Audit of the repository's own Python (docs/ERRORS.md, "Safe loading"), kept true by this test.

    ``trust_remote_code=True`` in code is allowed only on a line marked ``# own code``: loading a folder that the
    same code has just written from this package's own modules (scripts/mteb_sts.py, the export tests)."""
    pickle_use = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|dill|joblib)\b|\b(pickle|dill|joblib)\.loads?\(")
    remote_on = re.compile(r"trust_remote_code\s*=\s*True|allow_pickle\s*=\s*True|weights_only\s*=\s*False")
    torch_load = re.compile(r"\btorch\.load\(")
    files = [REPO / "train.py", REPO / "evaluation.py", REPO / "export.py", *REPO.glob("simcse_gs/*.py"),
             *REPO.glob("SentEval/**/*.py"), *REPO.glob("bench/**/*.py"), *REPO.glob("scripts/*.py"),
             *REPO.glob("tests/*.py")]
    problems = []
    for path in files:
        if not path.is_file() or path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8")
        lines, code = text.splitlines(), _code_only(text)
        for i, line in enumerate(lines):
            where = f"{path.relative_to(REPO)}:{i + 1}: {line.strip()}"
            if pickle_use.search(code[i]) or (remote_on.search(code[i]) and "# own code" not in line):
                problems.append(where)
            if torch_load.search(line) and "weights_only=True" not in " ".join(lines[i : i + 4]):
                problems.append(where)
    assert not problems, "\n".join(problems)
