"""Token pruning inside the encoder (layer_pruning.py): removing the dropped tokens after a prune point gives the
masked model's vectors for every scorer and schedule, on BERT and RoBERTa; merging keeps every token's weight; the
learned scorer trains; bad schedules fail at start; the mode saves, loads and exports like the others."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertModel, RobertaModel

from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.layer_pruning import PruneSchedule, encode_pruned, pruned_flops_ratio
from tests.conftest import LONG, SENTENCES, build, tiny_config

SCHEDULES = {"one-point": ([1], [0.5]), "progressive": ([1, 2, 3], [0.8, 0.6, 0.3])}
DROPPING = ("attention", "first", "idf", "random", "learned")


@pytest.fixture(scope="module", params=["bert", "roberta"])
def four_layer_dir(request, tmp_path_factory, tiny_bert_dir, tiny_roberta_dir) -> str:
    """The tiny backbones with 4 layers, so that a progressive schedule has room."""
    source = tiny_bert_dir if request.param == "bert" else tiny_roberta_dir
    tokenizer = AutoTokenizer.from_pretrained(source)
    out = tmp_path_factory.mktemp(f"four-layer-{request.param}")
    torch.manual_seed(0)
    cls = BertModel if request.param == "bert" else RobertaModel
    cls(tiny_config(request.param, len(tokenizer), num_hidden_layers=4)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def pruning_model(path: str, scorer: str, layers, rates, **settings) -> SimCSEGSModel:
    model = build(path, use_gs=False, pooler_type=settings.pop("pooler_type", "avg"), prune_layers=layers,
                  prune_keep_rates=rates, prune_scorer=scorer, **settings)
    if scorer == "learned":  # a trained-looking head (an untrained one adds nothing to its attention prior)
        torch.manual_seed(1)
        for head in model.layer_scorer.heads:
            head[2].weight.data.normal_(0, 1.0)
    if scorer == "idf":
        model.idf = torch.rand(model.backbone.config.vocab_size, generator=torch.Generator().manual_seed(2))
    return model.eval()


def batch(model, sentences=LONG):
    return model.tokenizer(sentences, padding=True, return_tensors="pt")


@pytest.mark.parametrize("schedule", SCHEDULES, ids=list(SCHEDULES))
@pytest.mark.parametrize("scorer", DROPPING)
def test_pruned_equals_masked_for_every_scorer_and_schedule(four_layer_dir, scorer, schedule):
    model = pruning_model(four_layer_dir, scorer, *SCHEDULES[schedule])
    enc = batch(model)
    with torch.no_grad():
        pruned, encoding = model.embed_pruned(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
        masked, _ = model.embed_pruned(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"),
                                       prune=False)
        full = model.embed(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
    torch.testing.assert_close(pruned, masked, atol=1e-5, rtol=0)
    assert not torch.allclose(pruned, full, atol=1e-3)  # something was dropped
    real = enc["attention_mask"].sum(1)
    assert (encoding.kept_tokens[-1] < real).all()  # every sentence lost tokens ...
    assert (encoding.kept_tokens[-1] >= 2).all()  # ... and kept its special tokens and at least one other


@pytest.mark.parametrize("scorer", DROPPING + ("merge",))
def test_keeping_every_token_is_the_unpruned_backbone(four_layer_dir, scorer):
    model = pruning_model(four_layer_dir, scorer, [1, 3], [1.0, 1.0])
    torch.testing.assert_close(model.encode(LONG, batch_size=3),
                               build(four_layer_dir, use_gs=False, pooler_type="avg").encode(LONG, batch_size=3),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=list(SCHEDULES))
def test_the_idf_prior_starts_as_idf_pruning_and_its_head_moves_it(four_layer_dir, schedule):
    """An untrained head adds nothing to its IDF prior (the idf scorer's vectors); a trained one changes the keep set,
    and removing the dropped tokens still gives the masked model's vectors."""
    idf = pruning_model(four_layer_dir, "idf", *SCHEDULES[schedule])
    untrained = build(four_layer_dir, use_gs=False, pooler_type="avg", prune_layers=SCHEDULES[schedule][0],
                      prune_keep_rates=SCHEDULES[schedule][1], prune_scorer="learned",
                      prune_scorer_prior="idf").eval()
    assert untrained.idf.shape == idf.idf.shape  # the model carries its table
    untrained.idf = idf.idf
    torch.testing.assert_close(untrained.encode(LONG, batch_size=3), idf.encode(LONG, batch_size=3), atol=1e-5, rtol=0)
    trained = pruning_model(four_layer_dir, "learned", *SCHEDULES[schedule], prune_scorer_prior="idf")
    trained.idf = idf.idf
    enc = batch(trained)
    with torch.no_grad():
        pruned, _ = trained.embed_pruned(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
        masked, _ = trained.embed_pruned(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"),
                                         prune=False)
    torch.testing.assert_close(pruned, masked, atol=1e-5, rtol=0)
    assert not torch.allclose(pruned, idf.encode(LONG, batch_size=len(LONG)), atol=1e-3)


def test_the_kept_counts_follow_the_schedule(four_layer_dir):
    model = pruning_model(four_layer_dir, "attention", [1, 2, 3], [0.8, 0.6, 0.3])
    enc = batch(model)
    with torch.no_grad():
        _, encoding = model.embed_pruned(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
    n_special = 2
    decided = enc["attention_mask"].sum(1) - n_special
    for kept, rate in zip(encoding.kept_tokens, [0.8, 0.6, 0.3]):
        want = torch.tensor([max(math.ceil(rate * int(d)), 1) for d in decided]) + n_special
        assert kept.tolist() == want.tolist()


def test_merging_keeps_the_weight_of_every_input_token(four_layer_dir):
    model = pruning_model(four_layer_dir, "merge", [1, 2], [0.5, 0.2])
    enc = batch(model)
    special = model.special_tokens_mask(enc["input_ids"])
    with torch.no_grad():
        encoding = encode_pruned(model.backbone, enc["input_ids"], enc["attention_mask"], special,
                                 model.prune_schedule, enc.get("token_type_ids"))
    state = encoding.state
    sizes = (state.sizes * state.real).sum(1)
    assert sizes.tolist() == enc["attention_mask"].sum(1).float().tolist()  # merged tokens carry their sizes
    assert (encoding.kept_tokens[1] < encoding.kept_tokens[0]).all()  # a second round merged further
    assert (state.sizes[state.real] >= 1).all()
    first = state.index[:, 0]
    assert (first == 0).all()  # [CLS] / <s> stays where it was: the cls pooler still finds it


def test_the_learned_scorer_trains_and_distillation_pulls_towards_the_full_model(tiny_bert_dir):
    model = build(tiny_bert_dir, use_gs=False, pooler_type="cls", prune_layers=[1], prune_keep_rates=[0.5],
                  prune_scorer="learned", distill_weight=1.0).train()
    enc = batch(model)
    inputs = {k: v[:, None] for k, v in enc.items()}  # [B, 1, L]: unsupervised, two views of each sentence
    with pytest.raises(ValueError, match="pass tau="):
        model(**inputs)  # the relaxed top-k needs its temperature (the Trainer anneals it)
    out = model(**inputs, tau=0.5)
    assert out.distill_loss is not None and out.distill_loss > 0
    out.loss.backward()
    last = model.layer_scorer.heads[0][2].weight
    assert last.grad is not None and last.grad.abs().sum() > 0  # reached through the relaxed top-k
    assert out.keep_rate is not None and out.keep_rate < 1


def test_merging_trains_with_distillation(tiny_bert_dir):
    """Merging in training (scripts/pruned_training.sh METHODS=merge): the loss reaches the layers before and
    after the merge point, and fewer tokens go through the layers after it."""
    model = build(tiny_bert_dir, use_gs=False, pooler_type="avg", prune_layers=[1], prune_keep_rates=[0.5],
                  prune_scorer="merge", distill_weight=1.0).train()
    enc = batch(model)
    out = model(**{k: v[:, None] for k, v in enc.items()})
    assert out.distill_loss is not None and out.distill_loss > 0
    out.loss.backward()
    for layer in model.backbone.encoder.layer[:2]:
        assert layer.attention.self.query.weight.grad.abs().sum() > 0
    assert out.keep_rate is not None and out.keep_rate < 1


@pytest.mark.parametrize("mlp_only_train", [True, False])
def test_distillation_compares_the_vectors_inference_gives(tiny_bert_dir, mlp_only_train):
    """The teacher is the vector inference gives; so is the distilled student: with SimCSE's MLP in training only
    ([CLS] setting) the raw [CLS], not the MLP's output. Keeping every token with dropout off the two coincide."""
    model = build(tiny_bert_dir, use_gs=False, pooler_type="cls", mlp_only_train=mlp_only_train, prune_layers=[1],
                  prune_keep_rates=[1.0], prune_scorer="attention", distill_weight=1.0).train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.backbone.config.attention_probs_dropout_prob = 0.0
    enc = batch(model)
    out = model(**{k: v[:, None] for k, v in enc.items()})
    assert out.distill_loss < 1e-6
    teacher = model.teacher_embeddings(enc["input_ids"], enc["attention_mask"])
    # the contrastive loss still sees the MLP in training: there the training vectors differ from the teacher's
    assert torch.allclose(out.embeddings, teacher, atol=1e-5) != mlp_only_train


def test_the_initial_teacher_stays_fixed_while_the_self_teacher_moves(tiny_bert_dir, tmp_path):
    """--distill_teacher initial: a frozen copy of the starting model, outside the state dict and the checkpoint."""
    frozen = pruning_model(tiny_bert_dir, "attention", [1], [0.5], distill_weight=1.0, distill_teacher="initial")
    moving = pruning_model(tiny_bert_dir, "attention", [1], [0.5], distill_weight=1.0)
    enc = batch(frozen)
    inputs = {k: v[:, None] for k, v in enc.items()}
    with pytest.raises(ValueError, match="keep_initial_teacher"):
        frozen.train()(**inputs)  # no teacher taken: refused, not silently the moving one
    frozen.keep_initial_teacher()
    before = {"frozen": frozen.teacher_embeddings(enc["input_ids"], enc["attention_mask"]),
              "moving": moving.teacher_embeddings(enc["input_ids"], enc["attention_mask"])}
    for model in (frozen, moving):
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        model(**inputs).loss.backward()
        optimizer.step()
    after_frozen = frozen.teacher_embeddings(enc["input_ids"], enc["attention_mask"])
    after_moving = moving.teacher_embeddings(enc["input_ids"], enc["attention_mask"])
    assert torch.equal(after_frozen, before["frozen"])  # the target did not move
    assert not torch.allclose(after_moving, before["moving"], atol=1e-4)  # the self teacher did
    assert not torch.allclose(frozen.embed(enc["input_ids"], enc["attention_mask"]), before["frozen"], atol=1e-4)
    assert not any("teacher" in key for key in frozen.state_dict())
    frozen.save_pretrained(tmp_path / "saved")
    reloaded = SimCSEGSModel.from_pretrained(tmp_path / "saved")
    assert set(reloaded.state_dict()) == set(moving.state_dict())
    assert reloaded.config.distill_teacher == "initial" and not getattr(reloaded, "_initial_teacher", ())


@pytest.mark.parametrize(("settings", "message"), [
    ({"prune_layers": [2], "prune_keep_rates": [0.5]}, r"each prune layer must be in 1\.\.1"),
    ({"prune_layers": [0], "prune_keep_rates": [0.5]}, r"each prune layer must be in 1\.\.1"),
    ({"prune_layers": [1], "prune_keep_rates": [0.0]}, r"must each be in \(0, 1\]"),
    ({"prune_layers": [1], "prune_keep_rates": [1.5]}, r"must each be in \(0, 1\]"),
    ({"prune_layers": [1], "prune_keep_rates": [0.5, 0.4]}, "one rate per prune layer"),
    ({"prune_keep_rates": [0.5]}, "needs --prune_layers"),
    ({"prune_layers": [1], "prune_keep_rates": [0.5], "prune_scorer": "magic"}, "must be one of"),
    ({"prune_layers": [1], "prune_keep_rates": [0.5], "pooler_type": "avg_first_last"}, "prune with one of"),
    ({"prune_layers": [1], "prune_keep_rates": [0.5], "prune_scorer": "merge", "pooler_type": "avg_top2"},
     "merged tokens"),
    ({"prune_layers": [1], "prune_keep_rates": [0.5], "use_gs": True}, "Use one"),
    ({"distill_weight": 1.0}, "needs tokens dropped in training"),
    ({"prune_layers": [1], "prune_keep_rates": [0.5], "distill_teacher": "initial"}, "set --distill_weight > 0"),
    ({"prune_layers": [1], "prune_keep_rates": [0.5], "distill_weight": 1.0, "distill_teacher": "mine"},
     "must be one of"),
])
def test_bad_schedules_fail_at_start_with_a_message(tiny_bert_dir, settings, message):
    settings = {"use_gs": False, "pooler_type": "cls", **settings}
    with pytest.raises(ValueError, match=message):
        build(tiny_bert_dir, **settings)


def test_a_growing_schedule_is_refused():
    with pytest.raises(ValueError, match="must not grow"):
        PruneSchedule.parse([1, 2], [0.5, 0.8])
    with pytest.raises(ValueError, match="must be increasing"):
        PruneSchedule.parse([2, 1], [0.8, 0.5])


def test_an_inference_schedule_on_any_checkpoint_and_its_refusals(tiny_bert_dir):
    plain = build(tiny_bert_dir, use_gs=False, pooler_type="avg").eval()
    schedule = PruneSchedule.parse([1], [0.5], "attention")
    pruned = plain.encode(LONG, batch_size=3, prune_schedule=schedule)
    assert not torch.allclose(pruned, plain.encode(LONG, batch_size=3), atol=1e-3)
    with pytest.raises(ValueError, match="learned"):
        plain.encode(LONG, prune_schedule=PruneSchedule.parse([1], [0.5], "learned"))
    with pytest.raises(ValueError, match="IDF table"):
        plain.encode(LONG, prune_schedule=PruneSchedule.parse([1], [0.5], "idf"))


def test_flops_ratio_counts_the_layers_after_each_prune_point():
    schedule = PruneSchedule.parse([1], [0.5])
    n = torch.tensor([10.0])
    assert pruned_flops_ratio(n, [n], schedule, 2, 8, 32) == pytest.approx(1.0)
    half = pruned_flops_ratio(n, [n / 2], schedule, 2, 8, 32)
    assert 0.5 < half < 1.0  # the first layer runs on every token
    assert pruned_flops_ratio(n, [n / 2], PruneSchedule.parse([1], [0.5]), 4, 8, 32) < half


def test_a_pruning_checkpoint_saves_loads_and_loads_through_automodel(tiny_bert_dir, tmp_path):
    model = pruning_model(tiny_bert_dir, "learned", [1], [0.5])
    want = model.encode(SENTENCES, batch_size=4)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = SimCSEGSModel.from_pretrained(tmp_path / "ckpt")
    assert loaded.prune_schedule == model.prune_schedule
    torch.testing.assert_close(loaded.encode(SENTENCES, batch_size=4), want, atol=0, rtol=0)
    auto = AutoModel.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(auto.encode(SENTENCES, batch_size=4), want, atol=0, rtol=0)
