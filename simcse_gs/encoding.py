"""Inference batching shared by every encoder: tokenise once, encode in token-length order, restore input order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
