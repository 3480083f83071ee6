"""One command-line convention for ``train.py``, ``evaluation.py``, ``export.py`` and ``scripts/keep_map.py``.

* Flags are snake_case (``--model_name_or_path``, ``--output_dir``), as Hugging Face's own scripts spell them.
* A user's mistake found before the work starts (a bad flag value, a missing file or folder, a damaged checkpoint,
  missing data) prints one line, ``PROG: error: <message>``, on stderr and exits with :data:`USAGE_ERROR` (2): the
  prefix and status argparse itself uses for an unknown flag.
* A failure during the run (a NaN loss, a checkpoint that breaks while training, an output that cannot be
  written) prints ``PROG: error: <message>`` and exits with :data:`RUN_FAILURE` (1).
* Anything else is a bug and keeps its traceback; ``SIMCSE_GS_TRACEBACK=1`` shows the traceback of the handled
  errors too.

docs/ERRORS.md has the table of every handled error.
"""

from __future__ import annotations

import os
import sys

USAGE_ERROR = 2
RUN_FAILURE = 1
TRACEBACK_ENV = "SIMCSE_GS_TRACEBACK"


def show_tracebacks() -> bool:
    return os.environ.get(TRACEBACK_ENV, "") not in ("", "0")


def fail(prog: str, err: BaseException, code: int) -> int:
    """Print ``PROG: error: <err>`` and return ``code`` (re-raise ``err`` instead under ``SIMCSE_GS_TRACEBACK=1``)."""
    if show_tracebacks():
        raise err
    print(f"{prog}: error: {err}", file=sys.stderr)
    return code
