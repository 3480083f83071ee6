"""The original GS study's recipe switches: the pooled-vector head, the two-layer proxy head, the shared keep
sample, the example-counted temperature, padding to max length, and the optimizer's groups (docs/RECIPES.md)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

import train
from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.gumbel import TauSchedule
from simcse_gs.model.pooling import pool
from simcse_gs.model.proxy import TokenKeepProxy
from simcse_gs.training.data import SimCSECollator
from simcse_gs.training.trainer import examples_seen
from tests.conftest import SENTENCES, build, tiny_config, tokenized

ORIGINAL = Path(__file__).resolve().parents[2] / "configs" / "original"


def model_from_original_config(name: str, backbone: str, proxy: str | None) -> SimCSEGSModel:
    """A model with every setting of ``configs/original/<name>.yaml``, on small local stand-ins for the hub models."""
    flags = ["--model_name_or_path", backbone, "--output_dir", "unused", "--fp16", "false"]
    if proxy:
        flags += ["--proxy_model_name_or_path", proxy]
    model_args, _, _ = train.parse_args([str(ORIGINAL / f"{name}.yaml"), *flags])
    torch.manual_seed(0)
    return SimCSEGSModel.from_backbone(backbone, proxy_model_name_or_path=model_args.proxy_model_name_or_path,
                                       proxy_num_layers=model_args.proxy_num_layers, **model_args.model_settings())


def plain_mean_pooling(model: SimCSEGSModel, sentences: list[str], keep: bool) -> torch.Tensor:
    """The backbone's (keep-weighted, under GS) mean pooling without any head, computed by hand."""
    enc = model.tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        weights = None
        if keep:
            _, _, weights, _ = model.score_tokens(enc["input_ids"], enc["attention_mask"])
        kwargs = {"token_keep": weights} if weights is not None else {}
        hidden = model.backbone(**enc, **kwargs).last_hidden_state
        return pool("avg", (hidden,), enc["attention_mask"], weights)


@pytest.mark.parametrize("name", ["unsup-bert-gs", "sup-bert-gs", "unsup-bert-plain", "sup-bert-plain"])
def test_an_original_row_applies_its_head_at_inference(name, tiny_bert_dir, tiny_distilbert_dir):
    gs = name.endswith("-gs")
    model = model_from_original_config(name, tiny_bert_dir, tiny_distilbert_dir if gs else None).eval()
    cfg = model.config
    assert cfg.pooler_type == "avg" and cfg.resolved_head_type == "dropout_mlp" and not cfg.mlp_only_train
    assert isinstance(model.mlp.dropout, nn.Dropout) and model.mlp.dropout.p == pytest.approx(0.1)
    got = model.encode(SENTENCES, batch_size=8)
    pooled = plain_mean_pooling(model, SENTENCES, keep=gs)
    with torch.no_grad():
        torch.testing.assert_close(got, torch.tanh(model.mlp.dense(pooled)), atol=1e-5, rtol=1e-5)
    assert (got - pooled).abs().max() > 0.05  # the head changes the embedding: not plain mean pooling


def test_simcse_recipe_drops_its_head_at_inference_and_auto_follows_the_pooler(tiny_bert_dir):
    assert build(tiny_bert_dir, pooler_type="avg").mlp is None
    model = build(tiny_bert_dir, pooler_type="cls", mlp_only_train=True).eval()
    enc = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        cls = model.backbone(**enc).last_hidden_state[:, 0]
    torch.testing.assert_close(model.encode(SENTENCES), cls, atol=1e-5, rtol=1e-5)
    assert isinstance(model.mlp.dropout, nn.Identity)  # SimCSE's MLP has no dropout


@pytest.mark.parametrize("family", ["distilbert", "roberta"])
def test_the_two_layer_proxy_head_has_the_originals_layers_dropout_and_random_init(family):
    if family == "distilbert":
        config = DistilBertConfig(vocab_size=50, dim=32, n_layers=1, n_heads=4, hidden_dim=64)
        encoder = DistilBertModel(config)
        kinds, dropouts = [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear], [0.2]  # DistilBERT's seq_classif_dropout
    else:
        from transformers import RobertaModel

        encoder = RobertaModel(tiny_config("roberta", 50))
        kinds, dropouts = [nn.Dropout, nn.Linear, nn.Tanh, nn.Dropout, nn.Linear], [0.1, 0.1]
    torch.manual_seed(0)
    proxy = TokenKeepProxy(encoder, head="two_layer")
    assert [type(m) for m in proxy.head] == kinds
    assert [m.p for m in proxy.head if isinstance(m, nn.Dropout)] == pytest.approx(dropouts)
    linears = [m for m in proxy.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 32), (32, 2)]
    for m in linears:  # N(0, 0.02) weights, zero biases: transformers' init of the original's new heads
        assert 0.01 < m.weight.std() < 0.03 and torch.all(m.bias == 0)
    logits = proxy(torch.randint(5, 50, (3, 7)), torch.ones(3, 7, dtype=torch.long))
    assert logits.shape == (3, 7, 2) and logits.abs().max() > 0  # p is not 0.5 everywhere, unlike the linear head
    assert torch.all(TokenKeepProxy(DistilBertModel(DistilBertConfig(vocab_size=50, dim=32, n_layers=1, n_heads=4,
                                                                     hidden_dim=64))).head.weight == 0)


def test_two_layer_proxy_head_survives_model_init_save_and_load(tiny_bert_dir, tiny_distilbert_dir, tmp_path):
    model = build(tiny_bert_dir, use_gs=True, pooler_type="avg", proxy_head="two_layer",
                  proxy_model_name_or_path=tiny_distilbert_dir)
    first = model.proxy.head[0].weight
    assert first.std() > 0.01  # post_init drew it (it is not left at zero or at a copy of the throwaway proxy)
    torch.testing.assert_close(first, build(tiny_bert_dir, use_gs=True, pooler_type="avg", proxy_head="two_layer",
                                            proxy_model_name_or_path=tiny_distilbert_dir).proxy.head[0].weight)
    model.save_pretrained(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["proxy_head"] == "two_layer"
    reloaded = SimCSEGSModel.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(reloaded.proxy.head[0].weight, first)
    torch.testing.assert_close(reloaded.encode(SENTENCES), model.encode(SENTENCES))


@pytest.mark.parametrize("shared", [True, False])
def test_both_views_get_the_same_keep_sample_when_shared(tiny_bert_dir, shared):
    model = build(tiny_bert_dir, use_gs=True, pooler_type="avg", gs_shared_sample=shared).train()
    seen = []
    model.backbone.register_forward_pre_hook(lambda _m, _a, kwargs: seen.append(kwargs["token_keep"]),
                                             with_kwargs=True)
    model(**tokenized(model), tau=1.0)
    first, second = seen[0].chunk(2)  # [2B, L]: view 1's sentences, then view 2's
    assert torch.equal(first, second) == shared
    assert ((first > 0) & (first < 1)).any()  # a real (soft) sample, not the forced 0/1 values only


def test_example_counted_schedule_gives_the_originals_tau():
    schedule = TauSchedule(init_tau=1.0, min_tau=0.5, decay_rate=1e-5)  # the original's defaults
    for t in (0, 10_000, 50_000, 69_314, 69_316, 1_000_000):
        assert schedule(t) == pytest.approx(max(0.5, math.exp(-1e-5 * t)))
    assert schedule(69_314) > 0.5 and schedule(69_316) == 0.5  # the floor at ln 2 / 1e-5 examples
    # the original's t before the k-th forward of optimizer step s, batch 256 accumulated twice: (2s + k) * 256
    assert examples_seen(global_step=3, micro_step=1, accumulation_steps=2, per_device_batch_size=256) == 7 * 256


def run_train(model_dir, train_file, out, *extra):
    argv = ["--model_name_or_path", str(model_dir), "--train_file", str(train_file), "--output_dir", str(out),
            "--per_device_train_batch_size", "4", "--report_to", "none", "--logging_steps", "1",
            "--save_strategy", "no", "--dataloader_num_workers", "0", "--use_gs", "true", "--pooler_type", "avg",
            *extra]
    return train.main(argv)


def logged_taus(out: Path) -> dict[int, float]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {h["step"]: h["tau"] for h in history if "tau" in h}


def test_trainer_counts_examples_per_forward_under_accumulation_and_across_a_resume(tiny_bert_dir, unsup_file,
                                                                                   tmp_path):
    rate = 0.02
    common = ["--max_steps", "4", "--gradient_accumulation_steps", "2", "--tau_schedule_unit", "example",
              "--tau_decay_rate", str(rate), "--min_tau", "0.3", "--save_strategy", "steps", "--save_steps", "2"]
    run_train(tiny_bert_dir, unsup_file, tmp_path / "full", *common)
    schedule = TauSchedule(1.0, 0.3, rate)
    # optimizer step s runs two forwards of 4 examples, after 8 (s - 1) and 8 (s - 1) + 4 examples: the log of
    # step s is the mean temperature of its two forwards
    want = {s: (schedule(8 * (s - 1)) + schedule(8 * (s - 1) + 4)) / 2 for s in range(1, 5)}
    full = logged_taus(tmp_path / "full")
    assert full == pytest.approx(want)
    shutil.copytree(tmp_path / "full" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    run_train(tiny_bert_dir, unsup_file, tmp_path / "resumed", *common,
              "--resume_from_checkpoint", str(tmp_path / "resumed" / "checkpoint-2"))
    resumed = {s: tau for s, tau in logged_taus(tmp_path / "resumed").items() if s > 2}
    assert resumed == pytest.approx({3: want[3], 4: want[4]})  # the original restarted at tau = 1 here


def test_padding_to_max_length(tiny_bert_dir, unsup_file, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    features = [{k: [v] for k, v in tok(s).items()} for s in SENTENCES]
    assert SimCSECollator(tok)(features)["input_ids"].shape[-1] < 32
    batch = SimCSECollator(tok, pad_to_length=32)(features)
    assert batch["input_ids"].shape == (len(SENTENCES), 1, 32)
    run_train(tiny_bert_dir, unsup_file, tmp_path / "o", "--max_steps", "1", "--pad_to_max_length", "true",
              "--max_seq_length", "24")


def test_optimizer_groups_follow_the_originals_decay_rule_and_learning_rates(tiny_bert_dir, unsup_file, tmp_path):
    from simcse_gs.training.arguments import SimCSETrainingArguments
    from simcse_gs.training.data import load_train_dataset
    from simcse_gs.training.trainer import SimCSETrainer

    model = build(tiny_bert_dir, use_gs=True, pooler_type="avg", head_type="dropout_mlp")
    args = SimCSETrainingArguments(output_dir=str(tmp_path / "x"), learning_rate=1e-5, proxy_learning_rate=1e-3,
                                   head_learning_rate=2e-3, weight_decay=0.1, report_to="none")
    trainer = SimCSETrainer(model=model, args=args, train_dataset=load_train_dataset(unsup_file, model.tokenizer),
                            data_collator=SimCSECollator(model.tokenizer))
    groups = trainer.create_optimizer().param_groups
    # the original (trainers/CLTrainer.py): decay every parameter except LayerNorm weights and all biases
    layer_norm = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in groups:
        for p in group["params"]:
            exempt = id(p) in layer_norm or "bias" in names[id(p)]
            assert group["weight_decay"] == (0.0 if exempt else 0.1), names[id(p)]
            part = names[id(p)].split(".")[0]
            assert group["lr"] == {"proxy": 1e-3, "mlp": 2e-3}.get(part, 1e-5), names[id(p)]
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("flags, message", [
    (["--head_type", "simple"], "--head_type must be one of"),
    (["--head_type", "mlp", "--head_dropout", "0.1"], "--head_dropout is the dropout of --head_type dropout_mlp"),
    (["--head_type", "dropout_mlp", "--head_dropout", "1.5"], r"--head_dropout must be in \[0, 1\)"),
    (["--proxy_head", "mlp"], "--proxy_head must be one of linear, two_layer"),
    (["--tau_schedule_unit", "sentence"], "--tau_schedule_unit must be one of optimizer_step, example"),
    (["--head_learning_rate=-1e-3"], "--head_learning_rate must be >= 0"),
])
def test_bad_recipe_flags_are_refused(flags, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        train.parse_args(["--output_dir", str(tmp_path / "o"), *flags])


def test_export_of_the_originals_head_on_a_mean(tiny_bert_dir, tmp_path):
    """The dropout-MLP head on ``avg`` is part of the embedding: the export carries it as a Dense module, never as
    BERT's first-token pooler, and a Hugging Face-only export (which cannot hold it) is refused."""
    from simcse_gs.sharing.export import export_model
    from tests.conftest import st_by_hand

    model = build(tiny_bert_dir, use_gs=False, pooler_type="avg", head_type="dropout_mlp")
    result = export_model(model, tmp_path / "e")
    assert result.dense and result.st_pooling == "mean"
    torch.testing.assert_close(st_by_hand(tmp_path / "e", SENTENCES), model.encode(SENTENCES), atol=1e-5, rtol=0)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "e" / "model.safetensors"), framework="pt") as f:
        assert not any("pooler" in key for key in f.keys())  # no pooler_output that would look like the embedding
    readme = (tmp_path / "e" / "README.md").read_text()
    assert "2_Dense/model.safetensors" in readme and "evaluate the training checkpoint" in readme
    with pytest.raises(ValueError, match="cannot express.*--format st"):
        export_model(model, tmp_path / "h", fmt="hf")
    # a head on the first token still becomes the HF pooler, read by evaluation.py --pooler cls
    first = build(tiny_bert_dir, use_gs=False, pooler_type="cls_before_pooler", head_type="mlp")
    export_model(first, tmp_path / "c")
    assert "--pooler cls\n" in (tmp_path / "c" / "README.md").read_text()
