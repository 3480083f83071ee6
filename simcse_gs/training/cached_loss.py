"""A cached contrastive loss (GradCache): batches larger than memory, with the gradients of the whole batch.

SimCSE improves with the number of in-batch negatives, but the activations of a batch grow with it. Following Gao
et al. (2021), "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup", the loss of a batch of B
examples is computed in two passes over chunks of ``mini_batch_size`` examples (``--mini_batch_size``):

1. each chunk is embedded without a graph (:meth:`SimCSEGSModel.embed_views`; examples are independent there), after
   saving the RNG state (CPU, and the accelerator's); the loss of the whole batch (:meth:`loss_from_views`: the
   contrastive loss over every chunk and, under DDP, every process, the keep-rate penalty, REINFORCE's surrogate,
   MLM) is computed from detached leaf copies of the chunks' tensors and back-propagated to those leaves only;
2. each chunk's RNG state is restored and the chunk is embedded again, with a graph (the dropout masks and the keep
   samples replay exactly), and ``sum <tensor, cached gradient>`` is back-propagated into the parameters.

Peak activation memory is then one chunk's, whatever B; time is one extra forward without a graph per chunk. The
loss and every gradient equal those of embedding the same chunks with a graph from the same RNG states and calling
``loss_from_views`` once (``tests/training/test_cached_loss.py``).

Under DDP the parameters are not reached through DDP's forward, so DDP's reducer is idle: :func:`average_gradients`
averages the gradients across processes instead, once per optimizer step (the trainer calls it only outside
``no_sync``, i.e. on the last micro-batch of a gradient accumulation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.distributed as dist

from ..model import SimCSEGSModel
from ..model.keep_policy import KeepDecision
from ..model.modeling import SimCSEGSOutput, ViewEmbeddings, join_views

__all__ = ["RngState", "average_gradients", "cached_backward", "chunk_inputs", "loss_of_parts"]

_HALF = (torch.float16, torch.bfloat16)
_BUCKET_BYTES = 32 * 2**20  # gradients are averaged in flat buckets of this size (as DDP's 25 MiB default)


class RngState:
    """The CPU generator's state and, where the chunk runs on an accelerator, that device's: everything dropout and
    the keep policies draw from."""

    def __init__(self, device: torch.device) -> None:
        self.cpu = torch.get_rng_state()
        self.device = device if device.type != "cpu" else None
        self.accelerator = None
        if self.device is not None:
            self.accelerator = torch.get_device_module(self.device).get_rng_state(self.device)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.device is not None:
            torch.get_device_module(self.device).set_rng_state(self.accelerator, self.device)

    def same_as(self, other: RngState) -> bool:
        """Whether both generators are where ``other`` had them (host-side state: no device sync)."""
        same_device = self.accelerator is None or torch.equal(self.accelerator, other.accelerator)
        return torch.equal(self.cpu, other.cpu) and same_device


def chunk_inputs(inputs: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """Split a collated batch ([B, V, L] tensors) into chunks of ``size`` examples; other values go to every chunk."""
    batch = inputs["input_ids"].shape[0]
    return [{key: value[start:start + size] if isinstance(value, torch.Tensor) else value
             for key, value in inputs.items()} for start in range(0, batch, size)]


# ---------------------------------------------------------------------------------------------- part structure


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor of a part, in a fixed order (dataclass fields, list items, dict values)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _tensors(getattr(obj, f.name))
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for key in sorted(obj):
            yield from _tensors(obj[key])


def _replace(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """The same structure with ``fn`` applied to every tensor (in the order of :func:`_tensors`)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.replace(obj, **{f.name: _replace(getattr(obj, f.name), fn) for f in dataclasses.fields(obj)})
    if isinstance(obj, (list, tuple)):
        return type(obj)(_replace(item, fn) for item in obj)
    if isinstance(obj, dict):
        return {key: _replace(obj[key], fn) for key in sorted(obj)}
    return obj


def _leaf(t: torch.Tensor) -> torch.Tensor:
    """A detached copy that collects a gradient: floating tensors only, half precision held in float32 (so the
    cached gradient does not underflow before fp16's loss scaling, which pass 2 applies)."""
    if not t.is_floating_point():
        return t.detach()
    t = t.detach().float() if t.dtype in _HALF else t.detach()
    return t.requires_grad_(True)


def _per_example_log_prob(part: ViewEmbeddings) -> ViewEmbeddings:
    """REINFORCE's log-probabilities as [draws x views, chunk examples], so that chunks concatenate example-wise.

    A decision holds them as [draws, N] with N = views x examples in view-major order (supervised: one draw over
    every view); concatenating the chunks along N (``merge_decisions``) would interleave chunks and views, and the
    per-sentence reward (``keep_log_prob.reshape(-1, batch).sum(0)``) would then add up other examples' terms. The
    reshape leaves a single part's surrogate unchanged."""
    log_prob = part.decision.keep_log_prob
    if log_prob is None:
        return part
    decision = dataclasses.replace(part.decision, keep_log_prob=log_prob.reshape(-1, part.z.shape[1]))
    return dataclasses.replace(part, decision=decision)


def _one_part(parts: Sequence[ViewEmbeddings]) -> ViewEmbeddings:
    """The chunks of a decision without keep statistics (plain SimCSE, the drop controls) as one part: the same
    loss as the chunks (nothing else of their decisions reaches it), without ``merge_decisions``, which needs
    statistics to merge several decisions."""
    decisions = [p.decision for p in parts]
    weights = [None if w is None else torch.cat([d.weights[v] for d in decisions])
               for v, w in enumerate(decisions[0].weights)]

    def joined(name: str, fn: Callable[[list[torch.Tensor]], torch.Tensor]) -> torch.Tensor | None:
        values = [getattr(d, name) for d in decisions]
        return None if values[0] is None else fn(values)

    decision = KeepDecision(
        weights,
        keep_prob_sum=joined("keep_prob_sum", lambda v: torch.stack(v).sum()),
        decided_count=joined("decided_count", lambda v: torch.stack(v).sum()),
        keep_log_prob=joined("keep_log_prob", lambda v: torch.cat(v, dim=1)),
    )
    mlm_sum = None if parts[0].mlm_loss_sum is None else torch.stack([p.mlm_loss_sum for p in parts]).sum()
    mlm_count = None if parts[0].mlm_count is None else torch.stack([p.mlm_count for p in parts]).sum()
    return ViewEmbeddings(join_views(parts, "z"), decision, mlm_sum, mlm_count, teacher=join_views(parts, "teacher"),
                          student=join_views(parts, "student"))


def loss_of_parts(model: SimCSEGSModel, parts: Sequence[ViewEmbeddings]) -> SimCSEGSOutput:
    """``model.loss_from_views(parts)`` for the chunks of one batch, in order, with each part's REINFORCE
    log-probabilities laid out per example (:func:`_per_example_log_prob`); chunks without keep statistics are
    joined into one part first (:func:`_one_part`). The uncached reference of the tests calls this too."""
    parts = [_per_example_log_prob(part) for part in parts]
    if len(parts) > 1 and not parts[0].decision.statistics:
        parts = [_one_part(parts)]
    return model.loss_from_views(parts)


# ---------------------------------------------------------------------------------------------- the two passes


def cached_backward(
    model: SimCSEGSModel,
    inputs: dict[str, Any],
    mini_batch_size: int,
    tau: float | None = None,
    *,
    backward: Callable[[torch.Tensor], None] | None = None,
    autocast: Callable[[], AbstractContextManager] | None = None,
    loss_divisor: float = 1.0,
) -> SimCSEGSOutput:
    """Accumulate into the parameters' ``.grad`` the gradient of the batch's loss / ``loss_divisor``, embedding
    ``mini_batch_size`` examples at a time; returns the loss's outputs (detached: loss, statistics).

    ``backward`` back-propagates pass 2's surrogate (default ``Tensor.backward``; the trainer passes
    ``accelerator.backward``, which applies fp16's loss scaling); ``autocast`` is the mixed-precision context of
    every embedding and of the loss (the trainer's ``accelerator.autocast``). The RNG ends where pass 1 left it.
    ``model`` is the bare model (not a DDP wrapper): gradients are this process's, see :func:`average_gradients`.
    """
    if mini_batch_size < 1:
        raise ValueError(f"--mini_batch_size must be >= 1, got {mini_batch_size}.")
    backward = backward or torch.Tensor.backward
    autocast = autocast or nullcontext
    chunks = chunk_inputs(inputs, mini_batch_size)
    device = inputs["input_ids"].device

    # pass 1: every chunk without a graph, then the whole batch's loss on leaf copies
    states, parts = [], []
    with torch.set_grad_enabled(_draws_depend_on_graph(model)):
        for chunk in chunks:
            states.append(RngState(device))
            with autocast():
                part = model.embed_views(**chunk, tau=tau)
            parts.append(_replace(_per_example_log_prob(part), torch.Tensor.detach))  # the graph goes here
            del part
    after_pass_one = RngState(device)
    leaf_parts = [_replace(part, _leaf) for part in parts]
    with autocast():
        outputs = loss_of_parts(model, leaf_parts)
    leaves = [t for part in leaf_parts for t in _tensors(part) if t.requires_grad]
    grads = dict(zip(map(id, leaves), torch.autograd.grad(outputs.loss / loss_divisor, leaves, allow_unused=True)))
    cached = [[grads.get(id(t)) if t.requires_grad else None for t in _tensors(part)] for part in leaf_parts]
    del leaves, grads, leaf_parts

    # pass 2: each chunk again, from its RNG state, with a graph; back-propagate <tensor, cached gradient>
    for k, (chunk, first, chunk_grads) in enumerate(zip(chunks, parts, cached)):
        states[k].restore()
        with autocast():
            part = _per_example_log_prob(model.embed_views(**chunk, tau=tau))
        tensors = list(_tensors(part))
        drew_alike = (states[k + 1] if k + 1 < len(states) else after_pass_one).same_as(RngState(device))
        if not drew_alike or [t.shape for t in tensors] != [t.shape for t in _tensors(first)]:
            raise RuntimeError(
                "The cached loss (--mini_batch_size) replayed a chunk that drew other random numbers, or gave "
                "outputs of other shapes, than its first pass: the model's forward is not a function of the RNG "
                "state alone (does it branch on torch.is_grad_enabled() / requires_grad?). Its gradients would be "
                "wrong; train without --mini_batch_size."
            )
        terms = [(t.to(g.dtype) * g).sum() for t, g in zip(tensors, chunk_grads) if g is not None and t.requires_grad]
        if terms:
            backward(torch.stack(terms).sum())
    after_pass_one.restore()
    return _detached(outputs)


def _draws_depend_on_graph(model: SimCSEGSModel) -> bool:
    """Whether pass 1 must record a graph to draw what pass 2 draws: the renormalised attention runs one more
    attention call (with its own dropout) when the keep weights require gradients (:mod:`..model.attention`), so
    without a graph the later layers' dropout masks would come from other random numbers. Pass 1 then builds each
    chunk's graph and frees it at once: the same peak memory as pass 2, a few percent more time."""
    return bool(model.config.gs_attn_renorm) and model.keep_policy.uses_proxy


def _detached(outputs: SimCSEGSOutput) -> SimCSEGSOutput:
    """The outputs without references to pass 1's leaves (so nothing of the step outlives it)."""
    for key, value in outputs.items():
        if isinstance(value, torch.Tensor):
            outputs[key] = value.detach()
    return outputs


# ---------------------------------------------------------------------------------------------- DDP


def average_gradients(module: torch.nn.Module, check: bool = False) -> None:
    """Average the parameters' gradients over the processes (DDP's all-reduce, done by hand because the cached loss
    does not run DDP's forward); a no-op outside a process group of several.

    Every process must hold gradients for the same parameters (they run the same graph); ``check`` verifies it
    first (one host sync; the trainer checks at its first step) and says so instead of hanging in a collective of
    mismatched sizes. Gradients go in flat buckets of 32 MiB per dtype and device, one collective each.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    world = dist.get_world_size()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if check:
        mine = torch.tensor([len(grads), sum(g.numel() for g in grads)], dtype=torch.long, device=_comm_device(grads))
        every = [torch.zeros_like(mine) for _ in range(world)]
        dist.all_gather(every, mine)
        if any(not torch.equal(other, mine) for other in every):
            raise RuntimeError(
                "The processes hold gradients for different parameters ([count, elements] per rank: "
                f"{[o.tolist() for o in every]}), so the cached loss (--mini_batch_size) cannot average them. Every "
                "process must run the same model and objective."
            )
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for g in grads:
        groups.setdefault((g.dtype, g.device), []).append(g)
    for group in groups.values():
        for bucket in _buckets(group):
            flat = torch.cat([g.reshape(-1) for g in bucket]).div_(world)
            dist.all_reduce(flat)
            offset = 0
            for g in bucket:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()


def _buckets(grads: list[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    size = 0
    for g in grads:
        if bucket and size + g.numel() * g.element_size() > _BUCKET_BYTES:
            yield bucket
            bucket, size = [], 0
        bucket.append(g)
        size += g.numel() * g.element_size()
    if bucket:
        yield bucket


def _comm_device(grads: list[torch.Tensor]) -> torch.device:
    """Where the process group's collectives run: the gradients' device (NCCL needs CUDA tensors), else the CPU."""
    return grads[0].device if grads else torch.device("cpu")
