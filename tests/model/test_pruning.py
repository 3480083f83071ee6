"""Exact pruning at inference: dropped tokens removed from the input give the masked model's embeddings, and it is
refused where it would not."""

from __future__ import annotations

import pytest
import torch

from simcse_gs.model.pruning import original_position_ids, prune_batch
from tests.conftest import LONG, SENTENCES, build


def test_prune_batch_keeps_order_positions_and_types():
    ids = torch.tensor([[101, 5, 6, 7, 102, 0], [101, 8, 9, 102, 0, 0]])
    mask = (ids != 0).long()
    keep = torch.tensor([[1, 0, 1, 1, 1, 0], [1, 1, 0, 1, 0, 0]])
    out = prune_batch(keep, ids, mask, torch.arange(6).expand(2, 6), torch.ones_like(ids))
    assert out["input_ids"].tolist() == [[101, 6, 7, 102], [101, 8, 102, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert out["position_ids"].tolist() == [[0, 2, 3, 4], [0, 1, 3, 0]]
    assert out["token_type_ids"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]


@pytest.mark.parametrize("fixture", ["tiny_bert_dir", "tiny_roberta_dir"])
@pytest.mark.parametrize("budget", [None, 0.6])
def test_pruned_encoding_equals_masked_encoding_under_the_renormalised_attention(request, fixture, budget):
    model = build(request.getfixturevalue(fixture), use_gs=True, pooler_type="avg", gs_attn_renorm=True)
    with torch.no_grad():  # a proxy that drops some tokens under the p >= 0.5 rule too
        model.proxy.head.weight.normal_(0, 2.0)
    enc = model.tokenizer(LONG, padding=True, return_tensors="pt")
    _, keep, decided = model.inference_keep_weights(enc["input_ids"], enc["attention_mask"], budget)
    assert (keep[decided.bool()] == 0).any() and (keep[decided.bool()] == 1).any()
    masked = model.encode(LONG, batch_size=3, keep_budget=budget)
    pruned = model.encode(LONG, batch_size=3, keep_budget=budget, prune=True)
    torch.testing.assert_close(pruned, masked, atol=1e-5, rtol=0)
    assert not torch.allclose(masked, model.encode(LONG, batch_size=3, keep_budget=1.0), atol=1e-3)


@pytest.mark.parametrize("fixture", ["tiny_bert_dir", "tiny_roberta_dir"])
def test_pruned_cls_pooling_and_original_position_ids(request, fixture):
    model = build(request.getfixturevalue(fixture), use_gs=True, pooler_type="cls", gs_attn_renorm=True,
                  gs_estimator="topk", gs_target_keep_rate=0.5)
    masked = model.encode(LONG, batch_size=4)  # topk: its own budget at inference
    torch.testing.assert_close(model.encode(LONG, batch_size=4, prune=True), masked, atol=1e-5, rtol=0)
    enc = model.tokenizer(LONG[:2], padding=True, return_tensors="pt")
    positions = original_position_ids(model.backbone, enc["input_ids"])
    first = 2 if model.backbone.config.model_type == "roberta" else 0  # RoBERTa counts from padding_idx + 1
    assert positions[0, 0] == first and positions[0, 1] == first + 1


def test_pruning_is_refused_where_it_would_change_the_result(tiny_bert_dir):
    original = build(tiny_bert_dir, use_gs=True, pooler_type="avg")  # the original scaling: no renormalisation
    with pytest.raises(ValueError, match="only under the renormalised attention"):
        original.encode(SENTENCES, prune=True)
    plain = build(tiny_bert_dir, use_gs=False, pooler_type="avg")
    with pytest.raises(ValueError, match="needs prune=True"):
        plain.encode(SENTENCES, keep_budget=0.5)
    with pytest.raises(ValueError, match=r"keep_budget must be in \(0, 1\]"):
        plain.encode(SENTENCES, keep_budget=0.0, prune=True)
