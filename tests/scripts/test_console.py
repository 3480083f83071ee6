"""The console commands of ``[project.scripts]``: installed next to the interpreter by README's ``pip install -e .``,
each the same command as its ``python <script>.py`` form, under its own name in usage lines and errors."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

from tests.conftest import REPO

# [project.scripts] of pyproject.toml (read by hand: tomllib is Python >= 3.11, the project supports 3.10)
_SECTION = (REPO / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0]
SCRIPTS = dict(re.findall(r'^([\w-]+) = "([\w.:]+)"', _SECTION, flags=re.M))
FORMS = {"simcse-gs-train": "train.py", "simcse-gs-eval": "evaluation.py", "simcse-gs-export": "export.py",
         "simcse-gs-keep-map": "scripts/keep_map.py"}


def test_every_command_has_a_console_entry_point():
    assert sorted(SCRIPTS) == sorted(FORMS)
    for target in SCRIPTS.values():
        module, function = target.split(":")
        assert callable(getattr(import_module(module), function))


@pytest.mark.parametrize("name", sorted(FORMS))
def test_console_command_and_script_form_agree(name, tmp_path):
    installed = Path(sys.executable).parent / name
    assert installed.is_file(), f"{name} is not installed: run README's `pip install --no-deps -e .`"
    missing = str(tmp_path / "no-such-model")
    args = ["--model_name_or_path", missing]
    args += {"simcse-gs-train": ["--train_file", "x.txt", "--output_dir", str(tmp_path / "o")],
             "simcse-gs-eval": ["--mode", "dev"], "simcse-gs-export": ["--output_dir", str(tmp_path / "e")],
             "simcse-gs-keep-map": ["--sentences", "a sentence"]}[name]
    console = subprocess.run([str(installed), *args], capture_output=True, text=True, timeout=300)
    script = subprocess.run([sys.executable, str(REPO / FORMS[name]), *args], capture_output=True, text=True,
                            timeout=300)
    assert console.returncode == script.returncode == 2
    assert console.stderr.strip().splitlines()[-1].startswith(f"{name}: error:") and "no-such-model" in console.stderr
    prog = Path(FORMS[name]).name
    assert script.stderr.strip().splitlines()[-1].startswith(f"{prog}: error:")
    usage = subprocess.run([str(installed), "--help"], capture_output=True, text=True, timeout=300)
    assert usage.returncode == 0 and f"usage: {name}" in usage.stdout
