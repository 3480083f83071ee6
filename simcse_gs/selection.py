"""Token selection that selects: keep decisions under a keep budget, and two relaxations that learn them.

The Gumbel-Softmax proxy of the original study decides every token on its own, and its contrastive loss rewards
keeping: the proxy learns to keep everything, and a penalty on the *mean* keep probability lowers every p alike
(docs/RESEARCH_TOOLS.md). The mechanisms here make the proxy *choose* which tokens to drop:

* ``topk`` (``--gs_estimator topk``): every sentence keeps exactly ``ceil(r * n)`` of its ``n`` decided tokens. In
  training the kept set is a Gumbel-top-k sample of the proxy's scores (a sample of ``k`` tokens without
  replacement, Kool, van Hoof & Welling, 2019, "Stochastic Beams and Where to Find Them"), used hard in the forward
  pass; gradients flow through its continuous relaxation, ``k`` successive softmaxes that each remove the mass
  already taken (Xie & Ermon, 2019, "Reparameterizable Subset Sampling via Continuous Relaxations"). Straight-through,
  as ``--gs_estimator st`` is for the per-token decision. The budget is part of the model, so dropping is forced and
  the only freedom left is *which* tokens go.
* ``hard_concrete`` (``--gs_estimator hard_concrete``): one L0 gate per token (Louizos, Welling & Kingma, 2018,
  "Learning Sparse Neural Networks through L0 Regularization"): a stretched and clipped binary-concrete sample, exactly
  0 or 1 with non-zero probability, with a closed-form probability of being non-zero. The budget is the expected L0:
  ``--gs_keep_rate_weight`` x (mean P(gate != 0) - ``--gs_target_keep_rate``)^2, the existing keep-rate penalty with
  p = P(gate != 0).

At inference any scorer (the proxy, IDF, random) keeps the ``ceil(r * n)`` best decided tokens of every sentence
(:func:`budget_keep`), so learned, heuristic and random selection are compared at exactly the same keep rate.
"""

from __future__ import annotations

import math

import torch

# Hard-concrete stretch interval (gamma, zeta) and temperature beta: Louizos et al. (2018)'s values.
HC_GAMMA, HC_ZETA, HC_BETA = -0.1, 1.1, 2.0 / 3.0
_EPS = 1e-6


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


def relaxed_topk(
    scores: torch.Tensor, decided: torch.Tensor, k: torch.Tensor, tau: float, steps: int | None = None
) -> torch.Tensor:
    """Continuous relaxation of a k-subset (Xie & Ermon, 2019): the sum of ``k`` successive softmaxes, each over the
    scores with the mass already chosen taken out (as a constant: gradients flow through each softmax, not through
    the removal, whose derivative -1 / (1 - a) explodes for a confident choice). Rows may have different ``k``. The
    sum can exceed 1 for a dominant token at a high ``tau``; it is clipped to [0, 1] (a keep weight), so a row sums
    to at most ``k[b]``, and exactly ``k[b]`` in the limit of a low ``tau``, where it becomes the hard top-k."""
    logits = scores.float().masked_fill(~decided.bool(), float("-inf"))
    logits = logits.masked_fill(~decided.bool().any(dim=-1, keepdim=True), 0.0)  # no decided token: no NaN rows
    khot = torch.zeros_like(logits)
    onehot = torch.zeros_like(logits)
    # ``steps`` >= max(k), known on the host (no wait for the device to say what max(k) is)
    for i in range(int(k.max()) if steps is None else steps):
        if i > 0:  # no gradient through the mask update: d log(1 - a) / da = -1 / (1 - a) explodes as a -> 1
            logits = logits + torch.log1p(-onehot.detach().clamp(max=1 - _EPS))
        onehot = torch.softmax(logits / tau, dim=-1)
        khot = khot + onehot * (i < k).to(khot.dtype)[:, None]
    return (khot * decided.to(khot.dtype)).clamp(max=1.0)


def gumbel_topk_keep(scores: torch.Tensor, decided: torch.Tensor, rate: float, tau: float) -> torch.Tensor:
    """Training keep weights of ``--gs_estimator topk``: a hard Gumbel-top-k subset of size ``ceil(rate * n)`` in the
    forward pass, with the gradient of its relaxation (straight-through)."""
    k = budget_size(decided, rate)
    gumbel = -torch.log(-torch.log(torch.rand_like(scores, dtype=torch.float32).clamp(_EPS, 1 - _EPS)))
    perturbed = scores.float() + gumbel
    hard = topk_mask(perturbed, decided, k).float()
    soft = relaxed_topk(perturbed, decided, k, tau, steps=math.ceil(rate * scores.size(-1) - 1e-9))
    return hard + (soft - soft.detach())  # exactly 0/1 forward (x - x == 0), the relaxation's gradient


def hard_concrete_nonzero_prob(log_alpha: torch.Tensor) -> torch.Tensor:
    """P(gate != 0) of a hard-concrete gate: sigmoid(log_alpha - beta * log(-gamma / zeta)), the expected L0."""
    return torch.sigmoid(log_alpha.float() - HC_BETA * math.log(-HC_GAMMA / HC_ZETA))


def hard_concrete_sample(log_alpha: torch.Tensor) -> torch.Tensor:
    """One reparameterised hard-concrete gate per token in [0, 1], exactly 0 or 1 with non-zero probability."""
    u = torch.rand_like(log_alpha, dtype=torch.float32).clamp(_EPS, 1 - _EPS)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha.float()) / HC_BETA)
    return (s * (HC_ZETA - HC_GAMMA) + HC_GAMMA).clamp(0.0, 1.0)


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
