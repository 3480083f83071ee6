"""The keep policies: budgets, relaxed top-k, hard-concrete gates, the keep-rate penalty, REINFORCE, the IDF and
random controls (tiny random models and toy problems)."""

from __future__ import annotations

import json

import pytest
import torch

import train
from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.budget import budget_keep, budget_size, topk_mask
from simcse_gs.model.gumbel import DROP, KEEP
from simcse_gs.model.policy_hard_concrete import hard_concrete_nonzero_prob, hard_concrete_sample
from simcse_gs.model.policy_reinforce import bernoulli_keep, keep_log_prob, reinforce_surrogate, update_baseline
from simcse_gs.model.policy_topk import gumbel_topk_keep, relaxed_topk
from simcse_gs.training.arguments import ModelArguments
from tests.conftest import LONG, SENTENCES, build, randomise_proxy_head, tokenized


def decided_of(n_tokens: list[int], length: int) -> torch.Tensor:
    return torch.arange(length)[None, :] < torch.tensor(n_tokens)[:, None]


# ---------------------------------------------------------------------------------------------- budgets


def test_budget_keeps_ceil_r_n_of_the_best_decided_tokens():
    decided = decided_of([10, 3, 1, 0], 10)
    assert budget_size(decided, 0.7).tolist() == [7, 3, 1, 0]  # ceil(7.0) = 7, ceil(2.1) = 3, at least 1
    assert budget_size(decided, 0.6).tolist() == [6, 2, 1, 0]
    scores = torch.arange(10.0).flip(0).expand(4, 10).clone()  # the earlier the token, the better
    keep = budget_keep(scores, decided, 0.7)
    assert keep.sum(1).tolist() == [7, 3, 1, 0]
    assert keep[0].tolist() == [1.0] * 7 + [0.0] * 3
    assert torch.all(keep[~decided] == 0)
    ties = topk_mask(torch.zeros(1, 5), torch.ones(1, 5, dtype=torch.bool), torch.tensor([2]))
    assert ties.tolist() == [[True, True, False, False, False]]  # ties: the earlier token


def test_relaxed_topk_is_a_soft_k_subset_that_hardens_as_tau_falls():
    torch.manual_seed(0)
    scores = torch.randn(3, 8, requires_grad=True)
    decided = decided_of([8, 5, 2], 8)
    k = budget_size(decided, 0.5)
    soft = relaxed_topk(scores, decided, k, tau=1.0)
    # k softmaxes of mass 1 each; clipping an entry at 1 (a token taken "more than once") can only lower the sum
    assert torch.all(soft.sum(1) <= k + 1e-4) and torch.all(soft.sum(1) > k - 0.5)
    assert torch.all(soft[~decided] == 0) and torch.all((soft >= 0) & (soft <= 1))
    cold = relaxed_topk(scores, decided, k, tau=0.01)
    torch.testing.assert_close(cold, topk_mask(scores, decided, k).float(), atol=1e-2, rtol=0)
    soft[:, 0].sum().backward()
    assert scores.grad.abs().sum() > 0


def test_gumbel_topk_keep_is_an_exact_subset_forward_with_relaxed_gradients():
    torch.manual_seed(0)
    scores = torch.randn(64, 12, requires_grad=True)
    decided = decided_of([12] * 32 + [7] * 32, 12)
    keep = gumbel_topk_keep(scores, decided, 0.75, tau=0.5)
    assert set(keep.detach().unique().tolist()) <= {0.0, 1.0}
    assert keep.detach().sum(1).tolist() == [9.0] * 32 + [6.0] * 32
    (keep * torch.arange(12.0)).sum().backward()
    assert scores.grad.abs().sum() > 0
    # a sample: high scores are kept more often than low ones, but not always
    bias = torch.zeros(2000, 6)
    bias[:, 0] = 2.0
    freq = gumbel_topk_keep(bias, torch.ones(2000, 6, dtype=torch.bool), 0.5, tau=0.5).mean(0)
    assert 0.75 < freq[0] < 1.0 and torch.all(freq[1:] < freq[0])


def test_hard_concrete_gates_are_exactly_0_or_1_often_and_nonzero_with_the_closed_form_probability():
    torch.manual_seed(0)
    for log_alpha in (-2.0, 0.0, 1.5):
        la = torch.full((200_000,), log_alpha)
        z = hard_concrete_sample(la)
        assert torch.all((z >= 0) & (z <= 1))
        assert (z == 0).float().mean() > 0.01 and (z == 1).float().mean() > 0.01
        # 200k draws: the std of the frequency is below 0.0012; 0.005 is > 4 of them
        assert abs((z > 0).float().mean() - hard_concrete_nonzero_prob(la[:1])) < 0.005
    la = torch.zeros(4, requires_grad=True)
    hard_concrete_sample(la).sum().backward()
    assert la.grad is not None and la.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- attention


# ---------------------------------------------------------------------------------------------- pruning


# ---------------------------------------------------------------------------------------------- the model


def test_topk_estimator_keeps_exactly_its_budget_in_training_and_at_inference(tiny_bert_dir):
    model = build(tiny_bert_dir, use_gs=True, pooler_type="avg", gs_estimator="topk", gs_target_keep_rate=0.6,
                  gs_attn_renorm=True).train()
    enc = tokenized(model, sentences=LONG)
    ids, mask = enc["input_ids"][:, 0], enc["attention_mask"][:, 0]
    k1, k2 = model.keep_weights(ids, mask, 2, tau=0.5).weights
    decided = mask.bool() & ~model.special_tokens_mask(ids)
    want = budget_size(decided, 0.6).float()
    for keep in (k1, k2):
        torch.testing.assert_close((keep.detach() * decided).sum(1), want)
    assert not torch.equal(k1, k2)  # each view its own sample
    out = model(**tokenized(model, sentences=LONG), tau=0.5)
    out.loss.backward()
    assert model.proxy.head.weight.grad.abs().sum() > 0
    model.eval()
    (hard,) = model.keep_weights(ids, mask, 1, tau=None).weights
    torch.testing.assert_close((hard * decided).sum(1), want)


def test_hard_concrete_budget_is_the_expected_l0(tiny_bert_dir):
    model = build(tiny_bert_dir, use_gs=True, pooler_type="avg", gs_estimator="hard_concrete",
                  gs_target_keep_rate=0.7, gs_keep_rate_weight=2.0, gs_attn_renorm=True).train()
    enc = tokenized(model)
    ids, mask = enc["input_ids"][:, 0], enc["attention_mask"][:, 0]
    decision = model.keep_weights(ids, mask, 1, tau=None)
    (keep,) = decision.weights
    decided = mask.bool() & ~model.special_tokens_mask(ids)
    p0 = hard_concrete_nonzero_prob(torch.zeros(()))  # zero-initialised head: log alpha = 0 everywhere
    torch.testing.assert_close(decision.statistics["keep_prob"], p0, atol=1e-6, rtol=0)
    torch.testing.assert_close(model.keep_policy.keep_rate_loss([decision], model.training), 2.0 * (p0 - 0.7) ** 2,
                               atol=1e-6, rtol=0)
    assert ((keep[decided] == 0) | (keep[decided] == 1)).any()  # exact gates occur
    out = model(**tokenized(model), tau=None)
    out.loss.backward()
    assert model.proxy.head.bias.grad.abs().sum() > 0


def test_idf_control_drops_the_most_frequent_tokens_and_travels_with_the_checkpoint(tiny_bert_dir, tmp_path):
    corpus = tmp_path / "train.txt"
    animals = ("cat", "dog", "bird", "fish")
    corpus.write_text("\n".join(f"the {animals[i % 4]} sat on the mat {i}" for i in range(40)) + "\n",
                      encoding="utf-8")
    out = tmp_path / "idf"
    train.main(["--model_name_or_path", tiny_bert_dir, "--train_file", str(corpus), "--output_dir", str(out),
                "--use_gs", "false", "--pooler_type", "avg", "--token_drop_rate", "0.5", "--token_drop_heuristic",
                "idf", "--gs_attn_renorm", "true", "--max_steps", "1", "--per_device_train_batch_size", "8",
                "--report_to", "none", "--save_strategy", "no"])
    assert json.loads((out / "config.json").read_text())["token_drop_heuristic"] == "idf"
    model = SimCSEGSModel.from_pretrained(out).train()
    the, cat, zebra = model.tokenizer.convert_tokens_to_ids(["the", "cat", "zebra"])
    assert model.idf[the] < model.idf[cat] < model.idf[zebra]  # in every sentence < in a quarter < never seen
    enc = model.tokenizer(["the cat sat on the mat 7"], return_tensors="pt")
    k1, k2 = model.keep_weights(enc["input_ids"], enc["attention_mask"], 2, tau=None).weights
    assert torch.equal(k1, k2)  # deterministic: the same drop in both views
    dropped = {model.tokenizer.convert_ids_to_tokens(int(t)) for t in enc["input_ids"][0][k1[0] == 0]}
    in_every_sentence = set(model.tokenizer.tokenize("the sat on the mat"))  # df = N: the lowest IDF
    assert dropped and dropped <= in_every_sentence
    masked = model.encode(SENTENCES, keep_budget=0.5)
    torch.testing.assert_close(model.encode(SENTENCES, keep_budget=0.5, prune=True), masked, atol=1e-5, rtol=0)


def test_random_control_at_a_budget_is_reproducible(tiny_bert_dir):
    model = build(tiny_bert_dir, use_gs=False, pooler_type="avg", token_drop_rate=0.3, gs_attn_renorm=True)
    a = model.encode(LONG, keep_budget=0.6, prune=True)
    torch.testing.assert_close(model.encode(LONG, keep_budget=0.6, prune=True), a)
    alone = torch.cat([model.encode([s], keep_budget=0.6, prune=True) for s in LONG])  # other batch, no padding
    torch.testing.assert_close(alone, a, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.encode(LONG, keep_budget=0.6), a, atol=1e-5, rtol=0)
    assert not torch.allclose(a, model.encode(LONG), atol=1e-3)  # no budget: the control keeps every token


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


def test_random_drop_control_keeps_everything_at_inference(tiny_bert_dir):
    plain, control = build(tiny_bert_dir, use_gs=False), build(tiny_bert_dir, use_gs=False, token_drop_rate=0.5)
    torch.testing.assert_close(plain.encode(SENTENCES), control.encode(SENTENCES))
    with pytest.raises(ValueError, match="use_gs false"):
        ModelArguments(use_gs=True, token_drop_rate=0.2)
