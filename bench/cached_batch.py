"""The cached contrastive loss (``--mini_batch_size``) against the full batch: peak memory and time per example.

One training step = forward + backward + AdamW (fused, as the Trainer's default) of unsupervised SimCSE on B real
wiki sentences, each truncated / padded to exactly ``--max-len`` tokens and encoded twice, dropout on:

* ``full``    ``model(**batch).loss.backward()``: every activation of the batch at once;
* ``cached``  :func:`simcse_gs.training.cached_loss.cached_backward` in chunks of ``--mini-batch`` examples: pass 1
              without graph, the loss of the whole batch on leaf copies, pass 2 chunk by chunk with graph.

Each configuration (variant, B) runs in a **fresh process**, so its peak resident set (``VmHWM``) is its own: the
peak over the steps, and its increase over the RSS right after building the model and the batches (activations,
gradients, AdamW state, and what the allocator keeps). ``tracemalloc`` would not see torch's tensors, and
``ru_maxrss`` inherits the parent's peak (see :func:`bench.common.peak_rss_kib`). Time: median seconds per step over
``--steps`` steps after ``--warmup``, divided by B. The script prints the ratios of one run last.

Targets: cached peak-RSS increase flat in B (largest / smallest B <= 1.25); cached time per example <= 1.35 x the full
batch's at the same B; cached at the largest B below the full batch's peak at 128 (``--target-full``).

    OMP_NUM_THREADS=1 python -m bench.cached_batch --threads 1              # packaged MiniLM (minutes)
    python -m bench.cached_batch --quick                                    # tiny random model, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import torch

from bench.common import (
    MEMORY_TAG,
    current_rss_kib,
    fixed_batches,
    machine_info,
    med,
    memory_children,
    peak_rss_kib,
    print_machine,
    print_table,
    quiet,
    read_sentences,
    report,
    resolve_model,
    set_threads,
    verdict,
)
from simcse_gs.model import SimCSEGSModel
from simcse_gs.training.cached_loss import cached_backward


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=("minilm", "bert-base", "tiny"), default="minilm")
    p.add_argument("--model-path", default=None, help="use this backbone checkpoint instead of --config")
    p.add_argument("--full-sizes", default="32,64,128,256", help="batch sizes of the full batch")
    p.add_argument("--cached-sizes", default="128,256,512,1024", help="batch sizes of the cached loss")
    p.add_argument("--mini-batch", type=int, default=64, help="examples per chunk of the cached loss")
    p.add_argument("--target-full", type=int, default=128, help="the full batch the largest cached one must beat")
    p.add_argument("--max-len", type=int, default=32)
    p.add_argument("--steps", type=int, default=2, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (AdamW allocates its state there)")
    p.add_argument("--use-gs", action="store_true", help="GS (soft, tau 1) instead of plain SimCSE")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: CPU autocast")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="write everything measured here")
    p.add_argument("--quick", action="store_true", help="tiny random model, small batches: a smoke run")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)  # internal: "variant:B"
    args = p.parse_args(argv)
    if args.quick:
        args.config = "tiny"
        args.full_sizes, args.cached_sizes, args.mini_batch, args.target_full = "4,8", "8,16", 4, 8
        args.steps, args.warmup = 1, 1
    return args


def sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def build(model_path: str, use_gs: bool) -> SimCSEGSModel:
    torch.manual_seed(0)
    model = SimCSEGSModel.from_backbone(model_path, use_gs=use_gs, pooler_type="avg")
    return model.train()


def child(args: argparse.Namespace, model_path: str) -> dict[str, Any]:
    """One configuration in this (fresh) process: steps, step times, peak RSS."""
    variant, batch_size = args.memory_child.split(":")
    batch_size = int(batch_size)
    set_threads(args.threads)
    model = build(model_path, args.use_gs)
    batches = fixed_batches(model.tokenizer, read_sentences(batch_size * (args.warmup + args.steps)), batch_size,
                            args.max_len, args.warmup + args.steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5, fused=True)
    tau = 1.0 if args.use_gs else None

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step(batch: dict[str, torch.Tensor]) -> float:
        if variant == "full":
            with autocast():
                loss = model(**batch, tau=tau).loss
            loss.backward()
        else:
            loss = cached_backward(model, batch, args.mini_batch, tau, autocast=autocast).loss
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    base = current_rss_kib()
    times, losses = [], []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        losses.append(step(batch))
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = peak_rss_kib()
    return {"variant": variant, "batch": batch_size, "step_s": med(times), "times": times, "losses": losses,
            "ms_per_example": 1000 * med(times) / batch_size, "peak_mib": peak / 1024,
            "increase_mib": (peak - base) / 1024, "base_mib": base / 1024}


def child_argv(args: argparse.Namespace, model_path: str) -> list[str]:
    argv = ["--model-path", model_path, "--mini-batch", str(args.mini_batch), "--max-len", str(args.max_len),
            "--steps", str(args.steps), "--warmup", str(args.warmup), "--precision", args.precision]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    return argv + (["--use-gs"] if args.use_gs else [])


def summarise(args: argparse.Namespace, runs: dict[str, dict[str, Any]]) -> list[str]:
    """The ratios of this run, and the verdict on each target."""
    full = {r["batch"]: r for r in runs.values() if r["variant"] == "full"}
    cached = {r["batch"]: r for r in runs.values() if r["variant"] == "cached"}
    lines = []
    for b in sorted(set(full) & set(cached)):
        ratio = cached[b]["ms_per_example"] / full[b]["ms_per_example"]
        lines.append(f"time per example, cached / full at B={b}: {ratio:.3f} "
                     f"(target <= 1.35: {verdict(ratio <= 1.35)})")
    for b in sorted(set(full) & set(cached)):
        lines.append(f"peak RSS increase, cached / full at B={b}: "
                     f"{cached[b]['increase_mib'] / full[b]['increase_mib']:.3f}")
    if len(cached) > 1:
        lo, hi = min(cached), max(cached)
        flat = cached[hi]["increase_mib"] / cached[lo]["increase_mib"]
        lines.append(f"cached peak RSS increase, B={hi} / B={lo}: {flat:.3f} (flat, target <= 1.25: "
                     f"{verdict(flat <= 1.25)})")
    if cached and args.target_full in full:
        hi = max(cached)
        c, f = cached[hi], full[args.target_full]
        lines.append(f"cached B={hi} peak RSS {c['peak_mib']:.0f} MiB vs full B={args.target_full} "
                     f"{f['peak_mib']:.0f} MiB: {c['peak_mib'] / f['peak_mib']:.3f} (target < 1: "
                     f"{verdict(c['peak_mib'] < f['peak_mib'])})")
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    quiet()
    with tempfile.TemporaryDirectory() as workdir:
        model_path = resolve_model(args.config, args.model_path, workdir)
        if args.memory_child:
            result = child(args, model_path)
            print(MEMORY_TAG + json.dumps(result), flush=True)
            return result
        info = machine_info()
        print_machine(info)
        variants = [f"full:{b}" for b in sizes(args.full_sizes)] + [f"cached:{b}" for b in sizes(args.cached_sizes)]
        print(f"{len(variants)} configurations, each in a fresh process: {', '.join(variants)}", flush=True)
        start = time.perf_counter()
        runs = memory_children("bench.cached_batch", variants, child_argv(args, model_path), timeout=3600)
    rows = [[r["variant"], r["batch"], f"{r['step_s']:.3f}", f"{r['ms_per_example']:.2f}", f"{r['peak_mib']:.0f}",
             f"{r['increase_mib']:.0f}"] for r in runs.values()]
    print()
    print_table(["variant", "B", "median s/step", "ms/example", "peak RSS MiB", "increase MiB"], rows)
    result = {"machine": info, "args": vars(args), "runs": runs, "wall_s": time.perf_counter() - start}
    return report(result, summarise(args, runs), args.json)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main(sys.argv[1:])
