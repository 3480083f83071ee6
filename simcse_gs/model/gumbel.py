"""Gumbel-Softmax relaxation of the per-token keep/drop decision, and its temperature schedule.

The proxy gives two logits per token, class 0 = keep, class 1 = drop (the original repo's convention). During
training the keep probability is a Gumbel-Softmax sample, so the decision stays differentiable; the temperature
tau is annealed from ``init_tau`` towards the floor ``min_tau`` as training goes on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

KEEP, DROP = 0, 1
# What the schedule counts: optimizer steps (ours: stored in every checkpoint as the Trainer's global_step) or
# training examples this process has fed through the model before the current forward (the original GS repo's t).
TAU_UNITS = ("optimizer_step", "example")


@dataclass(frozen=True)
class TauSchedule:
    """``tau(t) = max(min_tau, init_tau * exp(-decay_rate * t))``; ``t`` counts optimizer steps or examples.

    The original repo counted *examples* seen by each process, per forward, in a Python attribute, so a resumed run
    restarted at tau = 1. Here the count is always derived from the Trainer's ``global_step`` (which every
    checkpoint stores): optimizer steps by default, or, with ``tau_schedule_unit="example"``, the original's count
    rebuilt exactly from it (:func:`simcse_gs.training.trainer.examples_seen`).
    """

    init_tau: float = 1.0
    min_tau: float = 0.5
    decay_rate: float = 6.4e-4

    def __post_init__(self) -> None:
        if not self.min_tau > 0:
            raise ValueError(f"min_tau must be > 0 (got {self.min_tau}): tau divides the logits.")
        if self.init_tau < self.min_tau:
            raise ValueError(f"init_tau ({self.init_tau}) must be >= min_tau ({self.min_tau}).")
        if self.decay_rate < 0:
            raise ValueError(f"tau_decay_rate must be >= 0 (got {self.decay_rate}); 0 keeps tau = init_tau.")

    def __call__(self, step: int) -> float:
        return max(self.min_tau, self.init_tau * math.exp(-self.decay_rate * step))


def keep_probability(logits: torch.Tensor) -> torch.Tensor:
    """Deterministic keep probability softmax(logits)[..., KEEP]: what the inference rule thresholds."""
    return logits.float().softmax(dim=-1)[..., KEEP]


def sample_keep(logits: torch.Tensor, tau: float, hard: bool = False) -> torch.Tensor:
    """One Gumbel-Softmax sample of the keep weight per token, shape ``logits.shape[:-1]``.

    Soft samples lie in (0, 1); with ``hard`` the forward value is exactly 0 or 1 and the gradient is the soft
    sample's (straight-through).
    """
    return F.gumbel_softmax(logits.float(), tau=tau, hard=hard, dim=-1)[..., KEEP]


def keep_log_odds(logits: torch.Tensor) -> torch.Tensor:
    """``log(p / (1 - p))`` of the proxy's two logits: the score a budget ranks by and L0 gates open with."""
    return logits[..., KEEP].float() - logits[..., DROP].float()
