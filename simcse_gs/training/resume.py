"""Checks on checkpoint folders before anything is loaded from them, with messages that say what to do.

Two kinds of folder:

* a **model folder** (``save_pretrained`` output, the final output folder, or any ``checkpoint-N``): ``config.json``
  of type ``simcse_gs`` and safetensors weights. :func:`check_model_folder` verifies both, including that every
  safetensors file's header parses and covers the whole file (a truncated or overwritten file fails here, not in
  the middle of loading). Weights are only read from safetensors: a folder with only ``pytorch_model.bin`` (a
  pickle) is refused.
* a **resumable checkpoint** (``checkpoint-N`` written by the Trainer): the model folder plus the optimizer,
  scheduler, RNG state and ``trainer_state.json``. The Trainer writes ``trainer_state.json`` last, so a folder
  without a readable one was cut off while saving (a crash or a kill); :func:`check_resume_checkpoint` refuses it
  and names the complete checkpoints to resume from instead.

Only file names, JSON and safetensors headers are read here; nothing is unpickled. What makes a model folder sound
is decided in :mod:`simcse_gs.model.folder_checks`, for every command alike.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from ..model.folder_checks import ModelFolderError, check_model_folder, read_json

logger = logging.getLogger(__name__)

TRAINER_STATE_NAME = "trainer_state.json"
RESUME_FILES = ("optimizer.pt", "scheduler.pt")  # without them the Trainer silently restarts the optimizer
RNG_STATE_NAME = "rng_state.pth"
LAST = ("last", "latest", "true")  # --resume_from_checkpoint last: the newest complete checkpoint in --output_dir
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")

# A checkpoint folder that cannot be loaded as it is (the name train.py and its callers have always used).
CheckpointError = ModelFolderError

def _step(folder: Path) -> int:
    match = _CHECKPOINT_RE.match(folder.name)
    return int(match.group(1)) if match else -1


def _check_resumable(folder: Path) -> None:
    if not folder.is_dir():
        raise CheckpointError(
            f"--resume_from_checkpoint {folder}: folder not found. Pass a checkpoint-N folder of the run, or "
            "'last' for the newest complete one in --output_dir."
        )
    state = folder / TRAINER_STATE_NAME
    if not state.is_file():
        raise CheckpointError(
            f"{folder} is incomplete: it has no {TRAINER_STATE_NAME}, which the Trainer writes last, so the run "
            "stopped while saving it. Resume from an earlier checkpoint."
        )
    try:
        read_json(state)
    except CheckpointError as err:
        raise CheckpointError(f"{folder} is incomplete or damaged: {err} Resume from an earlier checkpoint.") from None
    check_model_folder(folder)
    missing = [name for name in RESUME_FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{folder} has no {' or '.join(missing)}: it cannot resume training exactly (the optimizer would "
            "restart from scratch; --save_only_model writes such folders). Load it as a model, or resume from a "
            "full checkpoint."
        )


def _is_complete(folder: Path) -> bool:
    try:
        _check_resumable(folder)
    except CheckpointError:
        return False
    return True


def complete_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The resumable ``checkpoint-N`` folders of ``output_dir``, oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    folders = sorted((p for p in root.iterdir() if p.is_dir() and _step(p) >= 0), key=_step)
    return [p for p in folders if _is_complete(p)]


def check_resume_checkpoint(folder: str | os.PathLike) -> None:
    """Check that ``folder`` is a complete checkpoint the Trainer can resume from exactly.

    On failure the message also lists the complete ``checkpoint-N`` folders beside it.
    """
    folder = Path(folder)
    try:
        _check_resumable(folder)
    except CheckpointError as err:
        others = [str(p) for p in complete_checkpoints(folder.parent) if p != folder] if _step(folder) >= 0 else []
        if not others:
            raise
        raise CheckpointError(f"{err} Complete checkpoints beside it: {', '.join(others)}.") from None
    if not (folder / RNG_STATE_NAME).is_file():
        logger.warning("%s has no %s: training resumes, but its random numbers will differ from an uninterrupted "
                       "run.", folder, RNG_STATE_NAME)


def resolve_resume_checkpoint(value: str | None, output_dir: str | None) -> str | None:
    """``--resume_from_checkpoint`` checked: a folder path, or ``last`` for the newest complete checkpoint."""
    if not value:
        return None
    if value.strip().lower() in LAST and not os.path.isdir(value):
        found = complete_checkpoints(output_dir) if output_dir else []
        if not found:
            raise CheckpointError(
                f"--resume_from_checkpoint {value}: no complete checkpoint-N folder in --output_dir {output_dir}."
            )
        return str(found[-1])
    check_resume_checkpoint(value)
    return value
