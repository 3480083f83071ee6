"""Run under torchrun by test_distributed.py: one DDP step of every training objective on a fixed global batch.

    python -m torch.distributed.run --nproc_per_node N tests/training/ddp_worker.py MODEL_DIR OUT_FILE

Each process takes its contiguous shard of the global batch; rank 0 writes, per scenario, the loss and every
gradient (after DDP's all-reduce). The same global batch on 1 process must give the same numbers. Every scenario
also runs with the cached loss (``cached_<name>``: chunks of :data:`MINI_BATCH` examples, gradients averaged by
:func:`~simcse_gs.training.cached_loss.average_gradients`) next to the same step without it (``content_<name>``),
both on :class:`ContentNoise`, whose draws do not depend on how the batch is sharded or chunked.

What differs between 1 and N processes is made equal, so that only the cross-process code is compared:

* dropout is off;
* the proxy's random draws (Gumbel noise for ``soft``/``st``, the uniforms of REINFORCE's Bernoulli keeps) come
  from noise drawn once for the *global* batch, of which each process takes its own rows, by replacing
  the policies' ``sample_keep`` / ``bernoulli_keep`` with the same formulas on that noise (the samplers
  themselves are tested in test_research_tools.py and test_gumbel.py);
* the proxy head, zero at initialisation (p = 0.5 everywhere, no gradient into the proxy encoder), gets random
  weights, and the REINFORCE baseline a value (unset, the first step's batch advantage is 0), so the proxy's
  gradients and the keep-rate penalty are not trivially equal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

import simcse_gs.model.keep_policy as keep_policy
import simcse_gs.model.policy_gumbel as policy_gumbel
import simcse_gs.model.policy_reinforce as policy_reinforce
from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.gumbel import KEEP
from simcse_gs.model.policy_random_drop import sentence_hash_uniform
from simcse_gs.training.cached_loss import average_gradients, cached_backward

SENTENCES = [f"sentence number {i} talks about {w}" for i, w in enumerate("cats dogs rain stocks music art".split())]
SENTENCES[2] += " and much more than the others do"  # different lengths: the shards' token counts differ
GS = {"use_gs": True, "pooler_type": "cls"}
SCENARIOS: dict[str, dict] = {
    "plain": {"use_gs": False, "pooler_type": "cls"},
    "gs_soft": {**GS, "gs_estimator": "soft"},
    "gs_st": {**GS, "gs_estimator": "st"},
    "gs_reinforce_sentence": {**GS, "gs_estimator": "reinforce", "gs_reinforce_reward": "sentence"},
    "gs_reinforce_batch": {**GS, "gs_estimator": "reinforce", "gs_reinforce_reward": "batch"},
    "sup_hard_negatives": {"use_gs": False, "pooler_type": "cls", "hard_negative_weight": 0.5, "n_sent": 3},
    "sup_hard_negatives_gs": {**GS, "hard_negative_weight": 0.5, "n_sent": 3},
    "gs_keep_rate_penalty": {**GS, "pooler_type": "avg", "gs_keep_rate_weight": 2.0, "gs_target_keep_rate": 0.3},
}
TAU = 0.7
MINI_BATCH = 2  # the cached scenarios' chunks: 2 + 2 + 2 examples on one process, 2 + 1 on each of two


class GlobalNoise:
    """Noise for the whole global batch, drawn identically on every process; each takes its shard's rows."""

    def __init__(self, n_sent: int, batch: int, length: int, rank: int, world: int, seed: int = 1):
        gen = torch.Generator().manual_seed(seed)
        self.gumbel = [-torch.empty(n_sent, batch, length, 2).exponential_(generator=gen).log() for _ in range(2)]
        self.uniform = [torch.rand(n_sent, batch, length, generator=gen) for _ in range(2)]
        self.shard = slice(rank * batch // world, (rank + 1) * batch // world)
        self.draw = 0

    def take(self, kind: str) -> torch.Tensor:
        noise = getattr(self, kind)[self.draw % 2][:, self.shard]
        self.draw += 1
        return noise.reshape(-1, *noise.shape[2:])  # view-major rows, as SimCSEGSModel.forward lays them out


def install_noise(noise: GlobalNoise) -> None:
    def sample_keep(logits: torch.Tensor, tau: float, hard: bool = False) -> torch.Tensor:
        soft = ((logits.float() + noise.take("gumbel")) / tau).softmax(dim=-1)
        if hard:
            index = soft.argmax(dim=-1, keepdim=True)
            soft = torch.zeros_like(soft).scatter_(-1, index, 1.0) - soft.detach() + soft
        return soft[..., KEEP]

    def bernoulli_keep(logits: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return (noise.take("uniform") < logits.float().softmax(dim=-1)[..., KEEP]).float()

    policy_gumbel.sample_keep = sample_keep
    policy_reinforce.bernoulli_keep = bernoulli_keep


def batch_of(model: SimCSEGSModel, n_sent: int, rank: int, world: int) -> dict[str, torch.Tensor]:
    """The global batch [B, n_sent, L] (unsup: each sentence; sup: sentence, next, the one after as hard negative),
    tokenised together so that every process pads to the same length, then this process's shard."""
    b = len(SENTENCES)
    views = [SENTENCES[v:] + SENTENCES[:v] for v in range(n_sent)]
    enc = model.tokenizer([s for view in views for s in view], padding=True, return_tensors="pt")
    shard = slice(rank * b // world, (rank + 1) * b // world)
    return {k: v.view(n_sent, b, -1).transpose(0, 1)[shard].contiguous() for k, v in enc.items()}


def run_scenario(model_dir: str, settings: dict, rank: int, world: int) -> dict:
    settings = dict(settings)
    n_sent = settings.pop("n_sent", 1)
    torch.manual_seed(0)
    model = SimCSEGSModel.from_backbone(model_dir, **settings)
    if model.proxy is not None:
        nn.init.normal_(model.proxy.head.weight, std=0.5)
        nn.init.normal_(model.proxy.head.bias, std=0.5)
    if hasattr(model, "reinforce_baseline"):  # as after earlier steps (unset, the first advantage would be 0)
        model.reinforce_baseline.fill_(1.0)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    model.train()
    batch = batch_of(model, n_sent, rank, world)
    install_noise(GlobalNoise(n_sent, len(SENTENCES), batch["input_ids"].shape[-1], rank, world))
    ddp = nn.parallel.DistributedDataParallel(model)
    out = ddp(**batch, tau=TAU)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return {"loss": out.loss.detach(), "contrastive_loss": out.contrastive_loss, "grads": grads}


class ContentNoise:
    """Draws that are a function of a sentence's tokens, the position and the draw's index within one keep decision:
    the same for a sentence in any shard or chunk, and in the cached loss's replay (which restores the RNG, not a
    counter). Replaces the Gumbel noise (``soft``/``st``) and REINFORCE's uniforms, as :class:`GlobalNoise` does."""

    def __init__(self) -> None:
        self.ids: torch.Tensor | None = None
        self.mask: torch.Tensor | None = None
        self.draw = 0

    def uniform(self, salt: int) -> torch.Tensor:
        key = 4 * self.draw + salt + 1
        return sentence_hash_uniform(self.ids * 31 + key, self.mask).clamp(1e-6, 1 - 1e-6)

    def gumbel(self) -> torch.Tensor:
        noise = torch.stack([-(-self.uniform(salt).log()).log() for salt in (0, 1)], dim=-1)
        self.draw += 1
        return noise

    def bernoulli_uniform(self) -> torch.Tensor:
        u = self.uniform(2)
        self.draw += 1
        return u


@contextmanager
def content_noise() -> Iterator[ContentNoise]:
    """Install :class:`ContentNoise` in the proxy policies for the duration (restored afterwards)."""
    noise = ContentNoise()
    originals = (keep_policy.ProxyPolicy.train_keep, policy_gumbel.sample_keep, policy_reinforce.bernoulli_keep)

    def train_keep(self, model, input_ids, attention_mask, n_views, tau, **kwargs):
        noise.ids, noise.mask, noise.draw = input_ids, attention_mask, 0
        return originals[0](self, model, input_ids, attention_mask, n_views, tau, **kwargs)

    def sample_keep(logits: torch.Tensor, tau: float, hard: bool = False) -> torch.Tensor:
        soft = ((logits.float() + noise.gumbel()) / tau).softmax(dim=-1)
        if hard:
            index = soft.argmax(dim=-1, keepdim=True)
            soft = torch.zeros_like(soft).scatter_(-1, index, 1.0) - soft.detach() + soft
        return soft[..., KEEP]

    def bernoulli_keep(logits: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return (noise.bernoulli_uniform() < logits.float().softmax(dim=-1)[..., KEEP]).float()

    keep_policy.ProxyPolicy.train_keep = train_keep
    policy_gumbel.sample_keep, policy_reinforce.bernoulli_keep = sample_keep, bernoulli_keep
    try:
        yield noise
    finally:
        keep_policy.ProxyPolicy.train_keep = originals[0]
        policy_gumbel.sample_keep, policy_reinforce.bernoulli_keep = originals[1], originals[2]


def run_content_scenario(model_dir: str, settings: dict, rank: int, world: int, cached: bool) -> dict:
    """One step on :class:`ContentNoise`: through DDP's forward, or the cached loss (then averaged by hand)."""
    settings = dict(settings)
    n_sent = settings.pop("n_sent", 1)
    torch.manual_seed(0)
    model = SimCSEGSModel.from_backbone(model_dir, **settings)
    if model.proxy is not None:
        nn.init.normal_(model.proxy.head.weight, std=0.5)
        nn.init.normal_(model.proxy.head.bias, std=0.5)
    if hasattr(model, "reinforce_baseline"):
        model.reinforce_baseline.fill_(1.0)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    model.train()
    batch = batch_of(model, n_sent, rank, world)
    ddp = nn.parallel.DistributedDataParallel(model)
    with content_noise():
        if cached:
            out = cached_backward(ddp.module, batch, MINI_BATCH, TAU)
            average_gradients(ddp.module, check=True)
        else:
            out = ddp(**batch, tau=TAU)
            out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    baseline = getattr(model, "reinforce_baseline", torch.tensor(0.0)).detach().clone()
    return {"loss": out.loss.detach(), "contrastive_loss": out.contrastive_loss, "grads": grads,
            "baseline": baseline}


def main(model_dir: str, out_file: str) -> None:
    # Generous: on a loaded machine the two processes may reach the first collective minutes apart.
    dist.init_process_group("gloo", timeout=timedelta(seconds=300))  # fail, never hang
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {name: run_scenario(model_dir, settings, rank, world) for name, settings in SCENARIOS.items()}
    for name, settings in SCENARIOS.items():
        results[f"content_{name}"] = run_content_scenario(model_dir, settings, rank, world, cached=False)
        results[f"cached_{name}"] = run_content_scenario(model_dir, settings, rank, world, cached=True)
    if rank == 0:
        torch.save(results, out_file)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
