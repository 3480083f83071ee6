"""Gumbel-Softmax sampling and the temperature schedule."""

from __future__ import annotations

import math

import pytest
import torch

from simcse_gs.model.gumbel import TauSchedule, keep_probability, sample_keep


def test_hard_samples_keep_with_the_softmax_probability():
    """Gumbel-max is exact: P(hard sample = keep) = softmax(logits)[keep], whatever tau.

    200,000 draws per probability: the standard error is at most 0.0011, so a 0.006 tolerance is > 5 sigma.
    """
    torch.manual_seed(0)
    keep_logit = torch.tensor([-2.0, -0.5, 0.0, 0.7, 2.5])
    logits = torch.stack([keep_logit, torch.zeros(5)], dim=-1)  # [5, 2]: (keep, drop)
    expected = keep_probability(logits)
    n = 200_000
    for tau in (0.5, 1.0):
        draws = sample_keep(logits.expand(n, 5, 2), tau=tau, hard=True)
        assert set(draws.unique().tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(draws.mean(0), expected, atol=0.006, rtol=0)


def test_hard_samples_pass_soft_gradients():
    logits = torch.zeros(4, 2, requires_grad=True)
    sample_keep(logits, tau=0.5, hard=True).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_soft_samples_lie_strictly_between_0_and_1_and_sharpen_with_low_tau():
    torch.manual_seed(0)
    logits = torch.zeros(10_000, 2)
    hot, cold = sample_keep(logits, tau=5.0), sample_keep(logits, tau=0.1)
    assert torch.all((hot > 0) & (hot < 1))
    # lower tau pushes samples towards 0/1
    assert (cold - 0.5).abs().mean() > (hot - 0.5).abs().mean() + 0.2


def test_tau_follows_the_schedule_and_stops_at_the_floor():
    s = TauSchedule(init_tau=2.0, min_tau=0.5, decay_rate=0.01)
    assert s(0) == 2.0
    assert s(50) == pytest.approx(2.0 * math.exp(-0.5))
    assert s(10_000) == 0.5
    steps = [s(t) for t in range(0, 300, 10)]
    assert all(a >= b for a, b in zip(steps, steps[1:]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(min_tau=0.0), "min_tau must be > 0"),
        (dict(min_tau=-1.0), "min_tau must be > 0"),
        (dict(init_tau=0.3, min_tau=0.5), "init_tau"),
        (dict(decay_rate=-1e-3), "tau_decay_rate must be >= 0"),
    ],
)
def test_bad_schedules_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TauSchedule(**kwargs)
