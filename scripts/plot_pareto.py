"""STS average against the inference keep rate, per selection method: the table and the Pareto figure.

    python scripts/plot_pareto.py docs/results/selection-matched docs/results/selection \
        --output docs/figures/keep_pareto.png

Reads ``<root>/<method>-r<rate>/seed<N>/eval_test.json`` (scripts/selection_experiment.sh's layout) under each root;
a group may live in one root only, so that no run is counted twice (the first root that has it wins: pass the
root whose runs you want first). The group
``simcse-r1.0`` (plain SimCSE, nothing dropped) is every method's point at r = 1. Prints a markdown table (rows:
r; columns: methods; cells: mean ± sample std of the test-protocol average over seeds, and n) and draws the means
with their std as error bars, at the measured fraction of decided tokens kept (x).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

GROUP = re.compile(r"^(?P<method>.+)-r(?P<rate>[0-9.]+)$")
PLAIN = "simcse"
LABELS = {"topk": "learned: top-k", "hard-concrete": "learned: hard-concrete", "idf-drop": "IDF heuristic",
          "random-drop": "random"}


def collect(*roots: Path) -> dict[str, dict[float, list[tuple[float, float]]]]:
    """{method: {rate: [(avg, kept fraction), ...one per seed]}}; the plain runs under the key ``simcse``."""
    runs: dict[str, dict[float, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    taken: dict[str, Path] = {}
    for root in roots:
        for path in sorted(root.glob("*/seed*/eval_test.json")):
            group = path.parent.parent.name
            match = GROUP.match(group)
            if not match or taken.setdefault(group, root) != root:
                continue
            record = json.loads(path.read_text(encoding="utf-8"))["models"][0]
            kept = (record.get("keep_stats") or {}).get("keep_rate", 1.0)
            runs[match["method"]][float(match["rate"])].append((record["simcse"]["avg"], kept))
    if not runs:
        raise SystemExit(f"error: no <method>-r<rate>/seed*/eval_test.json under {', '.join(map(str, roots))}")
    return runs


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f} (n=1)"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} (n={len(values)})"


def table(runs: dict[str, dict[float, list[tuple[float, float]]]]) -> str:
    methods = [m for m in LABELS if m in runs] + sorted(m for m in runs if m not in LABELS and m != PLAIN)
    rates = sorted({r for m in runs.values() for r in m}, reverse=True)
    head = ["r", *(LABELS.get(m, m) for m in methods)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rate in rates:
        cells = [f"{rate:g}"]
        for method in methods:
            points = runs[method].get(rate) or (runs[PLAIN].get(rate) if rate == 1.0 and PLAIN in runs else None)
            cells.append(cell([avg for avg, _ in points]) if points else "–")
        lines.append("| " + " | ".join(cells) + " |")
    kept = ["| r | " + " | ".join(LABELS.get(m, m) for m in methods) + " |", "|" + "---|" * (len(methods) + 1)]
    for rate in rates:
        row = [f"{rate:g}"]
        for method in methods:
            points = runs[method].get(rate)
            row.append(f"{100 * statistics.mean(k for _, k in points):.1f}" if points else "–")
        kept.append("| " + " | ".join(row) + " |")
    return ("STS avg (SimCSE's test protocol, Spearman x 100), mean ± std over seeds:\n\n" + "\n".join(lines)
            + "\n\n% of decided tokens kept at inference (measured on the STS test sentences):\n\n" + "\n".join(kept))


def plot(runs: dict[str, dict[float, list[tuple[float, float]]]], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    plain = runs.get(PLAIN, {}).get(1.0, [])
    for method, points in runs.items():
        if method == PLAIN:
            continue
        series = sorted(points.items(), reverse=True)
        if plain:
            series = [(1.0, plain), *series]
        xs = [statistics.mean(k for _, k in p) for _, p in series]
        ys = [statistics.mean(a for a, _ in p) for _, p in series]
        errs = [statistics.stdev([a for a, _ in p]) if len(p) > 1 else 0.0 for _, p in series]
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=LABELS.get(method, method))
    if plain:
        ax.axhline(statistics.mean(a for a, _ in plain), color="grey", linestyle="--", linewidth=0.8,
                   label="plain SimCSE (r = 1)")
    ax.invert_xaxis()
    ax.set_xlabel("fraction of tokens kept at inference (decided tokens, measured)")
    ax.set_ylabel("STS avg (test protocol, Spearman x 100)")
    ax.set_title("Token selection: STS against keep rate (mean ± std over seeds)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=150)
    plt.close(fig)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", type=Path, nargs="+",
                        help="folder(s) of <method>-r<rate>/seed<N>/eval_test.json; a group is read from the first")
    parser.add_argument("--output", type=Path, help="the figure (PNG)")
    args = parser.parse_args(argv)
    runs = collect(*args.roots)
    text = table(runs)
    print(text)
    if args.output:
        plot(runs, args.output)
        print(f"\nwrote {args.output}")
    return text


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
