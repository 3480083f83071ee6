"""Poolers: token states -> one sentence vector (SimCSE's five), and the head on the pooled vector.

Under GS, ``avg`` is keep-weighted: each token counts with its keep weight (the Gumbel sample while training,
the hard 0/1 keep at inference), as in the original GS repo. Dropped tokens then leave the average as well as
the attention.

The head (``--head_type``) is where the two recipes differ: SimCSE puts Linear + Tanh on the [CLS] vector only
(``mlp``, dropped at inference in its unsupervised recipe), the original GS repo puts Dropout + Linear + Tanh on
whatever the pooler gives (``dropout_mlp``, its ``SimpleHead``) and keeps it at inference.
"""

from __future__ import annotations

import torch
from torch import nn

POOLER_TYPES = ("cls", "cls_before_pooler", "avg", "avg_top2", "avg_first_last")
HEAD_TYPES = ("auto", "none", "mlp", "dropout_mlp")


def check_pooler_type(pooler_type: str) -> None:
    if pooler_type not in POOLER_TYPES:
        raise ValueError(f"Unknown pooler '{pooler_type}'. Choose one of: {', '.join(POOLER_TYPES)}.")


def resolve_head_type(head_type: str, pooler_type: str) -> str:
    """``auto`` is SimCSE's rule (the MLP with the ``cls`` pooler, no head otherwise); the rest are explicit."""
    if head_type not in HEAD_TYPES:
        raise ValueError(f"--head_type must be one of {', '.join(HEAD_TYPES)}, got '{head_type}'.")
    if head_type == "auto":
        return "mlp" if pooler_type == "cls" else "none"
    return head_type


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
    """Head on the pooled vector: (Dropout +) Linear + Tanh.

    ``dropout=0`` is SimCSE's MLP; ``dropout>0`` the original GS repo's ``SimpleHead`` (dropout before the dense
    layer, active in training only). Both keep the weights under ``dense``, so checkpoints and exports read alike.
    """

    def __init__(self, hidden_size: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(self.dropout(x)))
