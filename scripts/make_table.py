"""Turn evaluation.py result JSON files of several runs into markdown tables with mean ± std per group.

    python scripts/make_table.py results/                       # every eval_test.json below results/
    python scripts/make_table.py a/seed1/eval_test.json a/seed2/eval_test.json --output table.md

A run's group is its folder name, or its parent's when the folder is named seed<N> (run_experiment.sh's
layout: results/<config>/seed<N>/eval_test.json), so seeds of one config are averaged together. The std is the
sample standard deviation (ddof = 1) over the group's runs; groups of one run show the value alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from simcse_gs.evaluation.sts import ORIGINAL_GS_COLUMNS as ORIGINAL
from simcse_gs.evaluation.sts import SIMCSE_TABLE as SIMCSE

KEEP = [("keep_rate", "kept (p≥0.5)"), ("keep_prob", "mean p")]


def group_name(path: Path) -> str:
    folder = path.parent
    return folder.parent.name if folder.name.startswith("seed") else folder.name


def collect(paths: list[Path]) -> dict[str, list[dict]]:
    """Model records of every result file found, grouped by run group (in first-seen order)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.rglob("eval_test.json"))
        elif path.is_file():
            files.append(path)
        else:
            raise SystemExit(f"error: {path} does not exist")
    if not files:
        raise SystemExit(f"error: no eval_test.json found under {', '.join(map(str, paths))}")
    groups: dict[str, list[dict]] = defaultdict(list)
    for file in files:
        payload = json.loads(file.read_text(encoding="utf-8"))
        for record in payload.get("models", []):
            if record.get("simcse"):
                groups[group_name(file)].append(record)
    return groups


def mean_std(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return "–"
    values = [v * scale for v in values]
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(groups: dict[str, list[dict]]) -> str:
    head = ["run", "n", *(label for _, label in SIMCSE), *(label for _, label in KEEP)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, records in groups.items():
        cells = [name, str(len(records))]
        cells += [mean_std([r["simcse"][key] for r in records if key in r["simcse"]]) for key, _ in SIMCSE]
        keep = [r["keep_stats"] for r in records if r.get("keep_stats")]
        cells += [mean_std([k[key] for k in keep], 100.0, 1) for key, _ in KEEP]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def original_table(groups: dict[str, list[dict]]) -> str:
    head = ["run", *ORIGINAL]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, records in groups.items():
        rows = [r["original_gs"] for r in records if r.get("original_gs")]
        if rows:
            lines.append("| " + " | ".join([name, *(mean_std([row[k] for row in rows]) for k in ORIGINAL)]) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="result folders or eval_test.json files")
    parser.add_argument("--output", type=Path, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    groups = collect(args.paths)
    text = ("Spearman x 100, SimCSE's test protocol (STS12-16 `all`, STS-B test, SICK-R test); keep columns: % of "
            "decided tokens over the evaluated sentences (GS runs).\n\n" + table(groups))
    original = original_table(groups)
    if original:
        text += "\n\nThe original GS repo's columns (x 100; see docs/EVALUATION.md):\n\n" + original
    print(text)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    return text


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
