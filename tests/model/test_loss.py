"""The contrastive loss against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from simcse_gs.model.loss import ContrastiveLoss


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def hand_loss(z1, z2, z3=None, temp=0.05, hnw=0.0):
    total = 0.0
    for i, a in enumerate(z1):
        logits = [cos(a, b) / temp for b in z2]
        if z3 is not None:
            logits += [cos(a, c) / temp + (hnw if j == i else 0.0) for j, c in enumerate(z3)]
        m = max(logits)
        total += -(logits[i] - m - math.log(sum(math.exp(x - m) for x in logits)))
    return total / len(z1)


Z1 = [[1.0, 0.0, 0.5], [0.2, 1.0, -0.3], [-0.4, 0.1, 1.0]]
Z2 = [[0.9, 0.1, 0.4], [0.0, 1.0, 0.1], [-0.5, 0.3, 0.8]]
Z3 = [[0.3, 0.8, 0.0], [1.0, -0.2, 0.4], [0.1, 0.1, -1.0]]


def test_unsupervised_loss_matches_hand_computation():
    # temp 0.5: at 0.05 these well-separated vectors give a loss near 1e-7, below float32's resolution
    loss = ContrastiveLoss(temp=0.5)(torch.tensor(Z1), torch.tensor(Z2))
    assert loss.item() == pytest.approx(hand_loss(Z1, Z2, temp=0.5), rel=1e-5)


@pytest.mark.parametrize("weight", [0.0, 1.0, -0.7])
def test_supervised_loss_with_hard_negative_weight_matches_hand_computation(weight):
    loss = ContrastiveLoss(temp=0.1, hard_negative_weight=weight)(torch.tensor(Z1), torch.tensor(Z2), torch.tensor(Z3))
    assert loss.item() == pytest.approx(hand_loss(Z1, Z2, Z3, temp=0.1, hnw=weight), rel=1e-5)


def test_hard_negative_weight_changes_the_loss():
    a = ContrastiveLoss(0.1, 0.0)(torch.tensor(Z1), torch.tensor(Z2), torch.tensor(Z3))
    b = ContrastiveLoss(0.1, 1.0)(torch.tensor(Z1), torch.tensor(Z2), torch.tensor(Z3))
    assert b > a


def test_batch_of_one_without_negatives_is_refused():
    with pytest.raises(ValueError, match="at least 2 sentences"):
        ContrastiveLoss()(torch.ones(1, 3), torch.ones(1, 3))


def test_non_positive_temperature_is_refused():
    with pytest.raises(ValueError, match="temp must be > 0"):
        ContrastiveLoss(temp=0.0)
