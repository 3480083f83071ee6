"""Run under torchrun by test_distributed.py: one DDP step of the contrastive loss on a fixed global batch.

Each process takes its contiguous shard of the global batch; rank 0 writes the loss and all gradients.
Dropout is off so that the only difference between 1 and N processes is the cross-process gather.
"""

import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from simcse_gs.modeling import SimCSEGSModel

SENTENCES = [f"sentence number {i} talks about {w}" for i, w in enumerate("cats dogs rain stocks music art".split())]


def main(model_dir: str, out_file: str) -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))  # fail, never hang
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = SimCSEGSModel.from_backbone(model_dir, use_gs=False, pooler_type="cls")
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    model.train()
    ddp = nn.parallel.DistributedDataParallel(model)
    enc = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    shard = slice(rank * len(SENTENCES) // world, (rank + 1) * len(SENTENCES) // world)
    batch = {k: v[shard].unsqueeze(1) for k, v in enc.items()}  # [B, 1, L]: unsupervised
    out = ddp(**batch)
    out.loss.backward()
    if rank == 0:
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        torch.save({"loss": out.loss.detach(), "grads": grads}, out_file)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
