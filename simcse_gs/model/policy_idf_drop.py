"""The frequency control: drop the most frequent tokens first (function words, punctuation), the oldest trick of
retrieval and the baseline a learned selection has to beat.

A token's score is its inverse document frequency over the training file (``idf``, a buffer on the model, so the
table travels with the checkpoint; :func:`idf_table` computes it, from the training file in ``train.py``). Training
keeps the ``ceil((1 - token_drop_rate) * n)`` rarest decided tokens, the same in every view; at inference a keep
budget keeps the rarest ``ceil(r * n)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .keep_policy import ControlPolicy, PolicyHost


def idf_table(token_ids: Iterable[list[int]], vocab_size: int) -> torch.Tensor:
    """Smoothed IDF per vocabulary id, ``log((1 + N) / (1 + df)) + 1`` over ``N`` sentences (ids never seen get
    the highest value: they are the rarest)."""
    df = torch.zeros(vocab_size, dtype=torch.float64)
    n = 0
    for ids in token_ids:
        df[torch.as_tensor(sorted(set(ids)), dtype=torch.long)] += 1
        n += 1
    if n == 0:
        raise ValueError("Cannot compute IDF from an empty training set.")
    return (torch.log((1 + n) / (1 + df)) + 1).float()


def idf_scores(idf: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Keep scores of a batch: a token's IDF (rarer = higher = kept first)."""
    return idf.to(input_ids.device)[input_ids]


class IDFDropPolicy(ControlPolicy):
    name = "idf"

    def register_state(self, model: torch.nn.Module) -> None:
        model.register_buffer("idf", torch.ones(model.backbone.config.vocab_size), persistent=True)

    def scores(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               **encoder_kwargs: Any) -> torch.Tensor:
        return idf_scores(model.idf, input_ids)

    def training_draws(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       n_views: int) -> list[torch.Tensor]:
        keep, _ = self.budgeted_keep(model, input_ids, attention_mask, 1 - self.config.token_drop_rate)
        return [keep] * n_views
