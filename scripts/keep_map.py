"""Render which tokens a GS checkpoint's proxy keeps: a PNG heatmap, an HTML page, and the data as JSON.

    python scripts/keep_map.py --model_name_or_path outputs/unsup-gs \
        --sentences "A man is playing a guitar." data/some_sentences.txt --output_dir keep_map

Each ``--sentences`` value is a text file (one sentence per line) if such a file exists, else a sentence.
The logic lives in :mod:`simcse_gs.keep_map`.
"""

from __future__ import annotations

import argparse
import os
import sys

from simcse_gs.cli import RUN_FAILURE, USAGE_ERROR, fail
from simcse_gs.keep_map import compute_keep_maps, load_gs_model, write_keep_maps

PROG = "keep_map.py"


def read_sentences(values: list[str], limit: int | None = None) -> list[str]:
    sentences: list[str] = []
    for value in values:
        if os.path.isfile(value):
            with open(value, encoding="utf-8") as f:
                sentences.extend(line.strip() for line in f if line.strip())
        else:
            sentences.append(value)
    return sentences[:limit] if limit else sentences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True, help="A GS checkpoint folder written by train.py.")
    parser.add_argument("--sentences", nargs="+", required=True, help="Sentence(s) and/or text file(s).")
    parser.add_argument("--output_dir", default="keep_map", help="Where keep_map.{png,html,json} go.")
    parser.add_argument("--max_sentences", type=int, default=None, help="Use only the first N sentences.")
    parser.add_argument("--max_png_sentences", type=int, default=50, help="Rows in the PNG (the HTML has all).")
    parser.add_argument("--max_length", type=int, default=None, help="Truncate longer sentences (tokens).")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--keep_budget", type=float, default=None,
                        help="Keep the ceil(r * n) best tokens of every sentence instead of the rule p >= 0.5.")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: where the model loads, CPU).")
    args = parser.parse_args(argv)

    try:
        sentences = read_sentences(args.sentences, args.max_sentences)
        if not sentences:
            raise ValueError("--sentences gave no sentence (empty file?).")
        model = load_gs_model(args.model_name_or_path, args.device)
    except (ValueError, OSError) as err:  # no sentence, unreadable file, not a (sound) GS checkpoint
        return fail(PROG, err, USAGE_ERROR)
    try:
        maps = compute_keep_maps(model, sentences, args.batch_size, args.max_length, args.keep_budget)
    except ValueError as err:  # a keep budget out of range
        return fail(PROG, err, USAGE_ERROR)
    try:
        paths = write_keep_maps(maps, args.output_dir, title=f"keep map: {args.model_name_or_path}",
                                max_png_sentences=args.max_png_sentences)
    except OSError as err:
        return fail(PROG, err, RUN_FAILURE)
    decided = sum(sum(m.decided) for m in maps)
    kept = sum(sum(k and d for k, d in zip(m.kept, m.decided)) for m in maps)
    print(f"{len(maps)} sentences, {decided} decided tokens, {kept / max(decided, 1):.1%} kept by the inference rule")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
