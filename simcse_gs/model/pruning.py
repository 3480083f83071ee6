"""Exact pruning at inference: remove the dropped tokens from the input instead of masking them.

Under the renormalised token-keep attention (``--gs_attn_renorm``) a dropped key takes no attention mass, so a kept
token's states do not depend on the dropped tokens at all: running the encoder on the kept tokens alone, each at its
*original* position id, gives the same kept states, and so the same sentence vector (a keep-weighted ``avg`` is the
mean of the kept tokens; ``cls`` reads [CLS], which is always kept). Shorter inputs are what make a token-dropping
encoder pay for itself: the proxy's cost is spent once, every backbone layer then runs on ``r`` of the tokens.

(Under the original, unrenormalised scaling a dropped key still takes softmax mass, so pruning would change the
result; :meth:`~.modeling.SimCSEGSModel.encode` refuses to prune such a model.)
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel


def original_position_ids(encoder: PreTrainedModel, input_ids: torch.Tensor) -> torch.Tensor:
    """The position ids the encoder gives the unpruned batch: 0..L-1 (BERT), or counted from the padding index
    over non-padding tokens (RoBERTa: its embeddings' own ``create_position_ids_from_input_ids``)."""
    embeddings = encoder.embeddings
    if hasattr(embeddings, "create_position_ids_from_input_ids"):
        return embeddings.create_position_ids_from_input_ids(input_ids, embeddings.padding_idx)
    return torch.arange(input_ids.size(1), device=input_ids.device).expand_as(input_ids)


def prune_batch(
    keep: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    pad_token_id: int = 0,
) -> dict[str, torch.Tensor]:
    """The kept tokens of every row, in their order, left-aligned and padded to the longest row.

    ``keep`` [B, L] (0/1 or bool; padding must be 0) selects the tokens. Returns ``input_ids``, ``attention_mask``,
    ``position_ids`` (the tokens' original positions; 0 on padding, which no kept token attends to) and, when
    given, ``token_type_ids``.
    """
    keep = keep.bool() & attention_mask.bool()
    counts = keep.sum(dim=1)
    length = max(int(counts.max()), 1)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :length]  # kept positions first, in order
    real = torch.arange(length, device=keep.device)[None, :] < counts[:, None]
    out = {
        "input_ids": input_ids.gather(1, order).masked_fill(~real, pad_token_id),
        "attention_mask": real.to(attention_mask.dtype),
        "position_ids": position_ids.gather(1, order).masked_fill(~real, 0),
    }
    if token_type_ids is not None:
        out["token_type_ids"] = token_type_ids.gather(1, order).masked_fill(~real, 0)
    return out
