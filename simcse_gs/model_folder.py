"""What a model path a user gives is, before anything is loaded from it: the one place every command asks.

``evaluation.py``, ``export.py``, keep maps and resuming take a model path from a user. This module answers, once,
with messages that say what to do:

* **local or hub**: a path that exists, is absolute, starts with ``.``/``~`` or has more than one ``/`` is local
  (:func:`~simcse_gs.model.folder_checks.looks_local`), so a typo never turns into a hub request;
* **which kind**: a ``simcse_gs`` checkpoint (``config.json`` model type ``simcse_gs``), a sentence-transformers
  folder (``modules.json``, e.g. what ``export.py`` writes or all-MiniLM-L6-v2), or a plain Hugging Face encoder;
* **are its weights sound** (:mod:`simcse_gs.model.folder_checks`, which a checkpoint's own ``from_pretrained``
  runs too);
* **its maximum input length** (:func:`~simcse_gs.model.encoding.max_input_length`): the tokenizer's limit capped by
  the position embeddings, or a sentence-transformers folder's own ``max_seq_length``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model.encoding import max_input_length
from .model.folder_checks import (
    CONFIG_NAME,
    PICKLE_WEIGHTS,
    WEIGHTS_NAME,
    ModelFolderError,
    WrongModelKindError,
    check_kind,
    check_model_folder,
    check_weights,
    looks_local,
    read_json,
    read_model_config,
)

ST_MODULES = "modules.json"
ST_CONFIG = "sentence_bert_config.json"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")
KINDS = ("simcse_gs", "sentence_transformers", "hf")

__all__ = [
    "CONFIG_NAME", "KINDS", "PICKLE_WEIGHTS", "WEIGHTS_NAME", "ModelFolder", "ModelFolderError",
    "WrongModelKindError", "check_model_folder", "inspect_model", "load_checkpoint", "looks_local",
    "max_input_length", "read_json", "sentence_transformers_max_length",
]


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
    if not Path(text).expanduser().exists() and not looks_local(text):
        return _inspect_hub(text, expect, hint)
    path, config = read_model_config(text)
    kind = _kind(path, config)
    check_kind(text, kind, config, expect, hint)
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
    check_kind(name, kind, config, expect, hint)
    return ModelFolder(name, False, kind, config)


def load_checkpoint(name: str | os.PathLike, hint: str = "", device: Any = None) -> Any:
    """A :class:`~simcse_gs.model.SimCSEGSModel` from a checked checkpoint, with its tokenizer."""
    from .model import SimCSEGSModel

    inspect_model(name, expect="simcse_gs", hint=hint)
    model = SimCSEGSModel.from_pretrained(name)
    if model.tokenizer is None:
        raise ModelFolderError(
            f"{name} has no tokenizer files ({' / '.join(TOKENIZER_FILES[:2])}) beside its weights: save the "
            "checkpoint with SimCSEGSModel.save_pretrained (it writes them), or copy them from the backbone."
        )
    return model.to(device) if device is not None else model


