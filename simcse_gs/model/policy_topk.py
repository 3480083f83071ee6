"""Selection under a budget: every sentence keeps exactly ``ceil(r * n)`` of its ``n`` decided tokens.

The Gumbel-Softmax proxy of the original study decides every token on its own, and its contrastive loss rewards
keeping: the proxy learns to keep everything, and a penalty on the *mean* keep probability lowers every p alike
(docs/RESEARCH_TOOLS.md). Here the budget is part of the model, so dropping is forced and the only freedom left is
*which* tokens go. In training the kept set is a Gumbel-top-k sample of the proxy's scores (a sample of ``k`` tokens
without replacement, Kool, van Hoof & Welling, 2019, "Stochastic Beams and Where to Find Them"), used hard in the
forward pass; gradients flow through its continuous relaxation, ``k`` successive softmaxes that each remove the mass
already taken (Xie & Ermon, 2019, "Reparameterizable Subset Sampling via Continuous Relaxations"). Straight-through,
as ``st`` is for the per-token decision. At inference the ``ceil(r * n)`` best tokens by the proxy's log-odds are
kept (:mod:`.budget`): r = ``gs_target_keep_rate`` unless ``keep_budget`` says otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .budget import budget_size, topk_mask
from .gumbel import keep_log_odds
from .keep_policy import ProxyPolicy

_EPS = 1e-6


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


class TopKPolicy(ProxyPolicy):
    name = "topk"
    uses_tau = True

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        rate = settings["gs_target_keep_rate"]
        if not 0 < rate <= 1:
            raise ValueError(f"--gs_estimator topk keeps ceil(r * n) tokens, r = --gs_target_keep_rate, which must be "
                             f"in (0, 1]; got {rate}.")

    @property
    def inference_budget(self) -> float | None:
        budget = self.config.keep_budget
        return self.config.gs_target_keep_rate if budget is None else budget

    def draw(self, logits: torch.Tensor, tau: float | None, decided: torch.Tensor) -> torch.Tensor:
        return gumbel_topk_keep(keep_log_odds(logits), decided, self.config.gs_target_keep_rate,
                                self._require_tau(tau))
