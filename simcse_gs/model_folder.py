"""What a model path is, before anything is loaded from it: the one place every command asks.

``evaluation.py``, ``export.py``, keep maps and :meth:`SimCSEGSModel.from_pretrained` all take a model path from a
user. This module answers, once, with messages that say what to do:

* **local or hub**: a path that exists, is absolute, starts with ``.``/``~`` or has more than one ``/`` is local
  (:func:`looks_local`), so a typo never turns into a hub request;
* **which kind**: a ``simcse_gs`` checkpoint (``config.json`` model type ``simcse_gs``), a sentence-transformers
  folder (``modules.json``, e.g. what ``export.py`` writes or all-MiniLM-L6-v2), or a plain Hugging Face encoder;
* **are its weights sound**: ``model.safetensors`` (or every shard its index names) is there and each header parses
  and covers the whole file (cheap: no tensor data is read, nothing is unpickled). A simcse-gs checkpoint is read
  from safetensors only; a plain encoder may also have ``pytorch_model.bin``, which transformers loads with
  ``weights_only=True``;
* **its maximum input length** (:func:`max_input_length`): the tokenizer's limit capped by the position
  embeddings, or a sentence-transformers folder's own ``max_seq_length``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
ST_MODULES = "modules.json"
ST_CONFIG = "sentence_bert_config.json"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")
KINDS = ("simcse_gs", "sentence_transformers", "hf")

# Model types whose position ids start after the padding index (RoBERTa family): pad_token_id + 1 fewer positions.
_OFFSET_POSITION_TYPES = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text",
                          "roberta-prelayernorm", "mpnet"}
_UNSET_MAX_LENGTH = 1_000_000  # tokenizers without a configured limit report ~1e30


class ModelFolderError(OSError):
    """A model path that cannot be loaded as it is; the message names the folder or file and what to do."""


class WrongModelKindError(ModelFolderError, ValueError):
    """A sound model folder of another kind than the command needs (e.g. a plain BERT where a checkpoint is due)."""


@dataclass(frozen=True)
class ModelFolder:
    """What :func:`inspect_model` found: the path as given, local or hub, the kind and the config dict."""

    name: str
    local: bool
    kind: str
    config: dict[str, Any] = field(repr=False)
    st_max_seq_length: int | None = None  # sentence-transformers folders: how the model is used natively

    @property
    def model_type(self) -> str | None:
        return self.config.get("model_type")

    @property
    def use_gs(self) -> bool:
        return self.kind == "simcse_gs" and bool(self.config.get("use_gs"))


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


def sentence_transformers_max_length(folder: str | os.PathLike) -> int | None:
    """``max_seq_length`` of a local sentence-transformers folder (``sentence_bert_config.json``), if any."""
    path = Path(folder) / ST_CONFIG
    if not path.is_file():
        return None
    try:
        value = read_json(path).get("max_seq_length")
    except ModelFolderError:
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


def _kind(folder: Path, config: dict[str, Any]) -> str:
    if config.get("model_type") == "simcse_gs":
        return "simcse_gs"
    return "sentence_transformers" if (folder / ST_MODULES).is_file() else "hf"


def inspect_model(name: str | os.PathLike, expect: str | None = None, hint: str = "") -> ModelFolder:
    """Check a model path (see the module docstring) and say what it is, before anything is loaded.

    ``expect="simcse_gs"`` refuses any other kind with :class:`WrongModelKindError` (``hint`` says what to do
    instead). A name that does not look local is looked up on the hub (config only).
    """
    text = os.fspath(name)
    path = Path(text).expanduser()
    if not path.exists() and not looks_local(text):
        return _inspect_hub(text, expect, hint)
    if not path.exists():
        raise ModelFolderError(f"Model folder not found: {text} (a local path, so the hub is not asked).")
    if not path.is_dir():
        raise ModelFolderError(f"{text} is a file; give the folder that holds {CONFIG_NAME} and {WEIGHTS_NAME}.")
    if not (path / CONFIG_NAME).is_file():
        raise ModelFolderError(
            f"{text} has no {CONFIG_NAME}, so it is not a model folder. Point at a training --output_dir, one of "
            "its checkpoint-N folders, or a folder written by save_pretrained."
        )
    config = read_json(path / CONFIG_NAME)
    kind = _kind(path, config)
    _check_kind(text, kind, config, expect, hint)
    check_weights(path, safetensors_only=kind == "simcse_gs")
    st_limit = sentence_transformers_max_length(path) if kind == "sentence_transformers" else None
    return ModelFolder(text, True, kind, config, st_limit)


def _inspect_hub(name: str, expect: str | None, hint: str) -> ModelFolder:
    from transformers import PretrainedConfig

    try:
        config, _ = PretrainedConfig.get_config_dict(name)
    except Exception as err:  # offline, no such repo, gated: whatever the hub client raises
        lines = str(err).strip().splitlines()
        raise ModelFolderError(
            f"{name}: no such local folder, and it could not be loaded from the Hugging Face Hub "
            f"({type(err).__name__}: {lines[0] if lines else ''})"
        ) from None
    kind = "simcse_gs" if config.get("model_type") == "simcse_gs" else "hf"
    _check_kind(name, kind, config, expect, hint)
    return ModelFolder(name, False, kind, config)


def _check_kind(name: str, kind: str, config: dict[str, Any], expect: str | None, hint: str) -> None:
    if expect is not None and kind != expect:
        what = "a SimCSE-GS checkpoint (config.json model_type 'simcse_gs')" if expect == "simcse_gs" else expect
        raise WrongModelKindError(
            f"{name} holds a '{config.get('model_type')}' model, not {what}.{' ' + hint if hint else ''}"
        )


def load_checkpoint(name: str | os.PathLike, hint: str = "", device: Any = None) -> Any:
    """A :class:`~simcse_gs.modeling.SimCSEGSModel` from a checked checkpoint, with its tokenizer."""
    from .modeling import SimCSEGSModel

    inspect_model(name, expect="simcse_gs", hint=hint)
    model = SimCSEGSModel.from_pretrained(name)
    if model.tokenizer is None:
        raise ModelFolderError(
            f"{name} has no tokenizer files ({' / '.join(TOKENIZER_FILES[:2])}) beside its weights: save the "
            "checkpoint with SimCSEGSModel.save_pretrained (it writes them), or copy them from the backbone."
        )
    return model.to(device) if device is not None else model


def max_input_length(tokenizer: Any, config: Any) -> int:
    """Longest input the encoder accepts: the tokenizer's limit, capped by the usable position embeddings.

    BERT-like models use positions 0..P-1; the RoBERTa family starts after the padding index, so it has
    ``P - pad_token_id - 1`` (514 - 2 = 512 for roberta-base). ``config`` is the encoder's config (a
    ``PretrainedConfig`` or its dict).
    """
    get = config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)
    limits = []
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if tokenizer_limit and tokenizer_limit < _UNSET_MAX_LENGTH:
        limits.append(int(tokenizer_limit))
    positions = get("max_position_embeddings")
    if positions:
        offset = (get("pad_token_id") or 0) + 1 if get("model_type") in _OFFSET_POSITION_TYPES else 0
        limits.append(int(positions) - offset)
    return min(limits) if limits else 512
