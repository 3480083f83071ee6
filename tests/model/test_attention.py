"""The attention patch: identity at p = 1, fast path == reference, padding respected, every layer reached."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import BertModel, RobertaModel

from simcse_gs.model.attention import check_supported, enable_token_keep, gs_eager_attention, gs_sdpa_attention
from tests.conftest import tiny_config

MODELS = {"bert": BertModel, "roberta": RobertaModel}


def make_model(model_type: str, dropout: float = 0.0):
    torch.manual_seed(0)
    cfg = tiny_config(model_type, 120, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return MODELS[model_type](cfg)


def batch(model_type: str):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 120, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 1 if model_type == "roberta" else 0
    return ids, mask


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_keep_all_equals_unpatched_model(model_type, impl):
    model = make_model(model_type).eval()
    ids, mask = batch(model_type)
    reference = model(input_ids=ids, attention_mask=mask).last_hidden_state
    enable_token_keep(model, impl)
    patched = model(input_ids=ids, attention_mask=mask, token_keep=torch.ones(ids.shape)).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(patched[real], reference[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
def test_sdpa_fast_path_matches_eager_reference_forward_and_gradients(model_type):
    ids, mask = batch(model_type)
    keep = torch.rand(ids.shape, generator=torch.Generator().manual_seed(2)) * mask
    results = {}
    for impl in ("sdpa", "eager"):
        model = make_model(model_type).train()  # dropout 0, so training mode is deterministic
        enable_token_keep(model, impl)
        p = keep.clone().requires_grad_(True)
        out = model(input_ids=ids, attention_mask=mask, token_keep=p).last_hidden_state
        loss = (out * mask[..., None]).pow(2).sum()  # not LayerNorm-invariant, so gradients are informative
        loss.backward()
        grads = {n: w.grad.clone() for n, w in model.named_parameters() if w.grad is not None}
        results[impl] = (out.detach(), p.grad.clone(), grads)
    (out_s, gp_s, gw_s), (out_e, gp_e, gw_e) = results["sdpa"], results["eager"]
    real = mask.bool()
    torch.testing.assert_close(out_s[real], out_e[real], atol=1e-5, rtol=1e-5)
    assert gp_s.abs().max() > 0
    torch.testing.assert_close(gp_s, gp_e, atol=1e-4, rtol=1e-4)
    assert gp_s[~real].abs().max() == 0  # padded keys get no gradient
    assert gw_s.keys() == gw_e.keys()
    for name in gw_s:
        torch.testing.assert_close(gw_s[name], gw_e[name], atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_padding_is_respected(model_type, impl):
    """The registered mask function must keep the padding mask (without it, pads leak into real tokens)."""
    model = make_model(model_type).eval()
    enable_token_keep(model, impl)
    ids, mask = batch(model_type)
    keep = torch.full(ids.shape, 0.7)
    out = model(input_ids=ids, attention_mask=mask, token_keep=keep).last_hidden_state
    other = ids.clone()
    other[mask == 0] = 7  # change what sits in the padded positions
    out2 = model(input_ids=other, attention_mask=mask, token_keep=keep).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(out[real], out2[real], atol=1e-6, rtol=0)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_keep_weights_change_outputs_and_reach_every_layer(impl, monkeypatch):
    model = make_model("bert").eval()
    enable_token_keep(model, impl)
    ids, mask = batch("bert")
    seen = []
    from transformers import AttentionInterface

    fn = AttentionInterface._global_mapping[f"gs_{impl}"]

    def spy(module, *args, token_keep=None, **kwargs):
        seen.append((module.layer_idx if hasattr(module, "layer_idx") else None, token_keep))
        return fn(module, *args, token_keep=token_keep, **kwargs)

    monkeypatch.setitem(AttentionInterface._global_mapping, f"gs_{impl}", spy)
    keep = torch.ones(ids.shape)
    keep[0, 2] = 0.0
    out = model(input_ids=ids, attention_mask=mask, token_keep=keep).last_hidden_state
    base = model(input_ids=ids, attention_mask=mask, token_keep=torch.ones(ids.shape)).last_hidden_state
    assert len(seen) == 2 * model.config.num_hidden_layers
    assert all(k is not None for _, k in seen)
    assert (out[0] - base[0]).abs().max() > 1e-3  # dropping a token changes that sentence
    torch.testing.assert_close(out[1:], base[1:])  # and no other


def test_zero_keep_equals_masking_the_token_out_without_renormalisation():
    """p_j = 0 removes key j from every attention row, but the remaining probabilities are not renormalised."""
    model = make_model("bert").eval()
    enable_token_keep(model, "eager")
    ids, mask = batch("bert")
    keep = torch.ones(ids.shape)
    keep[0, 3] = 0
    captured = []
    layer = model.encoder.layer[0].attention.self
    handle = layer.register_forward_hook(lambda m, a, out: captured.append(out[1]))
    model(input_ids=ids, attention_mask=mask, token_keep=keep)
    handle.remove()
    probs = captured[0]
    assert torch.all(probs[0, :, :, 3] == 0)
    assert torch.all(probs[0].sum(-1) < 1 - 1e-4)  # mass removed, not redistributed


def test_unsupported_model_type_names_supported_ones():
    with pytest.raises(ValueError, match="bert, roberta"):
        check_supported("gpt2")


def _qkv(length=7, heads=2, dim=4, batch=3, seed=0):
    torch.manual_seed(seed)
    return [torch.randn(batch, heads, length, dim, dtype=torch.float64) for _ in range(3)]


def test_renormalised_attention_sdpa_equals_eager_and_is_softmax_over_kept_keys():
    q, k, v = _qkv()
    p = torch.rand(3, 7, dtype=torch.float64, requires_grad=True)
    module = torch.nn.Module()
    module.training, module.is_causal = False, False
    sdpa, _ = gs_sdpa_attention(module, q, k, v, None, token_keep=p, token_keep_renorm=True)
    eager, _ = gs_eager_attention(module, q, k, v, None, token_keep=p, token_keep_renorm=True)
    torch.testing.assert_close(sdpa, eager)
    g1 = torch.autograd.grad(sdpa.sum(), p)[0]
    g2 = torch.autograd.grad(eager.sum(), p)[0]
    torch.testing.assert_close(g1, g2, atol=1e-6, rtol=1e-6)
    # p learns through the unrenormalised scaling (attention.py: the exact derivative explodes for small kept mass)
    scaled, _ = gs_sdpa_attention(module, q, k, v, None, token_keep=p)
    torch.testing.assert_close(g1, torch.autograd.grad(scaled.sum(), p)[0], atol=1e-6, rtol=1e-6)
    hard = (torch.arange(7) % 3 != 1).double().expand(3, 7)
    masked, _ = gs_sdpa_attention(module, q, k, v, None, token_keep=hard, token_keep_renorm=True)
    kept = hard[0].bool()
    scores = (q @ k[:, :, kept].transpose(-1, -2)) / math.sqrt(4)
    want = (scores.softmax(-1) @ v[:, :, kept]).transpose(1, 2)
    torch.testing.assert_close(masked, want)
    plain, _ = gs_sdpa_attention(module, q, k, v, None, token_keep=hard)  # the original: dropped keys keep mass
    assert not torch.allclose(plain, want)
