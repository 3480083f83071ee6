"""L0 gates: one hard-concrete gate per token (Louizos, Welling & Kingma, 2018, "Learning Sparse Neural Networks
through L0 Regularization").

A stretched and clipped binary-concrete sample, exactly 0 or 1 with non-zero probability, with a closed-form
probability of being non-zero. The budget is the expected L0: ``gs_keep_rate_weight`` x (mean P(gate != 0) -
``gs_target_keep_rate``)^2, the keep-rate penalty with p = P(gate != 0); the gates have their own temperature
(beta), so the Gumbel temperature is not used. At inference a token is kept where P(gate != 0) >= 0.5.
"""

from __future__ import annotations

import math

import torch

from .gumbel import keep_log_odds
from .keep_policy import ProxyPolicy

# Hard-concrete stretch interval (gamma, zeta) and temperature beta: Louizos et al. (2018)'s values.
HC_GAMMA, HC_ZETA, HC_BETA = -0.1, 1.1, 2.0 / 3.0
_EPS = 1e-6


def hard_concrete_nonzero_prob(log_alpha: torch.Tensor) -> torch.Tensor:
    """P(gate != 0) of a hard-concrete gate: sigmoid(log_alpha - beta * log(-gamma / zeta)), the expected L0."""
    return torch.sigmoid(log_alpha.float() - HC_BETA * math.log(-HC_GAMMA / HC_ZETA))


def hard_concrete_sample(log_alpha: torch.Tensor) -> torch.Tensor:
    """One reparameterised hard-concrete gate per token in [0, 1], exactly 0 or 1 with non-zero probability."""
    u = torch.rand_like(log_alpha, dtype=torch.float32).clamp(_EPS, 1 - _EPS)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha.float()) / HC_BETA)
    return (s * (HC_ZETA - HC_GAMMA) + HC_GAMMA).clamp(0.0, 1.0)


class HardConcretePolicy(ProxyPolicy):
    name = "hard_concrete"

    def probability(self, logits: torch.Tensor) -> torch.Tensor:
        return hard_concrete_nonzero_prob(keep_log_odds(logits))

    def draw(self, logits: torch.Tensor, tau: float | None, decided: torch.Tensor) -> torch.Tensor:
        return hard_concrete_sample(keep_log_odds(logits))
