"""One command-line convention for every command (simcse_gs.cli): one line ``PROG: error: ...``, exit 2 for a bad
input, a traceback on request, and nothing unpickled or run from a folder by default."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train
from simcse_gs.model import SimCSEGSModel
from simcse_gs.training.trainer import SimCSETrainer
from tests.conftest import REPO, train_args, write_tiny_sts

# ------------------------------------------------------------------ flags (checked at parse time)


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


# ------------------------------------------------------------------ model


# ------------------------------------------------------------------ STS data


# ------------------------------------------------------------------ checkpoints


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
    files = [REPO / "train.py", REPO / "evaluation.py", REPO / "export.py", *REPO.glob("simcse_gs/**/*.py"),
             *REPO.glob("SentEval/**/*.py"), *REPO.glob("bench/**/*.py"), *REPO.glob("scripts/*.py"),
             *REPO.glob("tests/**/*.py")]
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
