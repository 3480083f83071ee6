"""Forced tokens, the inference keep rule, and keep statistics."""

from __future__ import annotations

import torch

from simcse_gs.model.keep import KeepStatsAccumulator, apply_forced, decided_mask, inference_keep, keep_statistics


def test_padding_is_never_kept_and_special_tokens_always_are():
    keep = torch.tensor([[0.25, 0.75, 0.5, 0.125, 0.875]])  # exact in binary floating point
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    special = torch.tensor([[1, 0, 0, 1, 0]])
    forced = apply_forced(keep, mask, special, drop_special=False)
    assert forced.tolist() == [[1.0, 0.75, 0.5, 1.0, 0.0]]
    assert apply_forced(keep, mask, special, drop_special=True).tolist() == [[0.25, 0.75, 0.5, 0.125, 0.0]]
    assert decided_mask(mask, special, False).tolist() == [[False, True, True, False, False]]
    assert decided_mask(mask, special, True).tolist() == [[True, True, True, True, False]]


def test_forced_values_carry_no_gradient_but_decided_ones_do():
    keep = torch.full((1, 3), 0.5, requires_grad=True)
    apply_forced(keep, torch.tensor([[1, 1, 0]]), torch.tensor([[1, 0, 0]]), False).sum().backward()
    assert keep.grad.tolist() == [[0.0, 1.0, 0.0]]


def test_inference_rule_thresholds_at_one_half_and_falls_back_to_the_most_probable_token():
    prob = torch.tensor([[0.5, 0.49, 0.7, 0.9], [0.1, 0.3, 0.2, 0.95]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    keep = inference_keep(prob, mask)
    assert keep.tolist() == [[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]]  # row 2: pad's 0.95 does not count


def test_the_fallback_looks_at_the_decided_tokens_not_at_the_forced_ones():
    """[CLS] and [SEP] are forced to 1: a proxy that drops every decided token still keeps its best one."""
    prob = torch.tensor([[1.0, 0.2, 0.4, 0.1, 1.0], [1.0, 0.7, 0.3, 1.0, 0.0]])  # [CLS] ... [SEP] (pad)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    decided = torch.tensor([[0, 1, 1, 1, 0], [0, 1, 1, 0, 0]])
    keep = inference_keep(prob, mask, decided)
    assert keep.tolist() == [[1.0, 0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 1.0, 0.0]]
    only_special = inference_keep(prob[:1], mask[:1], torch.zeros_like(decided[:1]))  # nothing decided: no fallback
    assert only_special.tolist() == [[1.0, 0.0, 0.0, 0.0, 1.0]]


def test_statistics_are_means_over_decided_tokens():
    prob = torch.tensor([[1.0, 0.8, 0.2, 0.0]])
    hard = inference_keep(prob, torch.ones(1, 4))
    decided = torch.tensor([[False, True, True, False]])
    stats = keep_statistics(prob, hard, decided)
    assert abs(stats["keep_prob"] - 0.5) < 1e-6
    assert abs(stats["keep_rate"] - 0.5) < 1e-6
    h = -(0.8 * torch.log(torch.tensor(0.8)) + 0.2 * torch.log(torch.tensor(0.2)))
    assert abs(stats["keep_entropy"] - float(h)) < 1e-5


def test_accumulator_weights_batches_by_their_decided_tokens():
    acc = KeepStatsAccumulator()
    acc.update(torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[True, True]]))
    acc.update(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[True, False]]))
    assert abs(acc.compute()["keep_rate"] - 2 / 3) < 1e-6
    acc.reset()
    assert acc.compute() == {}
