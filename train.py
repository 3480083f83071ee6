"""Train SimCSE, with or without the Gumbel-Softmax token-keep proxy: ``python train.py --help``.

    python train.py --train_file data/wiki1m_for_simcse.txt --output_dir outputs/unsup-gs
    python train.py configs/cpu-minilm-unsup-gs.yaml            # the same from a YAML/JSON file
    python train.py configs/cpu-minilm-unsup-gs.yaml --seed 2   # ... with flags that override the file

The logic lives in :mod:`simcse_gs.training.train` (also the ``simcse-gs-train`` console command); the names below are
re-exported for scripts and tests that import ``train``.
"""

import sys

from simcse_gs.training.train import check_last_batch, check_sts_data, cli, main, parse_args, setup, train_and_save

__all__ = ["check_last_batch", "check_sts_data", "cli", "main", "parse_args", "setup", "train_and_save"]

if __name__ == "__main__":
    sys.exit(cli())
