"""Plot STS (dev) against the measured inference keep rate for the keep-rate sweep, and print its table.

    python scripts/plot_sweep.py docs/results/sweep --output docs/figures/keep_rate_sweep.png --baseline 83.26

Reads <root>/r<R>/seed<S>/eval_dev.json (evaluation.py --mode dev): STS-B dev, SICK-R dev, their mean, and the
keep statistics of the evaluated sentences.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(root: Path) -> dict[float, list[dict]]:
    runs: dict[float, list[dict]] = {}
    for file in sorted(root.glob("r*/seed*/eval_dev.json")):
        record = json.loads(file.read_text())["models"][0]
        target = float(file.parent.parent.name[1:])
        dev = record["dev"]
        runs.setdefault(target, []).append({"sts": dev["avg_sts"], "stsb": dev["stsb_spearman"],
                                            "sickr": dev["sickr_spearman"],
                                            "keep_rate": 100 * record["keep_stats"]["keep_rate"],
                                            "keep_prob": 100 * record["keep_stats"]["keep_prob"]})
    if not runs:
        raise SystemExit(f"error: no r*/seed*/eval_dev.json under {root}")
    return dict(sorted(runs.items(), reverse=True))


def fmt(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--baseline", type=float, help="STS dev avg of the model before training (a dashed line)")
    args = parser.parse_args(argv)
    runs = load(args.root)
    print("| target r | n | kept (p≥0.5) % | mean p % | STS-B dev | SICK-R dev | avg |")
    print("|---|---|---|---|---|---|---|")
    for r, rows in runs.items():
        cols = [fmt([row[k] for row in rows]) for k in ("keep_rate", "keep_prob", "stsb", "sickr", "sts")]
        print(f"| {r} | {len(rows)} | " + " | ".join(cols) + " |")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for r, rows in runs.items():
        ax.scatter([row["keep_rate"] for row in rows], [row["sts"] for row in rows], label=f"r = {r}")
    if args.baseline is not None:
        ax.axhline(args.baseline, color="grey", linestyle="--", linewidth=1, label="before training")
    ax.set_xlabel("inference keep rate (% of decided tokens, dev sentences)")
    ax.set_ylabel("STS-B + SICK-R dev avg (x100)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=120)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
