"""scripts/make_table.py: grouping by config folder and mean ± std over seeds."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_table.py"
spec = importlib.util.spec_from_file_location("make_table", SCRIPT)
make_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_table)


def write_run(root: Path, group: str, seed: int, avg: float, keep_rate: float | None) -> None:
    row = {k: avg for k in ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr", "avg")}
    record = {"model": f"{group}/seed{seed}", "simcse": row, "original_gs": None,
              "keep_stats": None if keep_rate is None else {"keep_rate": keep_rate, "keep_prob": 0.9}}
    out = root / group / f"seed{seed}"
    out.mkdir(parents=True)
    (out / "eval_test.json").write_text(json.dumps({"models": [record]}))


def test_seeds_of_a_config_are_averaged_with_sample_std(tmp_path, capsys):
    for seed, avg in ((1, 70.0), (2, 72.0), (3, 74.0)):
        write_run(tmp_path, "gs", seed, avg, keep_rate=1.0)
    write_run(tmp_path, "plain", 1, 71.5, keep_rate=None)
    text = make_table.main([str(tmp_path)])
    gs_row = next(line for line in text.splitlines() if line.startswith("| gs |"))
    assert "| 3 | 72.00 ± 2.00 |" in gs_row  # stdev(70, 72, 74) = 2
    assert "100.0" in gs_row
    plain_row = next(line for line in text.splitlines() if line.startswith("| plain |"))
    assert "| 1 | 71.50 |" in plain_row and plain_row.endswith("| – | – |")


def test_no_results_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="no eval_test.json"):
        make_table.main([str(tmp_path)])
