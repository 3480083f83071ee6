"""Where the data files are: training files by SimCSE's basenames, and the STS sets.

**Training files** keep SimCSE's basenames in the repository's git-ignored ``data/`` folder, which is what the
configs name (``data/wiki1m_for_simcse.txt``, ``data/nli_for_simcse.csv``, and the CPU-sized
``data/wiki1m_for_simcse.head11914.txt``, ``data/snli_dev_test_triples_for_simcse.csv``). :func:`resolve_train_file`
finds such a file, in this order, and says which copy it used:

1. the path as given, if it exists;
2. ``$SIMCSE_GS_DATA/<basename>`` (a folder of training files; also where the wiki1m sample is fetched to);
3. ``<repository>/data/<basename>`` (a run started from another folder);
4. a shared copy in the layout of the project machines, ``$SIMCSE_SHARED_DATA/train/{wiki,nli}/<basename>``
   (default ``<repository>/../shared/data``), for the two CPU-sized files.

**STS sets**: ``--senteval_data`` / ``$SENTEVAL_DATA``, else ``SentEval/data/downstream`` (:mod:`senteval.paths`).
:func:`resolve_sts_data` adds the shared copy (``$SIMCSE_SHARED_DATA/downstream``) for the scripts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = REPO / "data"
DEFAULT_STS_DIR = REPO / "SentEval" / "data" / "downstream"
DATA_ENV = "SIMCSE_GS_DATA"
SHARED_ENV = "SIMCSE_SHARED_DATA"
PROG = "data_files"

# basename -> path inside the shared copy (None: no shared copy; scripts/download_data.sh fetches it)
TRAIN_FILES = {
    "wiki1m_for_simcse.head11914.txt": "train/wiki/wiki1m_for_simcse.head11914.txt",
    "snli_dev_test_triples_for_simcse.csv": "train/nli/snli_dev_test_triples_for_simcse.csv",
    "wiki1m_for_simcse.txt": None,
    "nli_for_simcse.csv": None,
}


def say(message: str) -> None:
    """A message of the data tools on stderr (stdout carries the path a script reads)."""
    print(f"{PROG}: {message}", file=sys.stderr)


def shared_data_root() -> Path:
    return Path(os.environ.get(SHARED_ENV) or REPO.parent / "shared" / "data")


def data_dir() -> Path:
    """Where training files are looked for first and fetched to: ``$SIMCSE_GS_DATA``, else ``data/``."""
    return Path(os.environ.get(DATA_ENV) or DATA_DIR)


def train_file_candidates(path: str | os.PathLike) -> list[Path]:
    """Every place :func:`resolve_train_file` looks, in order."""
    given = Path(path).expanduser()
    name = given.name
    candidates = [given]
    if os.environ.get(DATA_ENV):
        candidates.append(Path(os.environ[DATA_ENV]) / name)
    candidates.append(DATA_DIR / name)
    shared = TRAIN_FILES.get(name)
    if shared:
        candidates.append(shared_data_root() / shared)
    return list(dict.fromkeys(candidates))


def resolve_train_file(path: str | os.PathLike | None, log: bool = True) -> str | None:
    """The copy of a training file to use (see the module docstring); the path as given when none exists."""
    if path is None:
        return None
    for candidate in train_file_candidates(path):
        if candidate.is_file():
            if log and candidate != Path(path).expanduser():
                say(f"training file {path} not found; using {candidate}")
            return str(candidate)
    return str(path)


def resolve_sts_data(explicit: str | None = None, log: bool = True) -> str | None:
    """The STS folder: ``explicit`` / ``$SENTEVAL_DATA`` / ``SentEval/data/downstream`` as the evaluation finds it,
    else the shared copy; ``None`` when none is usable."""
    import senteval

    try:
        return senteval.resolve_task_path(explicit or None)
    except senteval.SentEvalDataError:
        if explicit or os.environ.get("SENTEVAL_DATA"):
            return None  # a folder was named: do not silently use another one
    shared = shared_data_root() / "downstream"
    try:
        path = senteval.resolve_task_path(shared)
    except senteval.SentEvalDataError:
        return None
    if log:
        say(f"STS data: using the shared copy {path}")
    return path
