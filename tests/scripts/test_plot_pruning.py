"""scripts/plot_pruning.py: the speed/quality table and figure of the pruning sweep."""

from __future__ import annotations

import json
import runpy

import pytest

from tests.conftest import REPO


def write_sweep(root, avgs: dict[str, float], speedup: dict[str, float]) -> None:
    for name, avg in avgs.items():
        (root / name).mkdir(parents=True)
        (root / name / "eval_test.json").write_text(json.dumps({"models": [{"simcse": {"avg": avg}}]}))
    speed = {"speedup": {"backbone": 1.0, **speedup}, "kept": {name: 0.5 for name in speedup},
             "extra": {name: {"flops_ratio": 0.6} for name in speedup}}
    (root / "speed.json").write_text(json.dumps(speed))


def test_table_rows_are_measured_speed_and_the_change_against_the_unpruned_encoder(tmp_path):
    write_sweep(tmp_path, {"none": 80.0, "attention@2=0.5": 79.6, "merge@2=0.5": 78.0},
                {"attention@2=0.5": 1.55, "merge@2=0.5": 1.2, "idf@2=0.5": 1.6})  # idf: no evaluation, no row
    main = runpy.run_path(str(REPO / "scripts" / "plot_pruning.py"))["main"]
    text = main([str(tmp_path), "--output", str(tmp_path / "fig.png")])
    lines = [line for line in text.splitlines() if line.startswith("| `")]
    assert lines == ["| `attention@2=0.5` | 50.0 % | 1.55 | 0.600 | 79.60 | -0.40 |",
                     "| `merge@2=0.5` | 50.0 % | 1.20 | 0.600 | 78.00 | -2.00 |"]
    assert "STS avg 80.00" in text
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_missing_unpruned_evaluation_is_named(tmp_path):
    write_sweep(tmp_path, {"attention@2=0.5": 79.6}, {"attention@2=0.5": 1.55})
    main = runpy.run_path(str(REPO / "scripts" / "plot_pruning.py"))["main"]
    with pytest.raises(SystemExit, match="none/eval_test.json"):
        main([str(tmp_path)])
