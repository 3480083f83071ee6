"""Every `python train.py ...` and `python evaluation.py ...` command written in the README and docs/ parses.

Docs drift: a flag renamed in the code (or dropped by a transformers release, as `--logging_dir` was) must fail
here, not in a reader's terminal. Commands are only parsed, never run.
"""

from __future__ import annotations

import re
import shlex

import pytest
from transformers import HfArgumentParser

import train
from simcse_gs.evaluation import evaluate as evaluation
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"```(?:bash|sh|console)?\n(.*?)```", re.S)


def documented_commands(program: str) -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for block in FENCE.findall(path.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"\s+#\s.*$", "", line).strip()  # trailing comment
                line = re.sub(r"^(?:time\s+)?(?:[A-Z_]+=\S+\s+)*", "", line)  # `time`, VAR=value prefixes
                if line.startswith(f"python {program} "):
                    found.append((path.name, line))
    return found


TRAIN = documented_commands("train.py")
EVAL = documented_commands("evaluation.py")


def test_the_docs_have_commands_to_check():
    assert len(TRAIN) >= 3 and len(EVAL) >= 3


@pytest.mark.parametrize(("doc", "command"), TRAIN, ids=[f"{d}:{i}" for i, (d, _) in enumerate(TRAIN)])
def test_documented_train_command_parses(doc, command, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # configs/... paths are relative to the repository
    argv = [a for a in shlex.split(command)[2:] if a != "..."]  # "..." stands for the reader's own flags
    if "--output_dir" in argv:  # a fresh folder: the real one may exist here and would be refused
        argv[argv.index("--output_dir") + 1] = str(tmp_path / "out")
    else:
        argv += ["--output_dir", str(tmp_path / "out")]
    model_args, data_args, training_args = train.parse_args(argv)
    assert training_args.output_dir == str(tmp_path / "out")


@pytest.mark.parametrize(("doc", "command"), EVAL, ids=[f"{d}:{i}" for i, (d, _) in enumerate(EVAL)])
def test_documented_evaluation_command_parses(doc, command):
    (args,) = HfArgumentParser(evaluation.EvalArguments).parse_args_into_dataclasses(args=shlex.split(command)[2:])
    assert args.model_name_or_path


TEST_REFERENCE = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?")


def test_every_test_the_docs_cite_exists():
    """A claim in README or docs/ names the test that backs it: that file (and function) must exist."""
    cited = {(doc.name, path, name) for doc in DOCS for path, name in TEST_REFERENCE.findall(doc.read_text("utf-8"))}
    assert len(cited) > 20
    missing = []
    for doc, path, name in sorted(cited):
        file = REPO / path
        if not file.is_file() or (name and not re.search(rf"^(?:async )?def {name}\b|^class {name}\b",
                                                         file.read_text("utf-8"), re.M)):
            missing.append(f"{doc}: {path}{'::' + name if name else ''}")
    assert not missing, missing


def test_every_flag_of_the_readme_flag_table_is_a_train_py_flag():
    from simcse_gs.training.arguments import DataArguments, ModelArguments, SimCSETrainingArguments

    parser = HfArgumentParser((ModelArguments, DataArguments, SimCSETrainingArguments))
    known = {option for action in parser._actions for option in action.option_strings}
    rows = [line for line in (REPO / "README.md").read_text("utf-8").splitlines() if line.startswith("| `--")]
    flags = {flag for row in rows for flag in re.findall(r"`(--[a-z_]+)", row.split("|")[1])}
    assert {"--prune_layers", "--prune_scorer_prior", "--distill_teacher"} <= flags
    assert not flags - known, sorted(flags - known)
