"""The random-drop control: the same token-keep mechanism as GS, with no proxy and random keeps.

In training each decided token is dropped with probability ``token_drop_rate``, independently in every view; at
inference nothing is dropped unless a keep budget asks, and then the tokens kept are those with the highest
pseudo-random numbers of :func:`sentence_hash_uniform`. Plain SimCSE is this policy at rate 0 (the stock
attention; a keep budget with ``prune`` then keeps random tokens).
"""

from __future__ import annotations

from typing import Any

import torch

from .keep_policy import ControlPolicy, PolicyHost


def sentence_hash_uniform(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Pseudo-random numbers in [0, 1) per token that depend only on the sentence's token ids and the position.

    The random control's keep scores at inference: unlike a generator's draws, they do not depend on which other
    sentences share the batch, or on the padding, so a sentence loses the same tokens on every call and in every
    encoder (``encode``, an exported sentence-transformers module). A linear-congruential mix of the token id, its
    position and a hash of the whole sentence, on int64 without overflow.
    """
    modulus = 2**31 - 1
    ids = input_ids.long() * attention_mask.long()
    positions = torch.arange(ids.size(1), device=ids.device)[None, :]
    sentence = ((ids * (positions * 7919 + 104729)) % modulus).sum(dim=1, keepdim=True) % modulus
    x = (ids * 48271 + positions * 16807 + sentence) % modulus
    for _ in range(3):
        x = (x * 48271) % modulus
    return x.double().div(modulus).float()


class RandomDropPolicy(ControlPolicy):
    name = "random"

    def scores(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               **encoder_kwargs: Any) -> torch.Tensor:
        """Pseudo-random numbers that depend only on the sentence and the position: a sentence loses the same
        tokens whatever it is batched with, in ``encode`` and in an export alike."""
        return sentence_hash_uniform(input_ids, attention_mask)

    def training_draws(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       n_views: int) -> list[torch.Tensor]:
        special = model.special_tokens_mask(input_ids)
        keeps = []  # a Bernoulli keep per decided token and view
        for _ in range(n_views):
            rand = (torch.rand(input_ids.shape, device=input_ids.device) >= self.config.token_drop_rate).float()
            keeps.append(self.forced(rand, attention_mask, special))
        return keeps
