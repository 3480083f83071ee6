"""Inference batching shared by every encoder: tokenise once, encode in token-length order, restore input order.

Also the calling convention of ``encode`` that sentence-transformers and MTEB callers use (a single string or a
list, ``convert_to_numpy`` / ``convert_to_tensor``, ``normalize_embeddings``, ``prompt``), in one place for both
encoders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase


def encode_in_length_order(
    tokenizer: PreTrainedTokenizerBase,
    sentences: Sequence[str],
    embed_batch: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    dim: int,
    device: torch.device,
    batch_size: int = 64,
    max_length: int | None = None,
    show_progress_bar: bool = False,
) -> torch.Tensor:
    """Embeddings [N, dim] (float32, CPU) in input order; ``embed_batch`` maps a padded batch to [n, dim].

    Sorting by exact token count keeps padding near zero (sorting by words or characters leaves ~40 %).
    """
    out = torch.empty(len(sentences), dim)
    if not sentences:
        return out
    enc = tokenizer(list(sentences), truncation=True, max_length=max_length)
    names = [k for k in enc.keys() if k in tokenizer.model_input_names]
    order = sorted(range(len(sentences)), key=lambda i: len(enc["input_ids"][i]))
    for start in tqdm(range(0, len(order), batch_size), desc="encode", disable=not show_progress_bar):
        idx = order[start : start + batch_size]
        batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in names}, return_tensors="pt")
        out[idx] = embed_batch({k: v.to(device) for k, v in batch.items()}).float().cpu()
    return out


def sentence_list(sentences: str | Sequence[str], prompt: str | None = None) -> tuple[list[str], bool]:
    """The input as a list and whether it was one string (which sentence-transformers encodes as one sentence,
    not as its characters), with ``prompt`` prepended to each sentence as sentence-transformers does."""
    single = isinstance(sentences, str)
    if single:
        sentences = [sentences]
    elif not isinstance(sentences, Sequence) or any(not isinstance(s, str) for s in sentences):
        raise TypeError("encode() takes a string or a list of strings.")
    return [prompt + s for s in sentences] if prompt else list(sentences), single


def check_extra_encode_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Extra keyword arguments (MTEB's ``prompt_name``, ``task_name``, ...) are ignored; refuse the one that would
    ask for a different output than sentence vectors."""
    output_value = kwargs.get("output_value", "sentence_embedding")
    if output_value not in (None, "sentence_embedding"):
        raise ValueError(f"encode() gives sentence embeddings only; output_value='{output_value}' is not supported.")


def finish_embeddings(
    embeddings: torch.Tensor,
    single: bool = False,
    convert_to_numpy: bool = False,
    convert_to_tensor: bool = False,
    normalize_embeddings: bool = False,
) -> torch.Tensor | np.ndarray:
    """L2-normalise if asked, unwrap a single sentence, and convert: a float32 CPU tensor unless only
    ``convert_to_numpy`` is set (``convert_to_tensor`` wins when both are, as in sentence-transformers)."""
    if normalize_embeddings:
        embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=-1)
    if single:
        embeddings = embeddings[0]
    if convert_to_numpy and not convert_to_tensor:
        return embeddings.numpy()
    return embeddings


# Model types whose position ids start after the padding index (RoBERTa family): pad_token_id + 1 fewer positions.
_OFFSET_POSITION_TYPES = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text",
                          "roberta-prelayernorm", "mpnet"}
_UNSET_MAX_LENGTH = 1_000_000  # tokenizers without a configured limit report ~1e30


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
