"""Exception types, so callers can tell "data is missing" apart from "data is malformed"."""

from __future__ import annotations

from pathlib import Path

ENV_VAR = "SENTEVAL_DATA"
DOWNLOAD_SCRIPT = "SentEval/data/downstream/download_dataset.sh"


class SentEvalError(Exception):
    """Base class of every error raised by this package."""


class SentEvalDataError(SentEvalError, FileNotFoundError):
    """The evaluation data (or one of its files) is not where it should be."""


class SentEvalFormatError(SentEvalError, ValueError):
    """A data file exists but does not have the expected format; the message names file and line."""


def missing_data_message(path: str | Path, detail: str = "") -> str:
    """Message for missing data that always says how to fix it (flag, env var, download script)."""
    what = f" ({detail})" if detail else ""
    return (
        f"SentEval data not found: {path}{what}. "
        f"Set --senteval_data or the {ENV_VAR} environment variable to the folder that contains STS/ and SICK/, "
        f"or run `bash {DOWNLOAD_SCRIPT}` to download the data."
    )
