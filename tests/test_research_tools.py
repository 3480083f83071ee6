"""Research tools: keep-rate penalty, gradient estimators, random-drop control, keep maps, tensorboard keep
histogram, export to Hugging Face / sentence-transformers. Tiny random models only."""

from __future__ import annotations

import json
import runpy
import struct
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from simcse_gs.evaluation.hf_encoder import HFEncoder
from simcse_gs.model import SimCSEGSConfig, SimCSEGSModel
from simcse_gs.model.gumbel import DROP, KEEP
from simcse_gs.model.keep import KeepStatsAccumulator
from simcse_gs.model.policy_reinforce import bernoulli_keep, keep_log_prob, reinforce_surrogate, update_baseline
from simcse_gs.training.arguments import ModelArguments
from simcse_gs.training.trainer import add_keep_histogram
from tests.conftest import REPO, SENTENCES, bench_extra, build, tokenized


def randomise_proxy_head(model, std=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.proxy.head.weight.copy_(torch.randn(model.proxy.head.weight.shape, generator=g) * std)


# ---------------------------------------------------------------------------------------------- keep-rate penalty


@pytest.mark.parametrize("keep_bias, target", [(2.0, 0.5), (-1.0, 0.9)])
def test_keep_rate_penalty_is_the_formula_and_its_gradient_pushes_mean_p_to_the_target(
    tiny_bert_dir, keep_bias, target
):
    lam = 0.7
    model = build(tiny_bert_dir, use_gs=True, gs_target_keep_rate=target, gs_keep_rate_weight=lam).eval()
    with torch.no_grad():
        model.proxy.head.bias[KEEP] = keep_bias
    batch = tokenized(model)
    ids, mask = batch["input_ids"][:, 0], batch["attention_mask"][:, 0]

    def mean_p():
        _, prob, _, decided = model.score_tokens(ids, mask)
        return (prob * decided).sum() / decided.sum()

    out = model(**batch)
    hand = lam * (mean_p() - target) ** 2
    torch.testing.assert_close(out.keep_rate_loss, hand)
    torch.testing.assert_close(out.loss, out.contrastive_loss + out.keep_rate_loss)
    before = float(mean_p().detach())
    model.zero_grad()
    out.keep_rate_loss.backward()
    grad = model.proxy.head.bias.grad
    assert (grad[KEEP] > 0) == (before > target) and grad[KEEP] != 0  # dL/d(keep logit bias) has sign(mean_p - r)
    assert torch.sign(grad[DROP]) == -torch.sign(grad[KEEP])
    with torch.no_grad():  # one SGD step on the bias alone moves mean_p towards r
        model.proxy.head.bias -= 0.5 * grad
    after = float(mean_p().detach())
    assert abs(after - target) < abs(before - target)


# ---------------------------------------------------------------------------------------------- estimators


def test_reinforce_estimator_is_unbiased_on_a_toy_problem():
    """f(b) = sum_k w_k b_k, b_k ~ Bernoulli(sigmoid(theta_k)): d E[f] / d theta_k = w_k p_k (1 - p_k).

    Each of N = 40,000 samples gives one REINFORCE gradient (through our log-prob and surrogate functions, with a
    constant baseline c = 1.3 that must not bias it). Per coordinate, the sample mean must lie within 5 standard
    errors (the per-sample standard deviation / sqrt(N)) of the analytic gradient: a false alarm has probability
    < 3e-6 over the 5 coordinates (and the seed is fixed).
    """
    torch.manual_seed(0)
    theta = torch.tensor([-2.0, -0.5, 0.0, 0.8, 2.5])
    w = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0])
    n = 40_000
    per_sample = theta.repeat(n, 1).requires_grad_()  # one parameter copy per sample -> per-sample gradients
    logits = torch.stack([per_sample, torch.zeros_like(per_sample)], dim=-1)  # (keep, drop)
    b = bernoulli_keep(logits)
    assert set(b.unique().tolist()) <= {0.0, 1.0} and not b.requires_grad
    reward = (w * b).sum(-1)  # f(b) per sample
    surrogate = reinforce_surrogate(reward, keep_log_prob(logits, b).sum(-1), baseline=1.3)
    assert surrogate.item() == 0.0  # zero-valued: adds gradient only
    (surrogate * n).backward()  # the surrogate is a mean over samples; undo it to get each sample's gradient
    grads = per_sample.grad
    p = torch.sigmoid(theta)
    analytic = w * p * (1 - p)
    stderr = grads.std(0) / n**0.5
    assert torch.all((grads.mean(0) - analytic).abs() < 5 * stderr), (grads.mean(0), analytic, stderr)
    assert torch.all(stderr < 0.02)  # the test has power: errors of a few hundredths would be caught


def test_keep_log_prob_and_baseline_update():
    logits = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = logits.softmax(-1)[:, KEEP]
    lp = keep_log_prob(logits, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(lp, torch.stack([p[0].log(), (1 - p[1]).log()]))
    baseline = torch.tensor(float("nan"))
    update_baseline(baseline, torch.tensor(2.0), 0.9)
    assert float(baseline) == 2.0  # the first value sets it
    update_baseline(baseline, torch.tensor(4.0), 0.9)
    assert float(baseline) == pytest.approx(0.9 * 2.0 + 0.1 * 4.0)


@pytest.mark.parametrize("estimator", ["soft", "st", "reinforce"])
def test_training_keep_weights_per_estimator(tiny_bert_dir, estimator):
    model = build(tiny_bert_dir, use_gs=True, gs_estimator=estimator).train()
    randomise_proxy_head(model, std=0.1)  # moderate logits: soft samples do not round to 0 or 1 in float32
    batch = tokenized(model)
    ids, mask = batch["input_ids"][:, 0], batch["attention_mask"][:, 0]
    decision = model.keep_weights(ids, mask, 2, tau=0.7)
    k1, k2 = decision.weights
    special = model.special_tokens_mask(ids)
    decided = mask.bool() & ~special
    for keep in (k1, k2):
        assert torch.all(keep[special & mask.bool()] == 1) and torch.all(keep[~mask.bool()] == 0)
        values = keep[decided]
        if estimator == "soft":
            assert torch.all((values > 0) & (values < 1))
        else:  # st and reinforce: the forward value is exactly 0 or 1
            assert set(values.unique().tolist()) == {0.0, 1.0}
    assert k1.requires_grad == (estimator != "reinforce")  # no gradient through the REINFORCE sample
    assert (decision.keep_log_prob is not None) == (estimator == "reinforce")
    if estimator == "reinforce":
        assert decision.keep_log_prob.shape == (2, len(SENTENCES))


@pytest.mark.parametrize("n_sent, reward", [(1, "batch"), (3, "sentence")])  # (1, sentence): the test below
def test_reinforce_step_trains_the_proxy_without_changing_the_loss(tiny_bert_dir, reward, n_sent):
    model = build(tiny_bert_dir, use_gs=True, gs_estimator="reinforce", gs_reinforce_reward=reward,
                  pooler_type="avg").train()
    assert torch.isnan(model.reinforce_baseline)
    out = model(**tokenized(model, n_sent))  # no tau needed
    torch.testing.assert_close(model.reinforce_baseline, out.contrastive_loss)  # first step: set to the loss
    out2 = model(**tokenized(model, n_sent))  # (batch credit: the first step's advantage is exactly 0)
    torch.testing.assert_close(model.reinforce_baseline, 0.9 * out.contrastive_loss + 0.1 * out2.contrastive_loss)
    torch.testing.assert_close(out2.loss, out2.contrastive_loss)  # the surrogate adds gradient, not value
    out2.loss.backward()
    assert model.proxy.head.weight.grad.abs().sum() > 0
    assert model.backbone.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_reinforce_sentence_rewards_are_the_rows_of_the_loss(tiny_bert_dir, monkeypatch):
    import simcse_gs.model.policy_reinforce as policy_reinforce

    seen = {}

    def spy(reward, score, baseline):
        seen.update(reward=reward, score=score)
        return reinforce_surrogate(reward, score, baseline)

    monkeypatch.setattr(policy_reinforce, "reinforce_surrogate", spy)
    model = build(tiny_bert_dir, use_gs=True, gs_estimator="reinforce").train()
    out = model(**tokenized(model))
    assert seen["reward"].shape == seen["score"].shape == (len(SENTENCES),)
    torch.testing.assert_close(seen["reward"].mean(), out.contrastive_loss)
    assert torch.all(seen["score"] <= 0)


def test_reinforce_baseline_is_saved_and_reloaded(tiny_bert_dir, tmp_path):
    model = build(tiny_bert_dir, use_gs=True, gs_estimator="reinforce")
    model.reinforce_baseline.fill_(1.25)
    model.save_pretrained(tmp_path / "ckpt")
    reloaded = SimCSEGSModel.from_pretrained(tmp_path / "ckpt")
    assert reloaded.config.gs_estimator == "reinforce" and float(reloaded.reinforce_baseline) == 1.25


def test_gs_hard_is_an_alias_of_st():
    assert ModelArguments(gs_hard=True).gs_estimator == "st"
    assert ModelArguments(gs_estimator="st").gs_hard  # kept consistent in the saved settings
    assert SimCSEGSConfig(gs_hard=True).gs_estimator == "st"
    assert SimCSEGSConfig.from_dict(SimCSEGSConfig(gs_hard=True).to_dict()).gs_estimator == "st"
    with pytest.raises(ValueError, match="contradicts"):
        ModelArguments(gs_hard=True, gs_estimator="reinforce")
    with pytest.raises(ValueError, match="gs_estimator must be one of"):
        ModelArguments(gs_estimator="gumbel")
    with pytest.raises(ValueError, match="gs_reinforce_reward"):
        ModelArguments(gs_estimator="reinforce", gs_reinforce_reward="token")


def test_train_py_runs_reinforce_and_checkpoints_the_baseline(tiny_bert_dir, unsup_file, tmp_path):
    import train

    train.main(["--model_name_or_path", tiny_bert_dir, "--train_file", unsup_file, "--output_dir",
                str(tmp_path / "o"), "--per_device_train_batch_size", "4", "--report_to", "none", "--max_steps",
                "2", "--save_strategy", "no", "--dataloader_num_workers", "0", "--gs_estimator", "reinforce",
                "--logging_steps", "1"])
    model = SimCSEGSModel.from_pretrained(tmp_path / "o")
    assert model.config.gs_estimator == "reinforce" and torch.isfinite(model.reinforce_baseline)
    logs = json.loads((tmp_path / "o" / "trainer_state.json").read_text())["log_history"]
    assert any("keep_prob" in h for h in logs) and not any("tau" in h for h in logs)  # tau unused by REINFORCE


# ---------------------------------------------------------------------------------------------- random drop


def test_random_drop_control_keeps_everything_at_inference(tiny_bert_dir):
    plain, control = build(tiny_bert_dir, use_gs=False), build(tiny_bert_dir, use_gs=False, token_drop_rate=0.5)
    torch.testing.assert_close(plain.encode(SENTENCES), control.encode(SENTENCES))
    with pytest.raises(ValueError, match="use_gs false"):
        ModelArguments(use_gs=True, token_drop_rate=0.2)


# ---------------------------------------------------------------------------------------------- keep maps


@pytest.fixture()
def gs_checkpoint(tiny_bert_dir, tmp_path):
    model = build(tiny_bert_dir, use_gs=True, pooler_type="avg")
    randomise_proxy_head(model, std=2.0)
    model.save_pretrained(tmp_path / "gs")
    return str(tmp_path / "gs")


def test_keep_maps_follow_the_inference_rule_and_render(gs_checkpoint, tmp_path):
    from simcse_gs.evaluation.keep_map import compute_keep_maps, load_gs_model, write_keep_maps

    model = load_gs_model(gs_checkpoint)
    sentences = [*SENTENCES, 'tags <script>alert("x")</script> & co']
    maps = compute_keep_maps(model, sentences, batch_size=3)
    assert [m.sentence for m in maps] == sentences
    enc = model.tokenizer(sentences[0], return_tensors="pt")
    _, prob, keep, decided = model.score_tokens(enc["input_ids"], enc["attention_mask"])
    assert len(maps[0].tokens) == enc["input_ids"].shape[1]
    torch.testing.assert_close(torch.tensor(maps[0].keep_prob), prob[0], atol=1e-6, rtol=0)
    assert maps[0].kept == keep[0].bool().tolist() and maps[0].decided == decided[0].tolist()
    assert maps[0].tokens[0] == "[CLS]" and not maps[0].decided[0] and maps[0].kept[0]
    kept_decided = [k for m in maps for k, d in zip(m.kept, m.decided) if d]
    assert 0 < sum(kept_decided) < len(kept_decided)  # the random head keeps some tokens and drops others

    paths = write_keep_maps(maps, tmp_path / "km")
    png = Path(paths["png"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 100 and height > 100
    page = Path(paths["html"]).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page and "&amp; co" in page
    assert page.count('class="s"') == len(sentences)
    assert json.loads(Path(paths["json"]).read_text())[0]["tokens"] == maps[0].tokens


def test_keep_map_script_and_non_gs_checkpoints(gs_checkpoint, tiny_bert_dir, tmp_path, capsys):
    sentence_file = tmp_path / "s.txt"
    sentence_file.write_text("\n".join(SENTENCES[:3]) + "\n")
    script = runpy.run_path(str(REPO / "scripts" / "keep_map.py"), run_name="keep_map_script")
    script["main"](["--model_name_or_path", gs_checkpoint, "--sentences", str(sentence_file), "one more sentence",
                    "--output_dir", str(tmp_path / "out")])
    assert "4 sentences" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "out" / "keep_map.json").read_text())) == 4
    assert (tmp_path / "out" / "keep_map.png").stat().st_size > 0

    from simcse_gs.evaluation.keep_map import compute_keep_maps, load_gs_model

    plain = build(tiny_bert_dir, use_gs=False)
    plain.save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="not a Gumbel-Softmax checkpoint"):
        load_gs_model(tmp_path / "plain")
    with pytest.raises(ValueError, match="not a Gumbel-Softmax checkpoint"):
        compute_keep_maps(plain, SENTENCES)
    with pytest.raises(ValueError, match="not a SimCSE-GS checkpoint"):
        load_gs_model(tiny_bert_dir)


# ---------------------------------------------------------------------------------------------- keep histogram


class _Writer:
    def __init__(self):
        self.calls = []

    def add_histogram(self, tag, values, step):
        self.calls.append((tag, values, step))


class _TBCallback:
    def __init__(self):
        self.tb_writer = _Writer()


def test_keep_stats_sample_is_bounded_and_the_histogram_is_a_no_op_without_tensorboard():
    acc = KeepStatsAccumulator(sample_size=100)
    torch.manual_seed(0)
    for _ in range(20):
        acc.update(torch.rand(4, 30), torch.ones(4, 30), torch.ones(4, 30, dtype=torch.bool))
    assert len(acc.prob_sample) == 100 and acc.tokens == 2400
    assert 0.3 < float(acc.prob_sample.mean()) < 0.7  # a uniform sample of U(0, 1) values
    assert len(KeepStatsAccumulator().prob_sample) == 0  # no sample unless asked
    assert not add_keep_histogram([object()], acc, step=3)  # no tb_writer: nothing happens
    callback = _TBCallback()
    assert add_keep_histogram([object(), callback], acc, step=3)
    tag, values, step = callback.tb_writer.calls[0]
    assert tag == "eval/keep_prob" and step == 3 and len(values) == 100


def test_trainer_evaluate_logs_the_keep_probability_histogram(tiny_bert_dir, tmp_path):
    from simcse_gs.evaluation.sts import STSEvaluator
    from simcse_gs.training.arguments import SimCSETrainingArguments
    from simcse_gs.training.trainer import SimCSETrainer

    class FakeEvaluator(STSEvaluator):
        def __init__(self):  # no SentEval data needed: encode a few sentences the way STSEvaluator does
            pass

        def __call__(self, model, keep_stats=None):
            stats = keep_stats if keep_stats is not None else KeepStatsAccumulator()
            model.encode(SENTENCES, batch_size=4, keep_stats=stats)
            return {"stsb_spearman": 0.0, **stats.compute()}

    model = build(tiny_bert_dir, use_gs=True)
    randomise_proxy_head(model)
    args = SimCSETrainingArguments(output_dir=str(tmp_path / "t"), report_to="none")
    trainer = SimCSETrainer(model=model, args=args, sts_evaluator=FakeEvaluator())
    metrics = trainer.evaluate()  # no tensorboard callback: no histogram, no error
    assert "eval_keep_prob" in metrics
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    writer = SummaryWriter(str(tmp_path / "tb"))
    trainer.add_callback(TensorBoardCallback(tb_writer=writer))
    trainer.evaluate()
    writer.flush()
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"histograms": 0})
    events.Reload()
    (histogram,) = events.Histograms("eval/keep_prob")
    n_decided = sum(len(model.tokenizer(s)["input_ids"]) - 2 for s in SENTENCES)
    assert histogram.step == 0 and histogram.histogram_value.num == n_decided
    assert histogram.histogram_value.sum / n_decided == pytest.approx(metrics["eval_keep_prob"], abs=1e-5)


# ---------------------------------------------------------------------------------------------- export


def st_by_hand(path: Path, sentences: list[str]) -> torch.Tensor:
    """The sentence-transformers pipeline rebuilt from the folder's files, without sentence-transformers."""
    from safetensors.torch import load_file

    modules = json.loads((path / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules][:2] == ["Transformer", "Pooling"]
    max_len = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
    tokenizer, encoder = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    enc = tokenizer(sentences, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    with torch.no_grad():
        tokens = encoder(**enc).last_hidden_state
    pooling = json.loads((path / modules[1]["path"] / "config.json").read_text())
    assert pooling["word_embedding_dimension"] == tokens.shape[-1]
    mask = enc["attention_mask"].unsqueeze(-1).float()
    z = tokens[:, 0] if pooling["pooling_mode"] == "cls" else (tokens * mask).sum(1) / mask.sum(1)
    for module in modules[2:]:
        assert module["type"].endswith("Dense")
        config = json.loads((path / module["path"] / "config.json").read_text())
        assert config["activation_function"] == "torch.nn.modules.activation.Tanh"
        weights = load_file(str(path / module["path"] / "model.safetensors"))
        z = torch.tanh(F.linear(z, weights["linear.weight"], weights["linear.bias"]))
    return z


EXPORT_CASES = [
    dict(pooler_type="cls"),  # MLP at inference -> Dense(tanh), and the HF pooler
    dict(pooler_type="cls", mlp_only_train=True),
    dict(pooler_type="cls_before_pooler"),
    dict(pooler_type="avg"),
]


@pytest.mark.parametrize("fixture", ["tiny_bert_dir", "tiny_roberta_dir"])
@pytest.mark.parametrize("settings", EXPORT_CASES, ids=lambda s: "-".join(map(str, s.values())))
def test_export_round_trip_gives_the_same_embeddings(request, tmp_path, fixture, settings):
    from simcse_gs.sharing.export import export_model

    model = build(request.getfixturevalue(fixture), use_gs=False, **settings)
    result = export_model(model, tmp_path / "e")
    assert result.warnings == [] and "README.md" in result.files
    ours = model.encode(SENTENCES, batch_size=4)
    torch.testing.assert_close(st_by_hand(tmp_path / "e", SENTENCES), ours, atol=1e-5, rtol=0)
    # evaluation.py on the export, with the pooler its README names (SimCSE's convention: cls = pooler_output)
    eval_pooler = "cls_before_pooler" if settings.get("mlp_only_train") else settings["pooler_type"]
    plain = HFEncoder.from_pretrained(str(tmp_path / "e"), eval_pooler).encode(SENTENCES, batch_size=4)
    torch.testing.assert_close(plain, ours, atol=1e-5, rtol=0)
    if not getattr(model, "mlp", None):  # no pooler weights written: --pooler cls would read a random pooler
        with pytest.raises(ValueError, match="no pooler weights.*cls_before_pooler"):
            HFEncoder.from_pretrained(str(tmp_path / "e"), "cls")
    readme = (tmp_path / "e" / "README.md").read_text()
    assert f"evaluation.py --model_name_or_path PATH --pooler {eval_pooler}\n" in readme
    if settings == dict(pooler_type="cls"):  # the MLP became the HF pooler
        assert result.dense
        tok, hf = AutoTokenizer.from_pretrained(tmp_path / "e"), AutoModel.from_pretrained(tmp_path / "e")
        with torch.no_grad():
            pooled = hf(**tok(SENTENCES, padding=True, return_tensors="pt")).pooler_output
        torch.testing.assert_close(pooled, ours, atol=1e-5, rtol=0)


@pytest.mark.parametrize("settings", EXPORT_CASES, ids=lambda s: "-".join(map(str, s.values())))
def test_export_loads_in_sentence_transformers(tiny_bert_dir, tmp_path, settings):
    st = bench_extra("sentence_transformers")

    from simcse_gs.sharing.export import export_model

    model = build(tiny_bert_dir, use_gs=False, **settings)
    export_model(model, tmp_path / "e")
    theirs = st.SentenceTransformer(str(tmp_path / "e"), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    torch.testing.assert_close(theirs.cpu(), model.encode(SENTENCES), atol=1e-5, rtol=0)


def test_export_of_a_gs_checkpoint_with_drop_proxy_warns_and_keeps_every_token(gs_checkpoint, tmp_path):
    from simcse_gs.sharing.export import export_model

    with pytest.warns(UserWarning, match="drops the token-keep proxy"):
        result = export_model(gs_checkpoint, tmp_path / "e", drop_proxy=True)
    assert "Warning: the token-keep proxy is not exported" in (tmp_path / "e" / "README.md").read_text()
    model = SimCSEGSModel.from_pretrained(gs_checkpoint).eval()
    enc = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        keep_all = model.embed(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"), None)
    exported = st_by_hand(tmp_path / "e", SENTENCES)
    torch.testing.assert_close(exported, keep_all, atol=1e-5, rtol=0)
    assert not torch.allclose(exported, model.encode(SENTENCES), atol=1e-3)  # the proxy did drop tokens
    assert result.st_pooling == "mean"


def test_export_refusals_and_the_cli(tiny_bert_dir, tmp_path, capsys):
    from simcse_gs.sharing.export import export_model

    model = build(tiny_bert_dir, use_gs=False, pooler_type="avg_top2")
    with pytest.raises(ValueError, match="cannot express"):
        export_model(model, tmp_path / "a")
    result = export_model(model, tmp_path / "b", fmt="hf")
    assert "modules.json" not in result.files and "model.safetensors" in result.files
    assert "output_hidden_states=True" in (tmp_path / "b" / "README.md").read_text()
    with pytest.raises(FileExistsError):
        export_model(model, tmp_path / "b", fmt="hf")
    with pytest.raises(ValueError, match="not a SimCSE-GS checkpoint"):
        export_model(tiny_bert_dir, tmp_path / "c")

    build(tiny_bert_dir, use_gs=True).save_pretrained(tmp_path / "gs")
    cli = runpy.run_path(str(REPO / "export.py"), run_name="export_cli")
    capsys.readouterr()
    argv = ["--model_name_or_path", str(tmp_path / "gs"), "--output_dir", str(tmp_path / "d"), "--drop_proxy"]
    assert cli["main"](argv) == 0
    done = capsys.readouterr()
    assert "WARNING:" in done.err and "drops the token-keep proxy" in done.err
    assert "modules.json" in done.out and "1_Pooling/config.json" in done.out
    assert cli["main"](argv) == 2
