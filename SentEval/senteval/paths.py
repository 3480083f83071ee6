"""Where the data lives: explicit argument > $SENTEVAL_DATA > SentEval/data/downstream."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import ENV_VAR, SentEvalDataError, missing_data_message

# SentEval/senteval/paths.py -> SentEval/data/downstream (where download_dataset.sh puts the data)
DEFAULT_TASK_PATH = Path(__file__).resolve().parents[1] / "data" / "downstream"
STS_FOLDERS: tuple[str, ...] = ("STS", "SICK")


def resolve_task_path(explicit: str | os.PathLike[str] | None = None, folders: Sequence[str] = STS_FOLDERS) -> str:
    """Return the data folder to use, checking it exists and holds at least one of ``folders`` (default STS/, SICK/).

    Precedence: ``explicit`` (e.g. ``--senteval_data``) > ``$SENTEVAL_DATA`` > ``SentEval/data/downstream``.
    Empty strings count as unset. Raises SentEvalDataError with instructions when the folder is unusable.
    ``folders`` lets the engine accept a folder that holds only the transfer tasks it was asked for (e.g. ``MR``).
    """
    if explicit is not None and str(explicit) != "":
        candidate, origin = Path(explicit), "given explicitly"
    elif os.environ.get(ENV_VAR):
        candidate, origin = Path(os.environ[ENV_VAR]), f"from ${ENV_VAR}"
    else:
        candidate, origin = DEFAULT_TASK_PATH, "default location"
    candidate = candidate.expanduser()
    if not candidate.is_dir():
        raise SentEvalDataError(missing_data_message(candidate, f"{origin}; folder does not exist"))
    folders = tuple(dict.fromkeys(folders))
    if not any((candidate / folder).is_dir() for folder in folders):
        if folders == STS_FOLDERS:
            which = "neither STS/ nor SICK/"
        else:
            which = "none of " + ", ".join(f"{folder}/" for folder in folders)
        raise SentEvalDataError(missing_data_message(candidate, f"{origin}; folder has {which}"))
    return str(candidate.resolve())
