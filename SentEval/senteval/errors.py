"""Exception types, so callers can tell "data is missing" apart from "data is malformed"."""

from __future__ import annotations

from pathlib import Path

ENV_VAR = "SENTEVAL_DATA"
DOWNLOAD_SCRIPT = "SentEval/data/downstream/download_dataset.sh"
# How to get the data of the transfer tasks (MR ... MRPC) and of SICK/ (which comes with the STS sets).
TRANSFER_FETCH = "python -m simcse_gs.data_files transfer --fetch"
STS_FETCH = "python -m simcse_gs.data_files sts --fetch"


class SentEvalError(Exception):
    """Base class of every error raised by this package."""


class SentEvalDataError(SentEvalError, FileNotFoundError):
    """The evaluation data (or one of its files) is not where it should be."""


class SentEvalFormatError(SentEvalError, ValueError):
    """A data file exists but does not have the expected format; the message names file and line."""


class SentEvalTaskUnavailableError(SentEvalDataError, ValueError):
    """A known task was asked for, but the data folder does not hold it at all (its folder is missing).

    Raised before anything is encoded. It is a ``ValueError`` too, like an unknown task name: the task list cannot
    be run against this folder as given.
    """


def missing_data_message(path: str | Path, detail: str = "") -> str:
    """Message for missing data that always says how to fix it (flag, env var, download script)."""
    what = f" ({detail})" if detail else ""
    return (
        f"SentEval data not found: {path}{what}. "
        f"Set --senteval_data or the {ENV_VAR} environment variable to the folder that contains STS/ and SICK/, "
        f"or run `bash {DOWNLOAD_SCRIPT}` to download the data."
    )


def missing_task_data_message(path: str | Path, detail: str = "", fetch: str = TRANSFER_FETCH) -> str:
    """Message for a missing file of a transfer task: the file, and the command that downloads the task's data."""
    what = f" ({detail})" if detail else ""
    return (
        f"SentEval data not found: {path}{what}. "
        f"Download it with `{fetch}` (or `bash {DOWNLOAD_SCRIPT}`), "
        f"or set --senteval_data or the {ENV_VAR} environment variable to a folder in SentEval's "
        "data/downstream layout."
    )
