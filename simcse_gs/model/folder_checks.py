"""Checks on a local model folder before anything is loaded from it, with messages that say what to do.

What :meth:`SimCSEGSModel.from_pretrained <.modeling.SimCSEGSModel.from_pretrained>` asks before it loads a local
folder (and every command asks through :mod:`simcse_gs.model_folder`): is the path meant as local (so a typo never
turns into a hub request, :func:`looks_local`); is it a folder with a ``config.json`` of the expected kind; are its
weights there and sound: ``model.safetensors`` (or every shard its index names), each header parsing and covering
the whole file (cheap: no tensor data is read, nothing is unpickled). A simcse-gs checkpoint is read from
safetensors only; a plain encoder may also have ``pytorch_model.bin``, which transformers loads with
``weights_only=True``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
CHECKPOINT_KIND = "simcse_gs"
NOT_A_CHECKPOINT_HINT = ("To train from it, pass it as --model_name_or_path to train.py; to evaluate a plain "
                         "encoder, use evaluation.py with --pooler.")


class ModelFolderError(OSError):
    """A model path that cannot be loaded as it is; the message names the folder or file and what to do."""


class WrongModelKindError(ModelFolderError, ValueError):
    """A sound model folder of another kind than the command needs (e.g. a plain BERT where a checkpoint is due)."""


def looks_local(name: str | os.PathLike) -> bool:
    """Whether ``name`` is meant as a local path (never sent to the hub): see the module docstring."""
    text = os.fspath(name)
    return (os.path.exists(text) or os.path.isabs(text) or text.startswith((".", "~")) or text.count("/") > 1
            or "\\" in text)


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON object from ``path``, or :class:`ModelFolderError` naming the file."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFolderError(f"{path} cannot be read as JSON ({err}).") from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{path} does not hold a JSON object.")
    return data


def check_safetensors_file(path: str | os.PathLike) -> None:
    """Open the file's header (cheap: no tensor data is read) and fail clearly if it is not valid safetensors."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError) as err:
        raise ModelFolderError(
            f"{path} is not a valid safetensors file ({err}): it is truncated, overwritten, or was never completely "
            "written. Copy the folder again from where it was trained, or load an earlier checkpoint-N."
        ) from None


def weight_files(folder: str | os.PathLike) -> list[Path]:
    """The safetensors files of a model folder (one file, or the shards its index names); [] if none."""
    folder = Path(folder)
    if (folder / WEIGHTS_NAME).is_file():
        return [folder / WEIGHTS_NAME]
    if (folder / WEIGHTS_INDEX_NAME).is_file():
        weight_map = read_json(folder / WEIGHTS_INDEX_NAME).get("weight_map")
        shards = sorted(set(weight_map.values())) if isinstance(weight_map, dict) else []
        if not shards:
            raise ModelFolderError(f"{folder / WEIGHTS_INDEX_NAME} names no weight files.")
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise ModelFolderError(
                f"{folder}: the weight index names {len(shards)} shard(s) but {missing[:3]} are missing. Copy the "
                "whole folder again."
            )
        return [folder / s for s in shards]
    return []


def check_weights(folder: str | os.PathLike, safetensors_only: bool) -> None:
    """Every weight file of ``folder`` is there and sound; pickled weights count only if not ``safetensors_only``."""
    folder = Path(folder)
    files = weight_files(folder)
    for path in files:
        check_safetensors_file(path)
    if files:
        return
    pickled = [name for name in PICKLE_WEIGHTS if (folder / name).is_file()]
    if pickled and not safetensors_only:
        return  # transformers loads it with torch.load(weights_only=True); see docs/ERRORS.md, "Safe loading"
    if pickled:
        detail = (f" It only has {pickled[0]}, a pickle file, which this project does not load (pickles can run "
                  "code). Re-save it with save_pretrained(..., safe_serialization=True) where it was made.")
    elif safetensors_only:
        detail = (" The training run was probably stopped before it saved the model: use one of its checkpoint-N "
                  "folders, or train again.")
    else:
        detail = f" Expected a folder written by save_pretrained ({WEIGHTS_NAME} or {PICKLE_WEIGHTS[0]})."
    raise ModelFolderError(f"{folder} has no weights ({WEIGHTS_NAME} is missing).{detail}")


def read_model_config(name: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(path, ``config.json`` as a dict) of a local model folder, or :class:`ModelFolderError` saying what is
    wrong with the path."""
    text = os.fspath(name)
    path = Path(text).expanduser()
    if not path.exists():
        raise ModelFolderError(f"Model folder not found: {text} (a local path, so the hub is not asked).")
    if not path.is_dir():
        raise ModelFolderError(f"{text} is a file; give the folder that holds {CONFIG_NAME} and {WEIGHTS_NAME}.")
    if not (path / CONFIG_NAME).is_file():
        raise ModelFolderError(
            f"{text} has no {CONFIG_NAME}, so it is not a model folder. Point at a training --output_dir, one of "
            "its checkpoint-N folders, or a folder written by save_pretrained."
        )
    return path, read_json(path / CONFIG_NAME)


def check_kind(name: str, kind: str, config: dict[str, Any], expect: str | None, hint: str) -> None:
    if expect is not None and kind != expect:
        what = "a SimCSE-GS checkpoint (config.json model_type 'simcse_gs')" if expect == CHECKPOINT_KIND else expect
        raise WrongModelKindError(
            f"{name} holds a '{config.get('model_type')}' model, not {what}.{' ' + hint if hint else ''}"
        )


def check_model_folder(folder: str | os.PathLike, hint: str = NOT_A_CHECKPOINT_HINT) -> None:
    """Check that a local folder is a complete SimCSE-GS checkpoint (config type, safetensors weights); raise
    :class:`ModelFolderError` (:class:`WrongModelKindError` for another kind of model) if not."""
    path, config = read_model_config(folder)
    kind = CHECKPOINT_KIND if config.get("model_type") == CHECKPOINT_KIND else "hf"
    check_kind(os.fspath(folder), kind, config, CHECKPOINT_KIND, hint)
    check_weights(path, safetensors_only=True)
