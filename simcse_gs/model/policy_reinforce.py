"""REINFORCE: hard Bernoulli(p) keeps, and the score-function estimator for the proxy's gradient.

Hard keeps ``b ~ Bernoulli(p)`` with p the deterministic keep probability, no gradient through the sample; the
proxy learns from the surrogate term ``(R - baseline) * log P(b)`` (:func:`reinforce_surrogate`), where R is the
detached contrastive loss and the baseline an exponential moving average of it (a buffer on the model,
``reinforce_baseline``, so checkpoints and resumes keep it). Unbiased for the gradient of E_b[R], high variance
(measured: docs/RESEARCH_TOOLS.md).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .gumbel import DROP, KEEP
from .keep_policy import KeepDecision, PolicyHost, ProxyPolicy
from .loss import contrastive_logits, gather_with_grad


def bernoulli_keep(logits: torch.Tensor) -> torch.Tensor:
    """Hard keeps ``b ~ Bernoulli(softmax(logits)[KEEP])`` as float 0/1, carrying no gradient."""
    with torch.no_grad():
        return torch.bernoulli(logits.float().softmax(dim=-1)[..., KEEP])


def keep_log_prob(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``log P(b)`` per token under the proxy: ``b log p + (1 - b) log (1 - p)``, from log-softmax (stable)."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    keep = keep.to(log_p.dtype)
    return keep * log_p[..., KEEP] + (1 - keep) * log_p[..., DROP]


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


class ReinforcePolicy(ProxyPolicy):
    name = "reinforce"

    def register_state(self, model: torch.nn.Module) -> None:
        # EMA of the contrastive loss (NaN = not set yet). Persistent: checkpoints and resumes keep it.
        model.register_buffer("reinforce_baseline", torch.tensor(float("nan")), persistent=True)

    def init_state(self, model: torch.nn.Module) -> None:
        model.reinforce_baseline.fill_(float("nan"))

    def draw(self, logits: torch.Tensor, tau: float | None, decided: torch.Tensor) -> torch.Tensor:
        return bernoulli_keep(logits)

    def training_terms(self, logits: torch.Tensor, draws: list[torch.Tensor], decided: torch.Tensor,
                       decision: KeepDecision) -> None:
        decision.keep_log_prob = torch.stack([(keep_log_prob(logits, b) * decided).sum(-1) for b in draws])

    def surrogate(self, model: PolicyHost, decision: KeepDecision, z: torch.Tensor,
                  contrastive: torch.Tensor) -> torch.Tensor | None:
        """The zero-valued REINFORCE surrogate (gradient only), then the baseline update.

        ``gs_reinforce_reward="sentence"``: ``mean_i (loss_i - baseline) * sum_{views, decided j of i} log P(b)``
        with ``loss_i`` example i's own cross-entropy row of the contrastive loss (the row-wise terms whose mean
        is the loss). ``"batch"``: ``(loss - baseline) * sum_{all views, sentences, decided j} log P(b)``, the
        exact score-function estimator of the batch loss. The baseline is the EMA of the batch contrastive loss
        before this step (the first step uses its own loss).
        """
        if decision.keep_log_prob is None:
            return None
        cfg: Any = self.config
        n_views, batch = z.shape[:2]
        baseline = model.reinforce_baseline.detach()
        baseline = torch.where(torch.isnan(baseline), contrastive.detach(), baseline)  # no branch: no host sync
        distributed = dist.is_available() and dist.is_initialized()
        if cfg.gs_reinforce_reward == "sentence":
            with torch.no_grad():  # per-example rows of the (global) contrastive loss, this process's examples
                zs = [gather_with_grad(z[v].detach()) for v in range(n_views)]
                logits = contrastive_logits(zs[0], zs[1], zs[2] if n_views == 3 else None, model.loss_fn.temp,
                                            model.loss_fn.hard_negative_weight)
                rows = F.cross_entropy(logits, torch.arange(len(zs[0]), device=logits.device), reduction="none")
                offset = dist.get_rank() * batch if distributed else 0
                reward = rows[offset : offset + batch]
            score = decision.keep_log_prob.reshape(-1, batch).sum(0)  # [batch]: every view (draw) of example i
        else:
            # Every process computes the same global loss and DDP averages gradients: scale by the world size
            # so the summed score over all processes' sentences is what the average gives back.
            world = dist.get_world_size() if distributed else 1
            reward, score = contrastive.detach(), decision.keep_log_prob.sum() * world
        term = reinforce_surrogate(reward, score, baseline)
        update_baseline(model.reinforce_baseline, contrastive.detach(), cfg.gs_reinforce_baseline_momentum)
        return term
