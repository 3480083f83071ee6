"""Gradient estimators for the proxy's per-token keep decision: ``--gs_estimator soft | st | reinforce``.

All three start from the proxy's two logits per token (class 0 = keep, 1 = drop) and give the keep weight the
encoder runs with while training:

* ``soft`` (default): a Gumbel-Softmax sample in (0, 1) at temperature tau; the contrastive loss reaches the
  proxy through the relaxed weight (biased for the discrete problem, low variance).
* ``st``: straight-through Gumbel; the forward value is the exact 0/1 Gumbel-max sample (so a Bernoulli(p) keep),
  the backward pass uses the soft sample's gradient (biased, low variance).
* ``reinforce``: the score-function estimator. Hard keeps ``b ~ Bernoulli(p)`` with p the deterministic keep
  probability, no gradient through the sample; the proxy learns from the surrogate term
  ``(R - baseline) * log P(b)`` (see :func:`reinforce_surrogate`), where R is the detached contrastive loss and
  the baseline an exponential moving average of it. Unbiased for the gradient of E_b[R], high variance.
* ``topk`` and ``hard_concrete``: the selective mechanisms of :mod:`simcse_gs.selection` (a per-sentence budget of
  exactly ``ceil(r * n)`` kept tokens through a relaxed top-k, and L0 gates with an expected-L0 budget).

The functions here are model-free so that the estimators can be tested on toy problems.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .gumbel import DROP, KEEP, keep_probability, sample_keep
from .selection import gumbel_topk_keep, hard_concrete_nonzero_prob, hard_concrete_sample

ESTIMATORS = ("soft", "st", "reinforce", "topk", "hard_concrete")
SELECTIVE = ("topk", "hard_concrete")
REINFORCE_REWARDS = ("sentence", "batch")


def check_estimator(estimator: str, reward: str = "sentence", momentum: float = 0.9) -> None:
    if estimator not in ESTIMATORS:
        raise ValueError(f"--gs_estimator must be one of {', '.join(ESTIMATORS)}, got '{estimator}'.")
    if reward not in REINFORCE_REWARDS:
        raise ValueError(f"--gs_reinforce_reward must be one of {', '.join(REINFORCE_REWARDS)}, got '{reward}'.")
    if not 0 <= momentum < 1:
        raise ValueError(f"--gs_reinforce_baseline_momentum must be in [0, 1), got {momentum}.")


def resolve_estimator(estimator: str, gs_hard: bool) -> str:
    """The estimator once the deprecated ``gs_hard`` alias is applied (``gs_hard=True`` means ``st``)."""
    if not gs_hard:
        return estimator
    if estimator in ("soft", "st"):
        return "st"
    raise ValueError(f"--gs_hard (deprecated alias of --gs_estimator st) contradicts --gs_estimator {estimator}.")


def bernoulli_keep(logits: torch.Tensor) -> torch.Tensor:
    """Hard keeps ``b ~ Bernoulli(softmax(logits)[KEEP])`` as float 0/1, carrying no gradient."""
    with torch.no_grad():
        return torch.bernoulli(logits.float().softmax(dim=-1)[..., KEEP])


def keep_log_prob(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``log P(b)`` per token under the proxy: ``b log p + (1 - b) log (1 - p)``, from log-softmax (stable)."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    keep = keep.to(log_p.dtype)
    return keep * log_p[..., KEEP] + (1 - keep) * log_p[..., DROP]


def keep_log_odds(logits: torch.Tensor) -> torch.Tensor:
    """``log(p / (1 - p))`` of the proxy's two logits: the score the selective mechanisms rank and gate by."""
    return logits[..., KEEP].float() - logits[..., DROP].float()


def estimator_keep_probability(logits: torch.Tensor, estimator: str) -> torch.Tensor:
    """The per-token keep probability under ``estimator``: softmax(logits)[keep], or, for ``hard_concrete``, the
    probability that the gate is not zero (its expected L0, what the keep-rate penalty then budgets)."""
    if estimator == "hard_concrete":
        return hard_concrete_nonzero_prob(keep_log_odds(logits))
    return keep_probability(logits)


def sample_estimator_keep(
    logits: torch.Tensor,
    estimator: str,
    tau: float | None,
    decided: torch.Tensor | None = None,
    rate: float | None = None,
) -> torch.Tensor:
    """One training keep weight per token under ``estimator`` (forced tokens are applied by the caller).

    ``topk`` needs the decided-token mask and the keep rate (its budget); the others ignore them.
    """
    if estimator == "reinforce":
        return bernoulli_keep(logits)
    if estimator == "hard_concrete":
        return hard_concrete_sample(keep_log_odds(logits))
    if tau is None:
        raise ValueError("Training a GS model needs the Gumbel temperature: pass tau= (the Trainer does).")
    if estimator == "topk":
        if decided is None or rate is None:
            raise ValueError("--gs_estimator topk samples a subset of the decided tokens at a keep rate: pass both.")
        return gumbel_topk_keep(keep_log_odds(logits), decided, rate, tau)
    return sample_keep(logits, tau, hard=estimator == "st")


def reinforce_surrogate(reward: torch.Tensor, log_prob: torch.Tensor, baseline: torch.Tensor | float) -> torch.Tensor:
    """Zero-valued score-function surrogate whose gradient is the REINFORCE estimate.

    ``reward`` and ``log_prob`` have the same shape (one entry per unit of credit: a sentence, or the whole
    batch as a 0-d tensor); the result is ``mean((reward - baseline) * log_prob)`` minus its own value, so adding
    it to a loss leaves the loss value unchanged and adds ``mean((reward - baseline) * grad log_prob)`` to the
    gradient. ``reward`` and ``baseline`` are detached here.
    """
    advantage = (reward.detach().float() - torch.as_tensor(baseline, dtype=torch.float32).detach()).to(log_prob)
    surrogate = (advantage * log_prob).mean()
    return surrogate - surrogate.detach()


@torch.no_grad()
def update_baseline(baseline: torch.Tensor, value: torch.Tensor, momentum: float) -> None:
    """In place: ``baseline <- momentum * baseline + (1 - momentum) * value``; a NaN baseline (unset) takes
    ``value``."""
    value = value.detach().to(baseline)
    # torch.where instead of `if isnan`: a branch on a GPU value would wait for the GPU in every step.
    baseline.copy_(torch.where(torch.isnan(baseline), value, baseline * momentum + (1 - momentum) * value))
