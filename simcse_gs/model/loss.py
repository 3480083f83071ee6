"""SimCSE's contrastive loss: InfoNCE over cosine similarities / temperature, with optional hard negatives.

Row i of the logits is ``cos(z1_i, z2_j) / temp`` for every j in the (global) batch, followed, when hard
negatives are given, by ``cos(z1_i, z3_j) / temp`` for every j; the target of row i is column i. SimCSE's
``hard_negative_weight`` is added to the logit of each row's *own* hard negative (it is the log of a weight:
0 leaves the loss unchanged).

Under DDP the embeddings of all processes are gathered first, so the negatives grow with the world size.
``torch.distributed.nn.functional.all_gather`` sums the gradients of every process's copy back to the owner;
with every process computing the same global loss and DDP averaging, the gradients equal those of one
process on the whole batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """Concatenate ``z`` from every process (in rank order), differentiably; identity outside DDP."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z.contiguous()), dim=0)


def sum_across_processes(x: torch.Tensor) -> torch.Tensor:
    """Sum ``x`` over every process, differentiably (the backward sums the gradients back, as the gather's does);
    identity outside DDP. With DDP averaging, a term computed from such a global sum gets its one-process gradient."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x)


def contrastive_logits(
    z1: torch.Tensor, z2: torch.Tensor, z3: torch.Tensor | None, temp: float, hard_negative_weight: float = 0.0
) -> torch.Tensor:
    """The [N, N] (or [N, 2N] with hard negatives) logit matrix of the loss above."""
    z1, z2 = F.normalize(z1.float(), dim=-1), F.normalize(z2.float(), dim=-1)
    logits = z1 @ z2.T / temp
    if z3 is not None:
        hard = F.normalize(z3.float(), dim=-1)
        hard_logits = z1 @ hard.T / temp
        if hard_negative_weight:
            hard_logits = hard_logits + hard_negative_weight * torch.eye(len(z1), device=z1.device)
        logits = torch.cat([logits, hard_logits], dim=1)
    return logits


class ContrastiveLoss(nn.Module):
    """``loss(z1, z2, z3=None)``: mean cross-entropy of :func:`contrastive_logits` against the diagonal."""

    def __init__(self, temp: float = 0.05, hard_negative_weight: float = 0.0):
        super().__init__()
        if temp <= 0:
            raise ValueError(f"temp must be > 0 (got {temp}).")
        self.temp = temp
        self.hard_negative_weight = hard_negative_weight

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, z3: torch.Tensor | None = None) -> torch.Tensor:
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
        z3 = gather_with_grad(z3) if z3 is not None else None
        if len(z1) < 2 and z3 is None:
            raise ValueError(
                "The contrastive loss needs at least 2 sentences per (global) batch: with 1 there is no negative "
                "and the loss is 0. Raise --per_device_train_batch_size, or pass --dataloader_drop_last when the "
                "data leaves a last batch of one."
            )
        logits = contrastive_logits(z1, z2, z3, self.temp, self.hard_negative_weight)
        return F.cross_entropy(logits, torch.arange(len(z1), device=logits.device))
