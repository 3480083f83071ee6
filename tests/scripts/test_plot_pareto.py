"""scripts/plot_pareto.py: the keep-rate table and figure, several result roots."""

from __future__ import annotations

import json


def test_pareto_table_and_figure(tmp_path):
    import runpy

    from tests.conftest import REPO

    def write(group: str, seed: int, avg: float, kept: float | None) -> None:
        folder = tmp_path / group / f"seed{seed}"
        folder.mkdir(parents=True)
        record = {"simcse": {"avg": avg}, "keep_stats": {"keep_rate": kept} if kept is not None else None}
        (folder / "eval_test.json").write_text(json.dumps({"models": [record]}))

    for seed, base in ((1, 80.0), (2, 81.0)):
        write("simcse-r1.0", seed, base, None)
        write("topk-r0.7", seed, base - 1, 0.72)
        write("random-drop-r0.7", seed, base - 3, 0.71)
    main = runpy.run_path(str(REPO / "scripts" / "plot_pareto.py"))["main"]
    text = main([str(tmp_path), "--output", str(tmp_path / "fig.png")])
    assert "| 1 | 80.50 ± 0.71 (n=2) | 80.50 ± 0.71 (n=2) |" in text  # r = 1: plain SimCSE, for every method
    assert "| 0.7 | 79.50 ± 0.71 (n=2) | 77.50 ± 0.71 (n=2) |" in text
    assert "| 0.7 | 72.0 | 71.0 |" in text
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_pareto_reads_each_group_from_the_first_root_that_has_it(tmp_path):
    import runpy

    from tests.conftest import REPO

    def write(root: str, group: str, seed: int, avg: float) -> None:
        folder = tmp_path / root / group / f"seed{seed}"
        folder.mkdir(parents=True)
        record = {"simcse": {"avg": avg}, "keep_stats": {"keep_rate": 0.7}}
        (folder / "eval_test.json").write_text(json.dumps({"models": [record]}))

    write("matched", "topk-r0.7", 1, 79.0)   # trained at 0.7
    write("at08", "topk-r0.7", 1, 70.0)      # trained at 0.8, evaluated at 0.7: not counted again
    write("at08", "topk-r0.8", 1, 78.0)
    main = runpy.run_path(str(REPO / "scripts" / "plot_pareto.py"))["main"]
    text = main([str(tmp_path / "matched"), str(tmp_path / "at08")])
    assert "| 0.7 | 79.00 (n=1) |" in text and "| 0.8 | 78.00 (n=1) |" in text
