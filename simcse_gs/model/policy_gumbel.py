"""The original study's keep policy: a Gumbel-Softmax sample of every token's keep/drop decision.

* ``soft`` (default): a relaxed sample in (0, 1) at temperature tau; the contrastive loss reaches the proxy through
  the relaxed weight (biased for the discrete problem, low variance).
* ``st``: straight-through Gumbel; the forward value is the exact 0/1 Gumbel-max sample (a Bernoulli(p) keep), the
  backward pass uses the soft sample's gradient (biased, low variance).

At inference both keep a token where p = softmax(logits)[keep] >= 0.5 (:func:`~.keep.inference_keep`).
"""

from __future__ import annotations

import torch

from .gumbel import sample_keep
from .keep_policy import ProxyPolicy


class GumbelSoftmaxPolicy(ProxyPolicy):
    name = "soft"
    uses_tau = True
    hard = False

    def draw(self, logits: torch.Tensor, tau: float | None, decided: torch.Tensor) -> torch.Tensor:
        return sample_keep(logits, self._require_tau(tau), hard=self.hard)


class StraightThroughPolicy(GumbelSoftmaxPolicy):
    name = "st"
    hard = True
