"""STS evaluation of simcse-gs checkpoints and plain Hugging Face encoders: ``python evaluation.py --help``.

    python evaluation.py --model_name_or_path outputs/unsup-gs --mode test
    python evaluation.py --model_name_or_path bert-base-uncased outputs/unsup-gs --pooler avg --mode dev

The logic lives in :mod:`simcse_gs.evaluation.evaluate` (``main(argv)`` is this command; ``evaluate(argv)`` returns the
numbers). See docs/EVALUATION.md.
"""

import sys

from simcse_gs.evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
