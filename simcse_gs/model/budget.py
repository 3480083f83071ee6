"""The keep budget: keep exactly the ``ceil(r * n)`` best-scoring decided tokens of every sentence.

One rule for every scorer at inference (the proxy, IDF, random, ...), so learned, heuristic and random selection
are compared at exactly the same keep rate; the ``topk`` policy trains under the same budget.
"""

from __future__ import annotations

import torch


def budget_size(decided: torch.Tensor, rate: float) -> torch.Tensor:
    """Tokens kept per sentence under keep rate ``rate``: ``ceil(rate * n_decided)``, at least 1 if any is decided."""
    n = decided.sum(dim=-1)
    k = torch.ceil(rate * n.to(torch.float64) - 1e-9).to(n.dtype)  # - 1e-9: 0.7 * 10 is 7, not 8
    return torch.minimum(torch.clamp(k, min=1), n)


def topk_mask(scores: torch.Tensor, decided: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Boolean [B, L] mask of the ``k[b]`` highest-scoring decided tokens of each row (ties: the earlier token)."""
    masked = scores.detach().float().masked_fill(~decided.bool(), float("-inf"))
    order = masked.argsort(dim=-1, descending=True, stable=True)
    ranks = torch.empty_like(order).scatter_(-1, order, torch.arange(scores.size(-1), device=scores.device)
                                             .expand_as(order))
    return (ranks < k[:, None]) & decided.bool()


def budget_keep(scores: torch.Tensor, decided: torch.Tensor, rate: float) -> torch.Tensor:
    """Hard keep mask at inference: the ``ceil(rate * n)`` best decided tokens of every sentence (float 0/1).

    Tokens that are not decided (special tokens, padding) are left at 0 here; the caller forces them.
    """
    return topk_mask(scores, decided, budget_size(decided, rate)).to(scores.dtype if scores.is_floating_point()
                                                                     else torch.float32)
