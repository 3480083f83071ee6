"""Speed against quality for in-encoder pruning: the table and the figure of scripts/pruning_sweep.sh.

    python scripts/plot_pruning.py docs/results/pruning --output docs/figures/pruning_pareto.png
    python scripts/plot_pruning.py docs/results/pruning --trained docs/results/pruned_training \
        --output docs/figures/pruning_pareto.png        # + the trained runs of scripts/pruned_training.sh

Reads ``<root>/<method>/eval_test.json`` (SimCSE's STS test protocol; ``none`` = the unpruned encoder) and
``<root>/speed.json`` (bench/pruned_encode.py: sentences/s against the unmodified backbone, measured in one run).
Prints a markdown table and draws STS avg (y) against the **measured** speed-up (x), one point per method, with the
issue's target corner (>= 1.5x within 0.5 points of the unpruned encoder) shaded.

``--trained DIR`` adds the trained runs (``DIR/<run>/seed<S>/eval_test.json``, mean ± std over seeds): ``plain``
(unpruned: 1.00x), ``SCORER-lLAYERS-rRATES`` (e.g. ``attention-l2-r0.5``: the speed of ``SCORER@LAYERS=RATES``;
``learned-l2-r0.5``: of the ``checkpoint`` a ``bench/pruned_encode.py --checkpoint DIR/learned-l2-r0.5/seed1`` run
measured); a ``-initial`` (frozen initial teacher) or ``-d<weight>`` (distillation weight) suffix: the speed of the
same schedule. A trained run's speed is the mean over the benchmark runs in ``DIR/speed*.json`` that measured its
schedule (each a ratio measured within one run; on a shared host one run's ratio can be 0.1-0.2 off), else the one
in ``<root>/speed.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

TARGET_SPEEDUP, TARGET_LOSS = 1.5, 0.5


def sts_avg(path: Path) -> float:
    """SimCSE's STS avg of an evaluation.py JSON (its first model)."""
    return json.loads(path.read_text(encoding="utf-8"))["models"][0]["simcse"]["avg"]


def collect(root: Path) -> tuple[float, list[dict]]:
    """(the unpruned encoder's STS avg, one row per method that has both an evaluation and a speed)."""
    speed_file = root / "speed.json"
    if not speed_file.is_file():
        raise SystemExit(f"error: {speed_file} is missing (python -m bench.pruned_encode ... --json {speed_file})")
    speed = json.loads(speed_file.read_text(encoding="utf-8"))
    avg = {}
    for path in sorted(root.glob("*/eval_test.json")):
        avg[path.parent.name] = sts_avg(path)
    if "none" not in avg:
        raise SystemExit(f"error: {root}/none/eval_test.json (the unpruned encoder) is missing")
    rows = []
    for name, ratio in speed["speedup"].items():
        if name == "backbone" or name not in avg:
            continue
        extra = speed.get("extra", {}).get(name, {})
        rows.append({"method": name, "kept": speed["kept"].get(name, 1.0), "speedup": ratio,
                     "flops_ratio": extra.get("flops_ratio"), "max_abs_diff": extra.get("max_abs_diff"),
                     "avg": avg[name], "delta": avg[name] - avg["none"]})
    return avg["none"], sorted(rows, key=lambda r: -r["speedup"])


def speed_key(run: str) -> str:
    """The bench/pruned_encode.py method whose speed a trained run has: attention-l2-r0.5 -> attention@2=0.5.

    A training suffix of scripts/pruned_training.sh (``-initial``: TEACHER=initial; ``-d4.0``: DISTILL=4.0;
    ``-similarity``: DISTILL_LOSS=similarity; ``-lr1e-4``, ``-slr3e-3``: LR=, SCORER_LR=; ``-steps1500``: STEPS=)
    changes the training, not the encoder's shape, so the run has the speed of the same schedule.
    """
    run = re.sub(r"(-initial|-d[0-9.]+|-similarity|-s?lr[0-9.]+(?:e-?[0-9]+)?|-steps[0-9]+)+$", "", run)
    if run == "plain":
        return "backbone"
    scorer, layers, rates = run.rsplit("-", 2)
    return f"{scorer}@{layers.removeprefix('l')}={rates.removeprefix('r')}"


def read_speeds(path: Path) -> dict[str, float]:
    """A bench/pruned_encode.py JSON's speed-ups; a ``--checkpoint`` learned run's under its schedule's key.

    ``checkpoint`` (the trained model's own scorer) becomes ``learned@2=0.5`` for a checkpoint in a run folder named
    ``learned-l2-r0.5[-initial]`` (``learned_idf@2=0.5`` for ``learned_idf-...``), so several learned schedules can
    each have their speed file (speed*.json).
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    speeds = dict(data["speedup"])
    checkpoint = data.get("args", {}).get("checkpoint")
    run = Path(checkpoint).parent.name if checkpoint else ""
    if "checkpoint" in speeds and run.startswith("learned"):  # learned-..., learned_idf-... (an IDF prior)
        speeds[speed_key(run)] = speeds.pop("checkpoint")
    return speeds


def collect_trained(root: Path, trained: Path) -> list[dict]:
    """One row per trained run: STS avg mean ± std over its seeds, and its measured speed-up."""
    measured: dict[str, list[float]] = {}
    for source in sorted(trained.glob("speed*.json")):
        for key, ratio in read_speeds(source).items():
            measured.setdefault(key, []).append(ratio)
    if (root / "speed.json").is_file():  # the free sweep's run, for schedules the trained folder never measured
        for key, ratio in read_speeds(root / "speed.json").items():
            measured.setdefault(key, [ratio])
    rows = []
    for run in sorted(p for p in trained.iterdir() if p.is_dir()):
        avgs = [sts_avg(f) for f in sorted(run.glob("seed*/eval_test.json"))]
        if not avgs:
            continue
        key = speed_key(run.name)
        if key not in measured:
            raise SystemExit(f"error: no speed for {run.name} ({key!r} in neither speed.json; "
                             f"python -m bench.pruned_encode ... --json {trained / 'speed.json'})")
        rows.append({"method": run.name, "speedup": statistics.mean(measured[key]), "speed_runs": len(measured[key]),
                     "avg": statistics.mean(avgs), "std": statistics.stdev(avgs) if len(avgs) > 1 else 0.0,
                     "seeds": len(avgs)})
    return sorted(rows, key=lambda r: -r["speedup"])


def trained_table(base: float, rows: list[dict]) -> str:
    lines = ["| trained run | seeds | x backbone (sent/s; mean of bench runs) | bench runs | STS avg (mean ± std) "
             "| Δ vs unpruned backbone |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['method']}` | {r['seeds']} | {r['speedup']:.2f} | {r['speed_runs']} "
                     f"| {r['avg']:.2f} ± {r['std']:.2f} | {r['avg'] - base:+.2f} |")
    return "\n".join(lines)


def table(base: float, rows: list[dict]) -> str:
    lines = [f"Unpruned encoder: STS avg {base:.2f} (1.00x by definition).", "",
             "| method | kept (decided tokens) | x backbone (sent/s) | FLOPs ratio | STS avg | Δ vs unpruned |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        flops = "–" if r["flops_ratio"] is None else f"{r['flops_ratio']:.3f}"
        lines.append(f"| `{r['method']}` | {100 * r['kept']:.1f} % | {r['speedup']:.2f} | {flops} | {r['avg']:.2f} "
                     f"| {r['delta']:+.2f} |")
    return "\n".join(lines)


def plot(base: float, rows: list[dict], output: Path, trained: list[dict] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    scorers = sorted({r["method"].split("@")[0].split("=")[0] for r in rows})
    colours = dict(zip(scorers, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    ax.scatter([1.0], [base], color="black", marker="*", s=90, zorder=3, label="unpruned backbone")
    for scorer in scorers:
        mine = [r for r in rows if r["method"].split("@")[0].split("=")[0] == scorer]
        ax.scatter([r["speedup"] for r in mine], [r["avg"] for r in mine], color=colours[scorer], label=scorer,
                   zorder=3)
        for r in mine:
            ax.annotate(r["method"].split("@", 1)[-1], (r["speedup"], r["avg"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    offsets = [(4, -9), (4, 4), (-4, -9), (-4, 4)]  # runs at the same speed (one schedule) get different corners
    for i, r in enumerate(trained or []):
        ax.errorbar([r["speedup"]], [r["avg"]], yerr=[r["std"]], fmt="D", mfc="none", color="black", capsize=3,
                    zorder=4)
        dx, dy = offsets[i % len(offsets)]
        ax.annotate(r["method"].replace("-l2-", "-"), (r["speedup"], r["avg"]), fontsize=5.5, xytext=(dx, dy),
                    textcoords="offset points", ha="left" if dx > 0 else "right", color="0.25")
    xmax = max([TARGET_SPEEDUP + 0.2, *(r["speedup"] + 0.1 for r in rows)])
    ax.fill_between([TARGET_SPEEDUP, xmax], base - TARGET_LOSS, base + 0.5, color="green", alpha=0.08,
                    label=f">= {TARGET_SPEEDUP}x within {TARGET_LOSS} points (target)")
    ax.set_xlim(0.8, xmax)
    ax.set_xlabel("measured speed-up over the unmodified backbone (sentences/s ratio, same run)")
    ax.set_ylabel("STS avg (SimCSE's test protocol, Spearman x 100)")
    title = ("In-encoder pruning: speed against quality (hollow diamonds: trained, mean ± std over seeds)" if trained
             else "Training-free in-encoder pruning: speed against quality")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=150)
    plt.close(fig)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="scripts/pruning_sweep.sh's OUT folder")
    parser.add_argument("--output", type=Path, help="the figure (PNG)")
    parser.add_argument("--trained", type=Path, help="scripts/pruned_training.sh's KEEP_DIR: add the trained runs")
    args = parser.parse_args(argv)
    base, rows = collect(args.root)
    trained = collect_trained(args.root, args.trained) if args.trained else None
    text = table(base, rows)
    if trained:
        text += "\n\n" + trained_table(base, trained)
    print(text)
    if args.output:
        plot(base, rows, args.output, trained)
        print(f"\nwrote {args.output}")
    return text


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
