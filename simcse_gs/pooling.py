"""Poolers: token states -> one sentence vector (SimCSE's five), and the MLP head SimCSE trains with.

Under GS, ``avg`` is keep-weighted: each token counts with its keep weight (the Gumbel sample while training,
the hard 0/1 keep at inference), as in the original GS repo. Dropped tokens then leave the average as well as
the attention.
"""

from __future__ import annotations

import torch
from torch import nn

POOLER_TYPES = ("cls", "cls_before_pooler", "avg", "avg_top2", "avg_first_last")


def check_pooler_type(pooler_type: str) -> None:
    if pooler_type not in POOLER_TYPES:
        raise ValueError(f"Unknown pooler '{pooler_type}'. Choose one of: {', '.join(POOLER_TYPES)}.")


def masked_mean(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` [B, L, H] over L with per-token ``weights`` [B, L] (0 = absent)."""
    weights = weights.to(hidden.dtype)
    return (hidden * weights.unsqueeze(-1)).sum(dim=1) / weights.sum(dim=1, keepdim=True).clamp(min=1e-9)


def pool(
    pooler_type: str,
    hidden_states: tuple[torch.Tensor, ...],
    attention_mask: torch.Tensor,
    token_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sentence vectors from the encoder's ``hidden_states`` (embeddings first, then one entry per layer).

    ``avg_first_last`` averages the outputs of the first and last *layers* (``hidden_states[1]`` and
    ``[-1]``), SimCSE's definition; the original GS repo used ``[0]``, the embeddings. ``token_weights``, when
    given, replaces the attention mask as the averaging weight of ``avg``.
    """
    last = hidden_states[-1]
    if pooler_type in ("cls", "cls_before_pooler"):
        return last[:, 0]
    mask = attention_mask.to(last.dtype)
    if pooler_type == "avg":
        return masked_mean(last, mask if token_weights is None else token_weights * mask)
    if pooler_type == "avg_top2":
        return masked_mean((hidden_states[-1] + hidden_states[-2]) / 2, mask)
    if pooler_type == "avg_first_last":
        return masked_mean((hidden_states[1] + hidden_states[-1]) / 2, mask)
    check_pooler_type(pooler_type)
    raise AssertionError("unreachable")


class MLPHead(nn.Module):
    """SimCSE's projection over the [CLS] vector: Linear + Tanh (used with the ``cls`` pooler)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(x))
