"""Fail CI on any skipped test whose reason is not in the allow-list.

    python .ci/check_skips.py REPORT.xml .ci/allowed-skips.txt

REPORT.xml is pytest's ``--junitxml`` report. Each allow-list line is ``REGEX # why``; blank lines and lines
starting with ``#`` are ignored. A skip is allowed when one REGEX matches (``re.search``) its reason.
Exit status: 0 when every skip is allowed, 1 otherwise (each unexpected skip is printed), 2 for a bad input file.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def read_allow_list(path: Path) -> list[tuple[re.Pattern[str], str]]:
    """``(pattern, why)`` per line; a line without a reason is refused, so every allowed skip says why."""
    rules = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pattern, sep, why = line.partition(" # ")
        if not sep or not why.strip() or not pattern.strip():
            raise ValueError(f"{path}:{number}: expected 'REGEX # why this skip is acceptable', got {line!r}")
        rules.append((re.compile(pattern.strip()), why.strip()))
    return rules


def skipped_tests(report: Path) -> list[tuple[str, str]]:
    """``(test id, reason)`` of every skipped test case in a junit XML report."""
    skips = []
    for case in ET.parse(report).getroot().iter("testcase"):
        for skipped in case.findall("skipped"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            skips.append((name, skipped.get("message") or skipped.text or ""))
    return skips


def unexpected_skips(skips: list[tuple[str, str]], rules: list[tuple[re.Pattern[str], str]]) -> list[tuple[str, str]]:
    return [(name, reason) for name, reason in skips if not any(p.search(reason) for p, _ in rules)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python .ci/check_skips.py REPORT.xml ALLOWED_SKIPS.txt", file=sys.stderr)
        return 2
    try:
        skips = skipped_tests(Path(argv[0]))
        rules = read_allow_list(Path(argv[1]))
    except (OSError, ValueError, ET.ParseError) as err:
        print(f"check_skips.py: error: {err}", file=sys.stderr)
        return 2
    bad = unexpected_skips(skips, rules)
    print(f"check_skips.py: {len(skips)} skipped, {len(skips) - len(bad)} allowed, {len(bad)} unexpected")
    for name, reason in bad:
        print(f"  UNEXPECTED SKIP {name}: {reason}")
    if bad:
        print("check_skips.py: error: CI does not pass by skipping; make these tests run (install what they need, "
              "set SENTEVAL_DATA) or add a reason to .ci/allowed-skips.txt", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
