"""The cached contrastive loss (``--mini_batch_size``, simcse_gs/training/cached_loss.py): the same loss and gradients.

Two references, fp32, within 1e-5 relative:

* with dropout and sampling on: the same chunks embedded *with* graph from the same RNG states (seeded alike; a
  forward without graph draws what one with graph draws), then the whole batch's loss and one ``backward()``;
* with randomness off (dropout 0; plain SimCSE, the IDF control, or the proxy policies on draws that are a function
  of each sentence's tokens, :func:`tests.training.ddp_worker.content_noise`): one full ``model(**batch)``.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer

import train
from simcse_gs.model import SimCSEGSModel
from simcse_gs.training.arguments import SimCSETrainingArguments
from simcse_gs.training.cached_loss import cached_backward, chunk_inputs, loss_of_parts
from tests.conftest import SENTENCES
from tests.training.ddp_worker import content_noise

TAU = 0.7
BATCH_SENTENCES = [*SENTENCES, "a child rides a red bike down the road quickly"]  # 7: uneven chunks of 3
MINI = 3

GS = {"use_gs": True, "pooler_type": "cls"}
CASES: dict[str, dict] = {
    "plain": {"use_gs": False, "pooler_type": "cls"},
    "plain_sup_hard_negatives": {"use_gs": False, "pooler_type": "cls", "hard_negative_weight": 0.5, "n_sent": 3},
    "plain_roberta_sup_pairs": {"use_gs": False, "pooler_type": "avg", "n_sent": 2, "backbone": "roberta"},
    "gs_soft": {**GS, "gs_estimator": "soft"},
    "gs_soft_roberta": {**GS, "gs_estimator": "soft", "backbone": "roberta"},
    "gs_soft_shared_sample": {**GS, "gs_shared_sample": True},
    "gs_st": {**GS, "gs_estimator": "st"},
    "gs_reinforce_sentence": {**GS, "gs_estimator": "reinforce", "gs_reinforce_reward": "sentence"},
    "gs_reinforce_batch": {**GS, "gs_estimator": "reinforce", "gs_reinforce_reward": "batch"},
    "gs_reinforce_sup_sentence": {**GS, "gs_estimator": "reinforce", "gs_reinforce_reward": "sentence",
                                  "n_sent": 3, "hard_negative_weight": 0.5},
    "gs_topk": {**GS, "gs_estimator": "topk", "gs_target_keep_rate": 0.7, "gs_attn_renorm": True},
    "gs_hard_concrete": {**GS, "gs_estimator": "hard_concrete", "gs_keep_rate_weight": 1.0,
                         "gs_target_keep_rate": 0.6},
    "gs_keep_rate_penalty": {**GS, "pooler_type": "avg", "gs_keep_rate_weight": 2.0, "gs_target_keep_rate": 0.3},
    "gs_sup_hard_negatives": {**GS, "hard_negative_weight": 0.5, "n_sent": 3},
    "random_drop": {"use_gs": False, "pooler_type": "avg", "token_drop_rate": 0.3},
    "idf_drop": {"use_gs": False, "pooler_type": "avg", "token_drop_rate": 0.3, "token_drop_heuristic": "idf"},
    "mlm_plain": {"use_gs": False, "pooler_type": "cls", "do_mlm": True, "mlm_weight": 0.3},
    "mlm_gs": {**GS, "do_mlm": True, "mlm_weight": 0.3},
    "pruned_distill_cls_mlp_only_train": {"use_gs": False, "pooler_type": "cls", "mlp_only_train": True,
                                          "prune_layers": [1], "prune_keep_rates": [0.5], "prune_scorer": "attention",
                                          "distill_weight": 1.0},
    "pruned_learned_distill": {"use_gs": False, "pooler_type": "avg", "prune_layers": [1], "prune_keep_rates": [0.5],
                               "prune_scorer": "learned", "distill_weight": 1.0},
    "random_drop_distill": {"use_gs": False, "pooler_type": "avg", "token_drop_rate": 0.3, "distill_weight": 1.0},
}
# Whose training keep is deterministic once dropout is off (on ContentNoise for the proxy policies): their cached
# loss must equal one full forward. topk, hard_concrete and random_drop draw inside their own samplers.
DETERMINISTIC = ["plain", "plain_sup_hard_negatives", "plain_roberta_sup_pairs", "gs_soft", "gs_soft_roberta",
                 "gs_st", "gs_reinforce_sentence", "gs_reinforce_batch", "gs_reinforce_sup_sentence",
                 "gs_keep_rate_penalty", "gs_sup_hard_negatives", "idf_drop", "mlm_plain", "mlm_gs",
                 "pruned_distill_cls_mlp_only_train"]


@pytest.fixture(scope="module")
def no_dropout_dirs(tiny_bert_dir, tiny_roberta_dir, tmp_path_factory) -> dict[str, str]:
    """The tiny BERT and RoBERTa with every dropout at 0 (attention's too, which no nn.Dropout module holds)."""
    dirs = {}
    for name, path in (("bert", tiny_bert_dir), ("roberta", tiny_roberta_dir)):
        out = tmp_path_factory.mktemp(f"tiny-{name}-no-dropout")
        AutoModel.from_pretrained(path, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).save_pretrained(out)
        AutoTokenizer.from_pretrained(path).save_pretrained(out)
        dirs[name] = str(out)
    return dirs


def make_model(dirs: dict[str, str], case: str) -> tuple[SimCSEGSModel, dict[str, torch.Tensor]]:
    """The case's model (a random proxy head, so the proxy gets gradient; a set REINFORCE baseline) and batch."""
    settings = dict(CASES[case])
    n_sent, backbone = settings.pop("n_sent", 1), settings.pop("backbone", "bert")
    torch.manual_seed(0)
    model = SimCSEGSModel.from_backbone(dirs[backbone], **settings)
    if model.proxy is not None:
        nn.init.normal_(model.proxy.head.weight, std=0.5)
        nn.init.normal_(model.proxy.head.bias, std=0.5)
    if hasattr(model, "reinforce_baseline"):
        model.reinforce_baseline.fill_(1.5)
    if hasattr(model, "idf"):
        model.idf.copy_(torch.rand(model.idf.shape, generator=torch.Generator().manual_seed(1)))
    model.train()
    return model, batch_of(model, n_sent, mlm=settings.get("do_mlm", False))


def batch_of(model: SimCSEGSModel, n_sent: int, mlm: bool = False) -> dict[str, torch.Tensor]:
    """[B, n_sent, L]: each sentence, then (supervised) the next ones as pair and hard negative; with ``mlm``, every
    third real token masked."""
    b = len(BATCH_SENTENCES)
    views = [BATCH_SENTENCES[v:] + BATCH_SENTENCES[:v] for v in range(n_sent)]
    enc = model.tokenizer([s for view in views for s in view], padding=True, return_tensors="pt")
    batch = {k: v.view(n_sent, b, -1).transpose(0, 1).contiguous() for k, v in enc.items()}
    if mlm:
        ids = batch["input_ids"]
        chosen = (torch.arange(ids.shape[-1]) % 3 == 1) & batch["attention_mask"].bool()
        batch["mlm_input_ids"] = ids.masked_fill(chosen, model.tokenizer.mask_token_id)
        batch["mlm_labels"] = ids.masked_fill(~chosen, -100)
    return batch


def grads_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same(out, ref, model, ref_model, rtol: float = 1e-5, tensor_rtol: float | None = None) -> None:
    """Loss and every parameter gradient equal within ``rtol``, relative in norm: a gradient's entries near 0 (a
    key bias's gradient is 0 up to rounding: softmax ignores it) carry only the rounding of sums taken in another
    order, so per-entry ratios would measure noise. Tensors below 1e-2 of the total norm count in the total only;
    each other tensor within ``tensor_rtol`` (``rtol`` unless given)."""
    tensor_rtol = rtol if tensor_rtol is None else tensor_rtol
    torch.testing.assert_close(out.loss, ref.loss.detach(), rtol=rtol, atol=1e-7)
    grads, ref_grads = grads_of(model), grads_of(ref_model)
    assert grads.keys() == ref_grads.keys() and grads
    total = torch.cat([g.flatten() for g in ref_grads.values()]).norm()
    diff = torch.cat([(grads[n] - g).flatten() for n, g in ref_grads.items()]).norm()
    assert diff <= rtol * total, f"all gradients: relative difference {diff / total:.2e}"
    for name, grad in ref_grads.items():
        norm = grad.norm()
        if norm > 1e-2 * total:
            rel = (grads[name] - grad).norm() / norm
            assert rel <= tensor_rtol, f"{name}: relative difference {rel:.2e} (norm {norm:.2e})"


def chunked_reference(model: SimCSEGSModel, batch: dict, size: int, tau: float):
    """The uncached computation with the same draws: the chunks embedded with graph, one loss, one backward."""
    parts = [model.embed_views(**chunk, tau=tau) for chunk in chunk_inputs(batch, size)]
    out = loss_of_parts(model, parts)
    out.loss.backward()
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_cached_loss_equals_the_chunks_embedded_with_graph(tiny_bert_dir, tiny_roberta_dir, case):
    dirs = {"bert": tiny_bert_dir, "roberta": tiny_roberta_dir}  # dropout on
    model, batch = make_model(dirs, case)
    ref_model, _ = make_model(dirs, case)
    torch.manual_seed(5)
    out = cached_backward(model, batch, MINI, TAU)
    after = torch.rand(3)
    torch.manual_seed(5)
    ref = chunked_reference(ref_model, batch, MINI, TAU)
    assert_same(out, ref, model, ref_model)
    torch.testing.assert_close(torch.rand(3), after)  # the RNG continues as after the reference's embedding
    if hasattr(model, "reinforce_baseline"):  # updated once, from the whole batch's loss
        assert model.reinforce_baseline.item() == pytest.approx(ref_model.reinforce_baseline.item(), rel=1e-6)
        assert model.reinforce_baseline.item() != 1.5
    for key in ("contrastive_loss", "keep_prob", "keep_rate", "keep_entropy", "mlm_loss", "keep_rate_loss",
                "distill_loss"):
        assert (out.get(key) is None) == (ref.get(key) is None), key
        if out.get(key) is not None:
            torch.testing.assert_close(out[key], ref[key].detach(), rtol=1e-5, atol=1e-7)
            assert out[key].grad_fn is None


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", DETERMINISTIC)
def test_cached_loss_equals_one_full_forward_without_randomness(no_dropout_dirs, case, dtype):
    """float64: the same maths (1e-5: the policies compute keep probabilities in float32, and the penalty's sums
    over chunks round differently there: usually up to 2e-7, once 2.0e-6 on the proxy's token-type embeddings in a
    full CI run on an Intel Xeon, not reproducible alone; a dropped or doubled term moves the gradients by far more
    than 1e-5); float32: the rounding of matmuls over chunks instead of the whole batch, measured up to 2e-5 of the
    gradients' norm on these tiny models on an Intel Xeon and up to 4.2e-3 on an AMD EPYC (the loss sits near
    log(batch) here, so the gradients are small differences of large terms), so 1e-2: the float64 cases carry the
    exactness, float32 that the dtype runs. One small tensor's float32 gradient (a LayerNorm weight, 3.9e-5 in norm)
    came out 1.02e-2 apart in a full CI run on an AMD EPYC while the total stayed within 1e-2, so each tensor there
    gets 5e-2: still far below what a dropped or doubled term gives (order 1)."""
    model, batch = make_model(no_dropout_dirs, case)
    ref_model, _ = make_model(no_dropout_dirs, case)
    model.to(dtype), ref_model.to(dtype)
    with content_noise():
        out = cached_backward(model, batch, MINI, TAU)
        ref = ref_model(**batch, tau=TAU)
        ref.loss.backward()
    if dtype == torch.float64:
        assert_same(out, ref, model, ref_model, rtol=1e-5)
    else:
        assert_same(out, ref, model, ref_model, rtol=1e-2, tensor_rtol=5e-2)
    if hasattr(model, "reinforce_baseline"):
        assert model.reinforce_baseline.item() == pytest.approx(ref_model.reinforce_baseline.item(), rel=1e-6)


@pytest.mark.parametrize("size", [1, 2, 7, 50])
def test_every_chunk_size_gives_the_full_batch_gradient(no_dropout_dirs, size):
    """Chunks of one example, uneven chunks, and one chunk holding the whole batch (or more); float64 (1e-5, as
    above: the keep probabilities are float32)."""
    model, batch = make_model(no_dropout_dirs, "gs_keep_rate_penalty")
    ref_model, _ = make_model(no_dropout_dirs, "gs_keep_rate_penalty")
    model.double(), ref_model.double()
    with content_noise():
        out = cached_backward(model, batch, size, TAU, loss_divisor=2.0)
        ref = ref_model(**batch, tau=TAU)
        (ref.loss / 2.0).backward()  # as the Trainer divides by the micro-batches of a gradient accumulation
    assert_same(out, ref, model, ref_model, rtol=1e-5)


def test_bf16_autocast_replays_the_chunks_exactly(tiny_bert_dir):
    """Under autocast (what accelerate's bf16 gives) the cached loss equals the chunks embedded with graph, each in
    its own autocast region as pass 2 embeds them. (In one region autocast casts each weight to bf16 once and sums
    the chunks' gradients of that copy in bf16; per chunk they are summed in float32: 3e-3 apart on this model.)"""
    dirs = {"bert": tiny_bert_dir}

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16)

    model, batch = make_model(dirs, "gs_soft")
    ref_model, _ = make_model(dirs, "gs_soft")
    torch.manual_seed(2)
    out = cached_backward(model, batch, MINI, TAU, autocast=autocast)
    torch.manual_seed(2)
    parts = []
    for chunk in chunk_inputs(batch, MINI):
        with autocast():
            parts.append(ref_model.embed_views(**chunk, tau=TAU))
    with autocast():
        ref = loss_of_parts(ref_model, parts)
    ref.loss.backward()
    assert_same(out, ref, model, ref_model)


def test_a_mini_batch_size_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"--mini_batch_size must be >= 1"):
        SimCSETrainingArguments(output_dir=str(tmp_path / "o"), mini_batch_size=0, report_to="none")
    with pytest.raises(ValueError, match=r"--mini_batch_size .* does not support --optim lomo"):
        SimCSETrainingArguments(output_dir=str(tmp_path / "o"), mini_batch_size=2, optim="lomo", report_to="none")


def test_a_forward_that_draws_differently_with_a_graph_is_refused(tiny_bert_dir):
    """The replay is checked: a chunk whose second pass consumes other random numbers stops the step."""
    model, batch = make_model({"bert": tiny_bert_dir}, "plain")
    embed_views = model.embed_views

    def drawing_with_graph(*args, **kwargs):
        if torch.is_grad_enabled():
            torch.rand(1)
        return embed_views(*args, **kwargs)

    model.embed_views = drawing_with_graph
    with pytest.raises(RuntimeError, match="drew other random numbers"):
        cached_backward(model, batch, MINI, TAU)


# ---------------------------------------------------------------------------------------------- train.py


def spy_on_cached_backward(monkeypatch) -> list[int]:
    """The batch sizes the trainer hands the cached loss."""
    import simcse_gs.training.trainer as trainer_module

    calls: list[int] = []
    real = trainer_module.cached_backward

    def spy(model, inputs, *args, **kwargs):
        calls.append(inputs["input_ids"].shape[0])
        return real(model, inputs, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "cached_backward", spy)
    return calls


def run(model_dir: str, train_file: str, out, *extra: str) -> list[dict]:
    train.main(["--model_name_or_path", model_dir, "--train_file", train_file, "--output_dir", str(out),
                "--per_device_train_batch_size", "4", "--report_to", "none", "--logging_steps", "1",
                "--save_strategy", "no", "--dataloader_num_workers", "0", "--seed", "3", *extra])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [h for h in history if "loss" in h]


def test_the_trainer_averages_gradients_only_outside_no_sync(tiny_bert_dir, unsup_file, tmp_path, monkeypatch):
    """Under DDP the cached step averages the gradients by hand, on the micro-batch the Trainer runs outside
    ``no_sync`` (the last of a gradient accumulation): once per optimizer step. (A process group of one: the
    averaging itself is checked on two processes in test_distributed.py.)"""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    import simcse_gs.training.trainer as trainer_module
    from simcse_gs.training.data import SimCSECollator, load_train_dataset

    model, _ = make_model({"bert": tiny_bert_dir}, "gs_soft")
    args = SimCSETrainingArguments(output_dir=str(tmp_path / "o"), mini_batch_size=2, report_to="none",
                                   per_device_train_batch_size=4)
    dataset = load_train_dataset(unsup_file, model.tokenizer)
    collator = SimCSECollator(model.tokenizer)
    trainer = trainer_module.SimCSETrainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    averaged = []
    monkeypatch.setattr(trainer_module, "average_gradients", lambda module, check=False: averaged.append(check))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(model)
        batch = collator([dataset[i] for i in range(4)])
        with ddp.no_sync():
            trainer.training_step(ddp, batch)
        assert averaged == []
        loss = trainer.training_step(ddp, batch)
        assert averaged == [True]  # checked (one host sync) at the first averaging only
        trainer.training_step(ddp, batch)
        assert averaged == [True, False] and loss.isfinite()
    finally:
        dist.destroy_process_group()


def test_train_py_with_mini_batch_size_logs_the_same_losses(no_dropout_dirs, unsup_file, tmp_path, monkeypatch):
    """Plain SimCSE without dropout, 3 optimizer steps of 2 accumulated micro-batches: chunks of 3 (3 + 1) give
    the losses and gradient norms of the full batches. Plain SGD: Adam divides by the gradients' running size, so a
    float-noise difference in a near-zero gradient element would become a full-size difference in its update."""
    common = ["--use_gs", "false", "--pooler_type", "cls", "--max_steps", "3", "--gradient_accumulation_steps", "2",
              "--optim", "sgd", "--learning_rate", "0.5"]
    full = run(no_dropout_dirs["bert"], unsup_file, tmp_path / "full", *common)
    calls = spy_on_cached_backward(monkeypatch)
    cached = run(no_dropout_dirs["bert"], unsup_file, tmp_path / "cached", *common, "--mini_batch_size", "3")
    assert calls == [4] * 6  # every micro-batch of 4 went through the cached loss
    assert [h["step"] for h in cached] == [1, 2, 3]
    for a, b in zip(cached, full):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        # the untrained tiny model sits at loss ~ ln 4: its gradient is a difference of near-equal terms, whose float32
        # rounding is ~1e-4 of its norm (the gradients themselves are compared at 1e-5 above, on larger ones)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)


def test_train_py_cached_gs_with_mlm_and_bf16_logs_keep_statistics(tiny_bert_dir, unsup_file, tmp_path, monkeypatch):
    calls = spy_on_cached_backward(monkeypatch)
    logs = run(tiny_bert_dir, unsup_file, tmp_path / "o", "--use_gs", "true", "--gs_estimator", "reinforce",
               "--do_mlm", "true", "--bf16", "true", "--max_steps", "2", "--mini_batch_size", "2")
    assert len(logs) == 2 and calls == [4, 4]
    for key in ("loss", "contrastive_loss", "mlm_loss", "keep_prob", "keep_rate", "keep_entropy"):
        assert key in logs[0] and logs[0][key] == logs[0][key]  # present and not NaN
    model = SimCSEGSModel.from_pretrained(tmp_path / "o")
    assert model.reinforce_baseline.isfinite()
