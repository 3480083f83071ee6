"""The whole SimCSE-GS model as one sentence-transformers module, so ``SentenceTransformer`` encodes like we do.

sentence-transformers' own modules (Transformer, Pooling, Dense) cannot run the proxy or drop tokens in every
attention layer, so a GS export lists this module alone in ``modules.json``. Every saved folder carries this file
with the rest of the model's code (:meth:`SimCSEGSModel.save_code`); sentence-transformers imports it from the
folder when asked with ``trust_remote_code=True``:

    SentenceTransformer(path, trust_remote_code=True).encode(sentences)

Each batch goes through :meth:`SimCSEGSModel.encode_batch`, exactly what :meth:`SimCSEGSModel.encode` runs: the
proxy scores every token, the inference keep rule (p >= 0.5, else the most probable decided token) drops the others in
every attention layer and in ``avg`` pooling, then the pooler and (where SimCSE evaluates with it) the MLP head.
Needs sentence-transformers >= 6.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import torch

try:
    from sentence_transformers.base.modules import InputModule
except ImportError as err:  # sentence-transformers < 6 has another module interface
    raise ImportError("The SimCSE-GS sentence-transformers module needs sentence-transformers >= 6 "
                      "(pip install -U sentence-transformers).") from err

from .encoding import max_input_length
from .modeling import SimCSEGSModel

CONFIG_NAME = "sentence_bert_config.json"


class SimCSEGSEncoder(InputModule):
    """Tokenise, score tokens with the proxy, keep by the inference rule, encode, pool: ``sentence_embedding``."""

    config_file_name = CONFIG_NAME
    config_keys = ["max_seq_length"]

    def __init__(self, model: SimCSEGSModel, max_seq_length: int | None = None):
        super().__init__()
        if model.tokenizer is None:
            raise ValueError("The SimCSE-GS model has no tokenizer: load it from a folder that holds one.")
        self.model = model
        self.tokenizer = model.tokenizer
        limit = max_input_length(model.tokenizer, model.backbone.config)
        self.max_seq_length = min(max_seq_length, limit) if max_seq_length else limit

    def preprocess(self, inputs: Sequence[str], prompt: str | None = None, **kwargs: Any) -> dict[str, torch.Tensor]:
        texts = [prompt + text for text in inputs] if prompt else list(inputs)
        return dict(self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_length,
                                   return_tensors="pt"))

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        batch = {key: features[key] for key in ("input_ids", "attention_mask", "token_type_ids") if key in features}
        features["sentence_embedding"] = self.model.encode_batch(batch)
        return features

    def get_embedding_dimension(self) -> int:
        return self.model.backbone.config.hidden_size

    def get_sentence_embedding_dimension(self) -> int:  # the name sentence-transformers < 6.1 asks for
        return self.get_embedding_dimension()

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.model.save_pretrained(output_path)  # weights, config, tokenizer and the model's code
        self.save_config(output_path)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> SimCSEGSEncoder:
        hub = {"token": token, "cache_dir": cache_folder, "revision": revision, "local_files_only": local_files_only}
        path = os.path.join(model_name_or_path, subfolder) if subfolder else model_name_or_path
        model = SimCSEGSModel.from_pretrained(path, **{k: v for k, v in hub.items() if v is not None})
        config = cls.load_config(model_name_or_path, subfolder=subfolder, token=token, cache_folder=cache_folder,
                                 revision=revision, local_files_only=local_files_only)
        return cls(model, config.get("max_seq_length"))

    @staticmethod
    def write_config(output_path: str, max_seq_length: int) -> None:
        """``sentence_bert_config.json`` for a folder written without a SentenceTransformer object (the export)."""
        with open(os.path.join(output_path, CONFIG_NAME), "w", encoding="utf-8") as f:
            json.dump({"max_seq_length": max_seq_length}, f, indent=2)
            f.write("\n")
