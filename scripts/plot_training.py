"""Plot the Gumbel temperature and the keep statistics over training from runs' trainer_state.json.

    python scripts/plot_training.py results/cpu-minilm-unsup-gs/seed* --output docs/figures/unsup_gs_training.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SERIES = (("tau", "Gumbel temperature tau"), ("keep_prob", "mean keep probability p"),
          ("keep_rate", "fraction kept (p >= 0.5)"), ("loss", "training loss"))


def read_history(run: Path) -> list[dict]:
    """Training log entries of a run folder (or of its last checkpoint if training was cut short)."""
    state = run / "trainer_state.json"
    if not state.exists():
        checkpoints = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        if not checkpoints:
            raise SystemExit(f"error: {run} has no trainer_state.json (is it a training output folder?)")
        state = checkpoints[-1] / "trainer_state.json"
    return [h for h in json.loads(state.read_text())["log_history"] if "loss" in h]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    fig, axes = plt.subplots(1, len(SERIES), figsize=(4 * len(SERIES), 3.2))
    for run in args.runs:
        history = read_history(run)
        for ax, (key, label) in zip(axes, SERIES):
            points = [(h["step"], h[key]) for h in history if key in h]
            if points:
                ax.plot(*zip(*points), marker=".", label=f"{run.parent.name}/{run.name}")
            ax.set_title(label, fontsize=9)
            ax.set_xlabel("optimizer step")
    axes[0].legend(fontsize=6)
    if args.title:
        fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
