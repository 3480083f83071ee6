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


def write_trained(root, avgs: dict[str, list[float]], speedup: dict[str, float] | None = None,
                  checkpoint: str = "results/pruned_training/learned-l2-r0.5/seed1", file: str = "speed.json") -> None:
    for name, values in avgs.items():
        for seed, avg in enumerate(values, 1):
            (root / name / f"seed{seed}").mkdir(parents=True)
            (root / name / f"seed{seed}" / "eval_test.json").write_text(
                json.dumps({"models": [{"simcse": {"avg": avg}}]}))
    if speedup is not None:
        (root / file).write_text(json.dumps({"args": {"checkpoint": checkpoint},
                                             "speedup": {"backbone": 1.0, **speedup}}))


def test_trained_runs_get_mean_and_std_over_seeds_and_the_speed_of_their_schedule(tmp_path):
    write_sweep(tmp_path / "free", {"none": 80.0, "attention@2=0.5": 79.6}, {"attention@2=0.5": 1.55})
    write_trained(tmp_path / "trained", {"plain": [80.5, 80.7], "attention-l2-r0.5": [79.0, 79.4],
                                         "learned-l2-r0.5": [79.5, 79.9, 79.7]},
                  {"checkpoint": 1.5, "attention@2=0.5": 1.4})  # the trained folder's speed run wins
    main = runpy.run_path(str(REPO / "scripts" / "plot_pruning.py"))["main"]
    text = main([str(tmp_path / "free"), "--trained", str(tmp_path / "trained"), "--output", str(tmp_path / "f.png")])
    lines = [line for line in text.splitlines() if line.startswith("| `") and "%" not in line]
    assert lines == ["| `learned-l2-r0.5` | 3 | 1.50 | 1 | 79.70 ± 0.20 | -0.30 |",
                     "| `attention-l2-r0.5` | 2 | 1.40 | 1 | 79.20 ± 0.28 | -0.80 |",
                     "| `plain` | 2 | 1.00 | 1 | 80.60 ± 0.14 | +0.60 |"]
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_a_trained_run_without_a_measured_speed_is_named(tmp_path):
    write_sweep(tmp_path / "free", {"none": 80.0}, {})
    write_trained(tmp_path / "trained", {"learned-l2-r0.5": [79.5]})
    main = runpy.run_path(str(REPO / "scripts" / "plot_pruning.py"))["main"]
    with pytest.raises(SystemExit, match="no speed for learned-l2-r0.5"):
        main([str(tmp_path / "free"), "--trained", str(tmp_path / "trained")])


def test_a_run_with_another_teacher_distillation_or_learning_rate_has_the_speed_of_its_schedule(tmp_path):
    write_sweep(tmp_path / "free", {"none": 80.0, "attention@2=0.5": 79.6}, {"attention@2=0.5": 1.55})
    write_trained(tmp_path / "trained", {"attention-l2-r0.5-initial": [79.0, 79.4], "learned-l2-r0.5-initial": [79.5],
                                         "learned-l2-r0.5-initial-d4.0": [79.6],
                                         "learned-l2-r0.5-initial-similarity-lr1e-4": [78.9],
                                         "attention-l2-r0.5-initial-lr1e-4": [79.1],
                                         "learned-l2-r0.5-initial-lr1e-4-slr3e-3": [79.3],
                                         "plain-steps1500": [80.2]}, {"checkpoint": 1.5})
    main = runpy.run_path(str(REPO / "scripts" / "plot_pruning.py"))["main"]
    text = main([str(tmp_path / "free"), "--trained", str(tmp_path / "trained")])
    lines = [line for line in text.splitlines() if line.startswith("| `") and "%" not in line]
    assert lines == ["| `attention-l2-r0.5-initial` | 2 | 1.55 | 1 | 79.20 ± 0.28 | -0.80 |",
                     "| `attention-l2-r0.5-initial-lr1e-4` | 1 | 1.55 | 1 | 79.10 ± 0.00 | -0.90 |",
                     "| `learned-l2-r0.5-initial` | 1 | 1.50 | 1 | 79.50 ± 0.00 | -0.50 |",
                     "| `learned-l2-r0.5-initial-d4.0` | 1 | 1.50 | 1 | 79.60 ± 0.00 | -0.40 |",
                     "| `learned-l2-r0.5-initial-lr1e-4-slr3e-3` | 1 | 1.50 | 1 | 79.30 ± 0.00 | -0.70 |",
                     "| `learned-l2-r0.5-initial-similarity-lr1e-4` | 1 | 1.50 | 1 | 78.90 ± 0.00 | -1.10 |",
                     "| `plain-steps1500` | 1 | 1.00 | 1 | 80.20 ± 0.00 | +0.20 |"]


def test_each_learned_schedule_takes_the_speed_of_its_own_checkpoint(tmp_path):
    write_sweep(tmp_path / "free", {"none": 80.0}, {})
    write_trained(tmp_path / "trained", {"learned-l2-r0.5": [79.5], "learned-l2-r0.7-initial": [79.9]},
                  {"checkpoint": 1.5})
    write_trained(tmp_path / "trained", {}, {"checkpoint": 1.2}, "results/x/learned-l2-r0.7-initial/seed1",
                  "speed-r0.7.json")
    main = runpy.run_path(str(REPO / "scripts" / "plot_pruning.py"))["main"]
    text = main([str(tmp_path / "free"), "--trained", str(tmp_path / "trained")])
    lines = [line for line in text.splitlines() if line.startswith("| `") and "%" not in line]
    assert lines == ["| `learned-l2-r0.5` | 1 | 1.50 | 1 | 79.50 ± 0.00 | -0.50 |",
                     "| `learned-l2-r0.7-initial` | 1 | 1.20 | 1 | 79.90 ± 0.00 | -0.10 |"]


def test_a_schedule_measured_in_several_benchmark_runs_gets_their_mean(tmp_path):
    write_sweep(tmp_path / "free", {"none": 80.0, "merge@2=0.5": 72.0}, {"merge@2=0.5": 1.9})  # not averaged in
    write_trained(tmp_path / "trained", {"merge-l2-r0.5-initial": [78.0], "merge-l2-r0.4-initial": [77.5]},
                  {"merge@2=0.5": 1.4}, file="speed-a.json")
    write_trained(tmp_path / "trained", {}, {"merge@2=0.5": 1.5, "merge@2=0.4": 1.6}, file="speed-b.json")
    main = runpy.run_path(str(REPO / "scripts" / "plot_pruning.py"))["main"]
    text = main([str(tmp_path / "free"), "--trained", str(tmp_path / "trained")])
    lines = [line for line in text.splitlines() if line.startswith("| `") and "%" not in line]
    assert lines == ["| `merge-l2-r0.4-initial` | 1 | 1.60 | 1 | 77.50 ± 0.00 | -2.50 |",
                     "| `merge-l2-r0.5-initial` | 1 | 1.45 | 2 | 78.00 ± 0.00 | -2.00 |"]
