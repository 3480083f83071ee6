"""Plain Hugging Face encoders behind the same ``encode`` as :class:`~simcse_gs.model.SimCSEGSModel`.

For baselines and benchmarks: any ``AutoModel`` encoder (hub name or folder) with one of SimCSE's poolers from
:mod:`simcse_gs.model.pooling`. As in SimCSE's own ``evaluation.py``, ``cls`` is the model's ``pooler_output`` (Linear +
Tanh over the first token) when the model has a pooling layer, and ``cls_before_pooler`` is the last layer's raw
first-token vector. That is where SimCSE's released checkpoints and our ``export.py`` keep a trained MLP head, so
``--pooler cls`` reproduces their embeddings; for a plain pretrained BERT it is the next-sentence-prediction pooler.
A model without a pooling layer gives the raw first-token vector for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..model.encoding import (
    check_extra_encode_kwargs,
    encode_in_length_order,
    finish_embeddings,
    max_input_length,
    sentence_list,
)
from ..model.keep import KeepStatsAccumulator
from ..model.layer_pruning import PruneSchedule, encode_pruned
from ..model.pooling import check_pooler_type, pool
from ..model.precision import autocast as precision_autocast
from ..model.precision import check_precision
from ..model_folder import sentence_transformers_max_length


class HFEncoder:
    """A plain encoder + pooler with ``encode(sentences, batch_size, ..., keep_stats)`` like SimCSEGSModel.

    ``max_length`` (tokens per sentence, longer ones are truncated) defaults to the model's limit, or to
    ``max_seq_length`` of a sentence-transformers folder (e.g. 256 for all-MiniLM-L6-v2), which is how that
    model is used natively.
    """

    use_gs = False

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        pooler_type: str = "avg",
        max_length: int | None = None,
    ):
        check_pooler_type(pooler_type)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pooler_type = pooler_type
        self.limit = max_input_length(tokenizer, model.config)
        self.max_length = min(max_length, self.limit) if max_length else self.limit

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        pooler_type: str = "avg",
        device: str | torch.device | None = None,
        max_length: int | None = None,
        trust_remote_code: bool = False,
        **load_kwargs: Any,
    ) -> HFEncoder:
        """Load tokenizer and ``AutoModel`` (float32) from a hub name or folder and move it to ``device``."""
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, **load_kwargs)
        load_kwargs.setdefault("dtype", torch.float32)
        model, info = AutoModel.from_pretrained(name_or_path, trust_remote_code=trust_remote_code,
                                                output_loading_info=True, **load_kwargs)
        untrained_pooler = sorted(k for k in info.get("missing_keys", ()) if k.split(".")[0] == "pooler")
        if pooler_type == "cls" and untrained_pooler:
            raise ValueError(
                f"--pooler cls reads the model's pooler_output, but {name_or_path} has no pooler weights "
                f"({', '.join(untrained_pooler)} missing), so it would be randomly initialised. Use --pooler "
                "cls_before_pooler for the raw [CLS] vector (or avg)."
            )
        if device is not None:
            model = model.to(device)
        return cls(model, tokenizer, pooler_type, max_length or sentence_transformers_max_length(name_or_path))

    def check_prune_schedule(self, schedule: PruneSchedule) -> None:
        """Refuse a schedule this encoder cannot run: prune layers outside 1..L-1, a pooler that needs pruned
        tokens' states, the learned scorer (a plain encoder has no trained heads), a model type without BERT's
        layer layout."""
        if self.model.config.model_type not in ("bert", "roberta"):
            raise ValueError(f"In-encoder pruning runs BERT and RoBERTa layers, not '{self.model.config.model_type}'.")
        schedule.check(self.model.config.num_hidden_layers, self.pooler_type)
        if schedule.learned:
            raise ValueError("--prune_scorer learned needs trained scorer heads, which a plain encoder has none of: "
                             "use attention, first, idf, random or merge (or a checkpoint trained with --prune_scorer "
                             "learned).")

    def special_tokens_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Where the tokenizer's special tokens ([CLS]/[SEP], <s>/</s>) are: always kept by pruning."""
        unchosen = {self.tokenizer.pad_token_id, self.tokenizer.unk_token_id, self.tokenizer.mask_token_id}
        ids = sorted(set(self.tokenizer.all_special_ids) - unchosen)
        return torch.isin(input_ids, torch.tensor(ids, device=input_ids.device))

    def _embed_pruned(self, batch: dict[str, torch.Tensor], schedule: PruneSchedule, idf: torch.Tensor | None,
                      keep_stats: KeepStatsAccumulator | None) -> torch.Tensor:
        special = self.special_tokens_mask(batch["input_ids"])
        encoding = encode_pruned(self.model, batch["input_ids"], batch["attention_mask"], special, schedule,
                                 batch.get("token_type_ids"), idf=idf)
        if keep_stats is not None:
            keep_stats.update(*encoding.input_keep(batch["attention_mask"], special))
        if self.pooler_type == "cls" and getattr(self.model, "pooler", None) is not None:
            return self.model.pooler(encoding.state.hidden)
        return encoding.pooled(self.pooler_type)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> HFEncoder:
        self.model.to(device)
        return self

    @torch.inference_mode()
    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int = 64,
        max_length: int | None = None,
        show_progress_bar: bool = False,
        keep_stats: KeepStatsAccumulator | None = None,
        convert_to_numpy: bool = False,
        convert_to_tensor: bool = False,
        normalize_embeddings: bool = False,
        prompt: str | None = None,
        precision: str = "fp32",
        prune_schedule: PruneSchedule | None = None,
        idf: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor | np.ndarray:
        """Sentence embeddings [N, H] (float32, CPU tensor) in input order; tokenised once, length-sorted batches.

        ``keep_stats`` is left untouched without pruning (a plain encoder keeps every token). ``max_length``
        overrides the encoder's own for this call (capped by the model's limit). The
        sentence-transformers arguments behave as in :meth:`SimCSEGSModel.encode`. ``precision``: ``fp32``, or
        ``bf16`` / ``fp16`` autocast (see :mod:`simcse_gs.model.precision`). ``prune_schedule`` prunes (or
        merges) tokens inside the encoder with a training-free scorer (:mod:`simcse_gs.model.layer_pruning`; ``idf``
        is the ``idf`` scorer's table); ``keep_stats`` then accumulates what is kept.
        """
        if prune_schedule is not None:
            self.check_prune_schedule(prune_schedule)
        check_extra_encode_kwargs(kwargs)
        check_precision(precision)
        sentences, single = sentence_list(sentences, prompt)
        needs_all_layers = self.pooler_type in ("avg_top2", "avg_first_last")

        @precision_autocast(precision, self.device)
        def embed_batch(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            if prune_schedule is not None:
                return self._embed_pruned(batch, prune_schedule, idf, keep_stats)
            output = self.model(**batch, output_hidden_states=needs_all_layers)
            if self.pooler_type == "cls" and getattr(output, "pooler_output", None) is not None:
                return output.pooler_output
            hidden = output.hidden_states if needs_all_layers else (output.last_hidden_state,)
            return pool(self.pooler_type, hidden, batch["attention_mask"])

        limit = min(max_length, self.limit) if max_length else self.max_length
        out = encode_in_length_order(self.tokenizer, sentences, embed_batch, self.model.config.hidden_size,
                                     self.device, batch_size, limit, show_progress_bar)
        return finish_embeddings(out, single, convert_to_numpy, convert_to_tensor, normalize_embeddings)
