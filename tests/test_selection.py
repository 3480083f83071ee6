"""Token selection that selects: budgets, relaxed top-k, hard-concrete gates, the IDF and random controls, the
renormalised attention, and exact pruning at inference (simcse_gs/selection.py, attention.py, pruning.py)."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

import train
from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.attention import gs_eager_attention, gs_sdpa_attention
from simcse_gs.model.budget import budget_keep, budget_size, topk_mask
from simcse_gs.model.policy_hard_concrete import hard_concrete_nonzero_prob, hard_concrete_sample
from simcse_gs.model.policy_topk import gumbel_topk_keep, relaxed_topk
from simcse_gs.model.pruning import original_position_ids, prune_batch
from simcse_gs.training.idf import idf_table
from tests.conftest import SENTENCES, bench_extra, build, tokenized

LONG = SENTENCES + ["the quick brown fox jumps over the lazy dog near the river bank at dawn"]


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


# ---------------------------------------------------------------------------------------------- pruning


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
    torch.testing.assert_close(decision.keep_rate_loss, 2.0 * (p0 - 0.7) ** 2, atol=1e-6, rtol=0)
    assert ((keep[decided] == 0) | (keep[decided] == 1)).any()  # exact gates occur
    out = model(**tokenized(model), tau=None)
    out.loss.backward()
    assert model.proxy.head.bias.grad.abs().sum() > 0


def test_idf_table_ranks_frequent_tokens_low():
    table = idf_table([[1, 2, 3], [1, 2], [1, 4], [1]], vocab_size=6)
    assert table[1] < table[2] < table[3] == table[4] < table[5]  # 5 never seen: the rarest
    assert table[1] == pytest.approx(math.log(5 / 5) + 1) and table[3] == pytest.approx(math.log(5 / 2) + 1)


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


@pytest.mark.parametrize("flags, message", [
    (["--keep_budget", "1.5"], r"--keep_budget must be in \(0, 1\]"),
    (["--token_drop_heuristic", "tfidf", "--use_gs", "false"],
     "--token_drop_heuristic must be one of random, idf, got 'tfidf'"),
    (["--token_drop_heuristic", "idf"], "use it with --use_gs false"),
    (["--gs_estimator", "topk", "--gs_target_keep_rate", "0"], "topk keeps ceil"),
    (["--gs_estimator", "lottery"], "--gs_estimator must be one of soft, st, reinforce, topk, hard_concrete"),
])
def test_bad_selection_flags_are_refused(flags, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        train.parse_args(["--output_dir", str(tmp_path / "o"), *flags])


def test_evaluation_py_keep_budget_and_prune(tiny_bert_dir, sts_data, tmp_path, capsys):
    from simcse_gs.evaluation.evaluate import evaluate, main

    common = ["--senteval_data", sts_data, "--mode", "test", "--protocol", "simcse", "--no_progress", "--device",
              "cpu"]
    renorm = build(tiny_bert_dir, use_gs=True, pooler_type="avg", gs_attn_renorm=True)
    renorm.save_pretrained(tmp_path / "renorm")
    flags = ["--model_name_or_path", str(tmp_path / "renorm"), *common, "--keep_budget", "0.5"]
    masked = evaluate(flags)["models"][0]
    pruned = evaluate([*flags, "--prune"])["models"][0]
    assert pruned["simcse"] == masked["simcse"]  # same embeddings, so the same table
    assert 0.5 <= pruned["keep_stats"]["keep_rate"] < 0.75  # ceil(0.5 n) of n decided tokens
    build(tiny_bert_dir, use_gs=True, pooler_type="avg").save_pretrained(tmp_path / "original")
    for model, extra, message in [
        (tmp_path / "original", ["--prune"], "only under the renormalised attention"),
        (tiny_bert_dir, ["--keep_budget", "0.5"], "plain encoder"),
        (tmp_path / "renorm", ["--keep_budget", "2"], r"--keep_budget must be in \(0, 1\]"),
    ]:
        capsys.readouterr()
        assert main(["--model_name_or_path", str(model), *common, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("evaluation.py: error:") and re.search(message, err), err


def test_pruned_encode_benchmark_runs_and_checks_equality(tiny_bert_dir, tmp_path):
    import sys

    from tests.conftest import REPO

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench.pruned_encode import main

    result = main(["--quick", "--model-path", tiny_bert_dir, "--rates", "0.7", "--json", str(tmp_path / "b.json")])
    run = result["rates"][0.7]
    assert run["max_abs_diff"] < 1e-5 and 0.7 <= run["kept"] < 0.9
    assert set(run["sentences_per_s"]) == {"masked", "pruned", "backbone"}
    assert (tmp_path / "b.json").is_file() and "pruned/masked" in result["summary"][0]


def test_keep_maps_at_a_budget(tiny_bert_dir):
    from simcse_gs.evaluation.keep_map import compute_keep_maps

    model = build(tiny_bert_dir, use_gs=True, pooler_type="avg", gs_attn_renorm=True)
    with torch.no_grad():
        model.proxy.head.weight.normal_(0, 1.0)
    maps = compute_keep_maps(model, LONG, keep_budget=0.5)
    for m in maps:
        n = sum(m.decided)
        assert sum(k and d for k, d in zip(m.kept, m.decided)) == math.ceil(0.5 * n)
        kept_p = [p for p, k, d in zip(m.keep_prob, m.kept, m.decided) if d and k]
        dropped_p = [p for p, k, d in zip(m.keep_prob, m.kept, m.decided) if d and not k]
        assert not dropped_p or min(kept_p) >= max(dropped_p)  # the most probable tokens are the kept ones
    with pytest.raises(ValueError, match="keep_budget must be in"):
        compute_keep_maps(model, LONG, keep_budget=1.5)


def test_pareto_table_and_figure(tmp_path):
    import runpy

    from tests.conftest import REPO

    def write(group: str, seed: int, avg: float, kept: float | None) -> None:
        folder = tmp_path / group / f"seed{seed}"
        folder.mkdir(parents=True)
        record = {"simcse": {"avg": avg}, "keep_stats": {"keep_rate": kept} if kept is not None else None}
        (folder / "eval_test.json").write_text(json.dumps({"models": [record]}))

    for seed, base in ((1, 80.0), (2, 81.0)):
        write("simcse-r1.0", seed, base, None)
        write("topk-r0.7", seed, base - 1, 0.72)
        write("random-drop-r0.7", seed, base - 3, 0.71)
    main = runpy.run_path(str(REPO / "scripts" / "plot_pareto.py"))["main"]
    text = main([str(tmp_path), "--output", str(tmp_path / "fig.png")])
    assert "| 1 | 80.50 ± 0.71 (n=2) | 80.50 ± 0.71 (n=2) |" in text  # r = 1: plain SimCSE, for every method
    assert "| 0.7 | 79.50 ± 0.71 (n=2) | 77.50 ± 0.71 (n=2) |" in text
    assert "| 0.7 | 72.0 | 71.0 |" in text
    assert (tmp_path / "fig.png").stat().st_size > 1000



def test_pareto_reads_each_group_from_the_first_root_that_has_it(tmp_path):
    import runpy

    from tests.conftest import REPO

    def write(root: str, group: str, seed: int, avg: float) -> None:
        folder = tmp_path / root / group / f"seed{seed}"
        folder.mkdir(parents=True)
        record = {"simcse": {"avg": avg}, "keep_stats": {"keep_rate": 0.7}}
        (folder / "eval_test.json").write_text(json.dumps({"models": [record]}))

    write("matched", "topk-r0.7", 1, 79.0)   # trained at 0.7
    write("at08", "topk-r0.7", 1, 70.0)      # trained at 0.8, evaluated at 0.7: not counted again
    write("at08", "topk-r0.8", 1, 78.0)
    main = runpy.run_path(str(REPO / "scripts" / "plot_pareto.py"))["main"]
    text = main([str(tmp_path / "matched"), str(tmp_path / "at08")])
    assert "| 0.7 | 79.00 (n=1) |" in text and "| 0.8 | 78.00 (n=1) |" in text


@pytest.mark.parametrize("settings", [dict(use_gs=True, gs_estimator="topk", gs_target_keep_rate=0.5),
                                      dict(use_gs=False, token_drop_rate=0.3, token_drop_heuristic="random",
                                           keep_budget=0.5)])
def test_exports_of_selecting_models_select_in_sentence_transformers(tiny_bert_dir, tmp_path, settings):
    """A model that drops tokens at inference (a top-k proxy, or a control with a keep budget) is exported whole,
    and its sentence-transformers module drops the same tokens as encode."""
    SentenceTransformer = bench_extra("sentence_transformers").SentenceTransformer  # noqa: N806

    from simcse_gs.sharing.export import export_model

    model = build(tiny_bert_dir, pooler_type="avg", gs_attn_renorm=True, **settings)
    export_model(model, tmp_path / "e")
    st = SentenceTransformer(str(tmp_path / "e"), trust_remote_code=True, device="cpu")  # own code
    ours = model.encode(LONG)
    torch.testing.assert_close(st.encode(LONG, convert_to_tensor=True), ours, atol=1e-5, rtol=0)
    assert not torch.allclose(ours, model.encode(LONG, keep_budget=1.0, prune=True), atol=1e-3)
