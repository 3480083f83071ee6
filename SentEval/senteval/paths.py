"""Where the data lives: explicit argument > $SENTEVAL_DATA > SentEval/data/downstream."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ENV_VAR, SentEvalDataError, missing_data_message

# SentEval/senteval/paths.py -> SentEval/data/downstream (where download_dataset.sh puts the data)
DEFAULT_TASK_PATH = Path(__file__).resolve().parents[1] / "data" / "downstream"


def resolve_task_path(explicit: str | os.PathLike[str] | None = None) -> str:
    """Return the data folder to use, checking it exists and holds STS/ or SICK/.

    Precedence: ``explicit`` (e.g. ``--senteval_data``) > ``$SENTEVAL_DATA`` > ``SentEval/data/downstream``.
    Empty strings count as unset. Raises SentEvalDataError with instructions when the folder is unusable.
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
    if not ((candidate / "STS").is_dir() or (candidate / "SICK").is_dir()):
        raise SentEvalDataError(missing_data_message(candidate, f"{origin}; folder has neither STS/ nor SICK/"))
    return str(candidate.resolve())
