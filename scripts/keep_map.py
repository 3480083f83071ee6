"""Render which tokens a GS checkpoint's proxy keeps: a PNG heatmap, an HTML page, and the data as JSON.

    python scripts/keep_map.py --model_name_or_path outputs/unsup-gs \
        --sentences "A man is playing a guitar." data/some_sentences.txt --output_dir keep_map

Each ``--sentences`` value is a text file (one sentence per line) if such a file exists, else a sentence.
The logic lives in :mod:`simcse_gs.evaluation.keep_map` (also the ``simcse-gs-keep-map`` console command).
"""

import sys

from simcse_gs.evaluation.keep_map import main, read_sentences

__all__ = ["main", "read_sentences"]

if __name__ == "__main__":
    sys.exit(main())
