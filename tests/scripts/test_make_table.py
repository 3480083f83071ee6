"""scripts/make_table.py: grouping by config folder and mean ± std over seeds."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_table.py"
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


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPT.with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_table_and_plot(tmp_path, capsys):
    plot_sweep = load_script("plot_sweep")
    for target, seed, sts, keep in (("0.5", 1, 78.0, 0.46), ("0.5", 2, 80.0, 0.50), ("1.0", 1, 83.4, 1.0)):
        out = tmp_path / f"r{target}" / f"seed{seed}"
        out.mkdir(parents=True)
        record = {"dev": {"avg_sts": sts, "stsb_spearman": sts + 1, "sickr_spearman": sts - 1},
                  "keep_stats": {"keep_rate": keep, "keep_prob": keep}}
        (out / "eval_dev.json").write_text(json.dumps({"models": [record]}))
    plot_sweep.main([str(tmp_path), "--output", str(tmp_path / "sweep.png"), "--baseline", "83.26"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| 1.0 | 1 | 100.00 | 100.00 | 84.40 | 82.40 | 83.40 |"  # highest target first
    assert lines[3] == "| 0.5 | 2 | 48.00 ± 2.83 | 48.00 ± 2.83 | 80.00 ± 1.41 | 78.00 ± 1.41 | 79.00 ± 1.41 |"
    assert (tmp_path / "sweep.png").stat().st_size > 1000
