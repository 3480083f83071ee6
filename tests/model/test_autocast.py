"""Mixed precision on the CPU: the GS training step under bf16 autocast, and fp16 + GradScaler."""

from __future__ import annotations

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

import simcse_gs.model.attention as attention
import simcse_gs.model.modeling as modeling
from simcse_gs.model import SimCSEGSModel
from tests.conftest import tokenized

LOSS_TOL = 0.05


class DtypeSpy:
    """Records the dtypes that reach the attention patch's SDPA call / eager output and the pooler."""

    def __init__(self, monkeypatch):
        self.attention: list[tuple[torch.dtype, ...]] = []
        self.pool: list[tuple[torch.dtype, ...]] = []

        def spy_sdpa(module, query, key, value, attention_mask, **kwargs):
            out = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
            self.attention.append((query.dtype, key.dtype, value.dtype, out[0].dtype))
            return out

        eager = attention.gs_eager_attention

        def spy_eager(module, query, key, value, attention_mask, **kwargs):
            out, probs = eager(module, query, key, value, attention_mask, **kwargs)
            self.attention.append((query.dtype, key.dtype, value.dtype, out.dtype, probs.dtype))
            return out, probs

        pool = modeling.pool

        def spy_pool(pooler_type, hidden_states, attention_mask, token_weights=None):
            z = pool(pooler_type, hidden_states, attention_mask, token_weights)
            self.pool.append((hidden_states[-1].dtype, None if token_weights is None else token_weights.dtype,
                              z.dtype))
            return z

        monkeypatch.setattr(attention, "sdpa_attention_forward", spy_sdpa)  # what gs_sdpa_attention calls
        monkeypatch.setattr(attention, "gs_eager_attention", spy_eager)  # registered when the model is built
        monkeypatch.setattr(modeling, "pool", spy_pool)


def without_dropout(model: SimCSEGSModel) -> SimCSEGSModel:
    """Dropout off, so that an fp32 and a bf16 step see the same network (the Gumbel / Bernoulli noise is drawn in
    float32 from the same seed in both, so the keep decisions are the same too)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def gs_step(path: str, precision: str, n_sent: int, **settings) -> tuple[SimCSEGSModel, torch.Tensor]:
    """One forward + backward of a fresh GS model (seed 0, proxy head drawn from seed 1 so that gradients reach
    the proxy's encoder), noise from seed 2, under ``precision`` autocast on the CPU, dropout off."""
    torch.manual_seed(0)
    model = without_dropout(SimCSEGSModel.from_backbone(path, use_gs=True, **settings).train())
    torch.manual_seed(1)
    with torch.no_grad():
        model.proxy.head.weight.normal_(std=0.02)
    batch = tokenized(model, n_sent)
    torch.manual_seed(2)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = model(**batch, tau=0.7)
    out.loss.backward()
    return model, out.loss.detach()


def assert_gradients_reach_the_proxy(model: SimCSEGSModel) -> None:
    grads = {n: p.grad for n, p in model.proxy.named_parameters() if p.requires_grad}
    assert all(g is None or torch.isfinite(g).all() for g in grads.values())
    assert grads["head.weight"].abs().sum() > 0
    first_layer = [g for n, g in grads.items() if ".layer.0." in n and g is not None]
    assert first_layer and any(g.abs().sum() > 0 for g in first_layer)  # through the whole proxy encoder


@pytest.mark.parametrize("estimator", ["soft", "st", "reinforce"])
@pytest.mark.parametrize("n_sent", [1, 3], ids=["unsup", "sup"])
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_gs_step_under_bf16_autocast(tiny_bert_dir, impl, n_sent, estimator, monkeypatch):
    settings = dict(gs_attn_impl=impl, gs_estimator=estimator, pooler_type="avg",
                    hard_negative_weight=0.5 if n_sent == 3 else 0.0)
    _, loss32 = gs_step(tiny_bert_dir, "fp32", n_sent, **settings)
    spy = DtypeSpy(monkeypatch)
    model, loss16 = gs_step(tiny_bert_dir, "bf16", n_sent, **settings)
    assert loss16.dtype == torch.float32 and torch.isfinite(loss16)
    assert abs(float(loss16) - float(loss32)) <= LOSS_TOL, (float(loss16), float(loss32))
    assert_gradients_reach_the_proxy(model)
    # the patch keeps Q, K, V (V scaled by p, or the probabilities scaled by p) in the autocast dtype, so the
    # fused GPU kernels stay usable (SDPA refuses mixed dtypes)
    assert len(spy.attention) == model.backbone.config.num_hidden_layers
    assert all(set(dtypes) == {torch.bfloat16} for dtypes in spy.attention), spy.attention
    # keep-weighted pooling: the last hidden state leaves a LayerNorm (float32 under autocast, on the CPU as on
    # CUDA), the Gumbel / Bernoulli weights are float32, so the sentence vectors are float32
    assert spy.pool == [(torch.float32, torch.float32, torch.float32)]


@pytest.mark.slow
@pytest.mark.parametrize("n_sent, estimator", [(1, "soft"), (3, "reinforce")])
def test_minilm_gs_step_under_bf16_autocast(minilm, n_sent, estimator):
    """The real model, with SimCSE's cls pooler and MLP head."""
    settings = dict(gs_estimator=estimator, pooler_type="cls")
    _, loss32 = gs_step(minilm, "fp32", n_sent, **settings)
    model, loss16 = gs_step(minilm, "bf16", n_sent, **settings)
    assert torch.isfinite(loss16) and abs(float(loss16) - float(loss32)) <= LOSS_TOL, (float(loss16), float(loss32))
    assert_gradients_reach_the_proxy(model)


def test_fp16_autocast_and_grad_scaler_steps_on_the_cpu(tiny_bert_dir):
    """torch (2.3+) has fp16 autocast and GradScaler("cpu"): scaled steps work as on a GPU. At the initial scale
    2^16 the fp16 activation gradients overflow, so the scaler skips the step (weights untouched) and halves the
    scale until a step is taken."""
    torch.manual_seed(0)
    model = SimCSEGSModel.from_backbone(tiny_bert_dir, use_gs=True, pooler_type="avg").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu")
    batch = tokenized(model, 1)
    taken = []
    for _ in range(12):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        scale = scaler.get_scale()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.float16):
            out = model(**batch, tau=0.7)
        assert torch.isfinite(out.loss) and out.loss.dtype == torch.float32
        scaler.scale(out.loss).backward()
        scaler.step(opt)
        scaler.update()
        changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
        skipped = scaler.get_scale() < scale
        assert (changed == []) == skipped  # a skipped step leaves every weight as it was
        taken.append(not skipped)
        if sum(taken) == 2:
            break
    assert sum(taken) == 2, taken
    assert any(n.startswith("proxy.") for n in changed) and any(n.startswith("backbone.") for n in changed)


