"""SimCSEGSModel on tiny random BERT/RoBERTa checkpoints: forward shapes, views, poolers, save/load."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch

from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.pooling import pool
from simcse_gs.model.proxy import TokenKeepProxy
from tests.conftest import SENTENCES, build, cli_error, tokenized, train_args


@pytest.mark.parametrize("fixture", ["tiny_bert_dir", "tiny_roberta_dir"])
@pytest.mark.parametrize("n_sent", [1, 2, 3])
def test_gs_forward_trains_the_proxy_for_every_input_shape(request, fixture, n_sent):
    model = build(request.getfixturevalue(fixture), use_gs=True, pooler_type="avg").train()
    out = model(**tokenized(model, n_sent), tau=1.0)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.proxy.head.weight.grad.abs().sum() > 0
    assert 0 <= out.keep_rate <= 1 and 0 <= out.keep_prob <= 1


def test_plain_simcse_keeps_the_stock_attention(tiny_bert_dir):
    model = build(tiny_bert_dir, use_gs=False)
    assert model.proxy is None
    assert model.backbone.config._attn_implementation == "sdpa"
    assert build(tiny_bert_dir, use_gs=True).backbone.config._attn_implementation == "gs_sdpa"
    assert build(tiny_bert_dir, use_gs=True, gs_attn_impl="eager").backbone.config._attn_implementation == "gs_eager"


def test_training_without_tau_is_refused(tiny_bert_dir):
    model = build(tiny_bert_dir, use_gs=True).train()
    with pytest.raises(ValueError, match="tau"):
        model(**tokenized(model))


def test_views_draw_their_own_samples_unless_shared(tiny_bert_dir):
    enc = tokenized(build(tiny_bert_dir, use_gs=True))
    ids, mask = enc["input_ids"][:, 0], enc["attention_mask"][:, 0]
    for shared in (False, True):
        model = build(tiny_bert_dir, use_gs=True, gs_shared_sample=shared).train()
        k1, k2 = model.keep_weights(ids, mask, 2, tau=1.0).weights
        assert torch.equal(k1, k2) == shared


def test_forced_tokens_in_training_samples(tiny_bert_dir):
    model = build(tiny_bert_dir, use_gs=True).train()
    enc = tokenized(model)
    ids, mask = enc["input_ids"][:, 0], enc["attention_mask"][:, 0]
    (keep,) = model.keep_weights(ids, mask, 1, tau=1.0).weights
    special = model.special_tokens_mask(ids)
    assert torch.all(keep[special & mask.bool()] == 1)
    assert torch.all(keep[~mask.bool()] == 0)
    decided = mask.bool() & ~special
    assert torch.all((keep[decided] > 0) & (keep[decided] < 1))


def test_avg_first_last_uses_first_and_last_layer_outputs():
    torch.manual_seed(0)
    hs = tuple(torch.randn(2, 4, 3) for _ in range(4))  # embeddings + 3 layers
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    got = pool("avg_first_last", hs, mask)
    want = ((hs[1] + hs[3]) / 2 * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(got, want)
    top2 = ((hs[2] + hs[3]) / 2 * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(pool("avg_top2", hs, mask), top2)
    torch.testing.assert_close(pool("cls", hs, mask), hs[3][:, 0])


def test_keep_weighted_avg_ignores_dropped_tokens():
    hs = (torch.arange(12.0).view(1, 4, 3),)
    mask = torch.ones(1, 4)
    keep = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    torch.testing.assert_close(pool("avg", hs, mask, keep), (hs[0][0, 0] + hs[0][0, 2]).unsqueeze(0) / 2)


def test_unknown_pooler_is_refused(tiny_bert_dir):
    with pytest.raises(ValueError, match="--pooler_type must be one of cls, cls_before_pooler, avg.*got 'mean'"):
        build(tiny_bert_dir, pooler_type="mean")


@pytest.mark.parametrize("fixture", ["tiny_bert_dir", "tiny_roberta_dir"])
@pytest.mark.parametrize("settings", [dict(use_gs=True, pooler_type="avg", gs_hard=True, min_tau=0.3),
                                      dict(use_gs=False, pooler_type="cls", mlp_only_train=True)])
def test_save_and_reload_gives_the_same_embeddings(request, tmp_path, fixture, settings):
    model = build(request.getfixturevalue(fixture), **settings)
    with torch.no_grad():  # make the proxy head non-trivial so the keep rule matters
        if model.proxy is not None:
            model.proxy.head.weight.normal_(0, 1.0)
    before = model.encode(SENTENCES, batch_size=4)
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["model_type"] == "simcse_gs"
    for key, value in settings.items():
        assert config[key] == value
    assert (tmp_path / "ckpt" / "model.safetensors").exists()
    reloaded = SimCSEGSModel.from_pretrained(tmp_path / "ckpt")  # no proxy name needed
    after = reloaded.encode(SENTENCES, batch_size=4)
    torch.testing.assert_close(before, after)
    assert reloaded.config.use_gs == settings["use_gs"]


def test_encode_is_order_and_batch_size_independent_and_restores_the_mode(tiny_bert_dir):
    model = build(tiny_bert_dir, use_gs=True, pooler_type="avg").train()
    a = model.encode(SENTENCES, batch_size=2)
    b = model.encode(SENTENCES[::-1], batch_size=5).flip(0)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert model.training  # encode() evaluates in eval mode and puts the model back


def test_proxy_with_a_different_tokenizer_is_refused(tiny_bert_dir, tiny_roberta_dir):
    with pytest.raises(ValueError, match="different tokenizer than the backbone"):
        build(tiny_bert_dir, use_gs=True, proxy_model_name_or_path=tiny_roberta_dir)


def test_separate_proxy_with_the_same_tokenizer(tiny_bert_dir):
    model = build(tiny_bert_dir, use_gs=True, proxy_model_name_or_path=tiny_bert_dir, proxy_num_layers=1)
    assert model.proxy.encoder.config.num_hidden_layers == 1


def test_mlm_auxiliary_loss_is_added(tiny_bert_dir):
    from simcse_gs.training.data import SimCSECollator

    model = build(tiny_bert_dir, use_gs=False, do_mlm=True, mlm_weight=0.5).train()
    features = [{k: [v] for k, v in model.tokenizer(s).items()} for s in SENTENCES]
    torch.manual_seed(0)
    batch = SimCSECollator(model.tokenizer, do_mlm=True, mlm_probability=0.3)(features)
    out = model(**batch)
    assert out.mlm_loss is not None and out.mlm_loss > 0
    torch.testing.assert_close(out.loss, out.contrastive_loss + 0.5 * out.mlm_loss)


def test_random_drop_control_drops_about_q_of_decided_tokens(tiny_bert_dir):
    model = build(tiny_bert_dir, use_gs=False, token_drop_rate=0.3).train()
    ids = torch.randint(1000, 2000, (64, 40))
    ids[:, 0] = model.tokenizer.cls_token_id
    mask = torch.ones_like(ids)
    k1, k2 = model.keep_weights(ids, mask, 2, tau=None).weights
    assert torch.all(k1[:, 0] == 1)  # [CLS] always kept
    rate = 1 - k1[:, 1:].mean()
    assert abs(rate - 0.3) < 0.03  # 2,496 Bernoulli draws: std 0.009
    assert not torch.equal(k1, k2)
    model.eval()
    assert model.keep_weights(ids, mask, 1, tau=None).weights == [None]  # nothing dropped at inference


def test_truncated_proxy_loads_quietly_and_missing_weights_are_named(tiny_bert_dir, tmp_path, capfd, caplog):
    from safetensors.torch import load_file, save_file

    TokenKeepProxy.from_pretrained(tiny_bert_dir, num_layers=1)  # layer 1 of the checkpoint is unused on purpose
    err = capfd.readouterr().err
    assert "UNEXPECTED" not in err and "LOAD REPORT" not in err
    shutil.copytree(tiny_bert_dir, tmp_path / "p")
    weights = load_file(tmp_path / "p" / "model.safetensors")
    key = next(k for k in weights if k.endswith("layer.0.output.dense.bias"))
    del weights[key]
    save_file(weights, tmp_path / "p" / "model.safetensors", metadata={"format": "pt"})
    with caplog.at_level(logging.WARNING, logger="simcse_gs.model.proxy"):
        TokenKeepProxy.from_pretrained(str(tmp_path / "p"), num_layers=1)
    assert "lacks 1 weights" in caplog.text and key in caplog.text


def test_random_drop_control_weights_the_avg_pooler_by_its_keeps_in_training(tiny_bert_dir):
    """docs/RESEARCH_TOOLS.md: the control's keeps act in attention and as the avg pooler's weights, as GS keeps."""
    model = build(tiny_bert_dir, use_gs=False, token_drop_rate=0.5, pooler_type="avg").train()
    for module in model.modules():  # no dropout: the keeps are the only randomness
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    enc = tokenized(model)
    ids, mask = enc["input_ids"][:, 0], enc["attention_mask"][:, 0]
    torch.manual_seed(3)
    (keep,) = model.keep_weights(ids, mask, 1, tau=None).weights
    assert (keep[mask.bool()] == 0).any()
    hidden = model.backbone(input_ids=ids, attention_mask=mask, token_keep=keep).last_hidden_state
    weighted = (hidden * keep[..., None]).sum(1) / keep.sum(1, keepdim=True)
    torch.testing.assert_close(model.embed(ids, mask, None, keep), weighted)
    everything = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    assert not torch.allclose(model.embed(ids, mask, None, keep), everything, atol=1e-4)


def test_a_proxy_that_drops_every_token_still_keeps_the_most_probable_one(tiny_bert_dir):
    model = build(tiny_bert_dir, use_gs=True, pooler_type="avg").eval()
    with torch.no_grad():
        model.proxy.head.bias.copy_(torch.tensor([-5.0, 5.0]))  # p ~ 0 for every token
        model.proxy.head.weight.normal_(0, 0.1)  # ... but not all equal
    enc = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    _, prob, keep, decided = model.score_tokens(enc["input_ids"], enc["attention_mask"])
    assert torch.all((keep * decided).sum(1) == 1)  # one decided token per sentence, besides [CLS]/[SEP]
    best = prob.masked_fill(~decided.bool(), -1).argmax(1)
    assert torch.all(keep[torch.arange(len(best)), best] == 1)


def test_gs_with_an_unsupported_model_type_names_the_supported_ones(tiny_distilbert_dir, unsup_file, tmp_path,
                                                                    capsys):
    message = cli_error(capsys, train_args(tiny_distilbert_dir, unsup_file, tmp_path / "o", "--use_gs", "true"))
    assert "bert, roberta" in message and "'distilbert'" in message and "--use_gs false" in message


def test_plain_simcse_on_the_unsupported_type_still_builds(tiny_distilbert_dir):
    model = SimCSEGSModel.from_backbone(tiny_distilbert_dir, use_gs=False, pooler_type="avg")
    assert model.backbone.config.model_type == "distilbert"
