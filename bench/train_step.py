"""Training-step cost: plain SimCSE vs the attention patch alone vs GS (sdpa path, eager reference) vs the proxy.

One step = forward + backward + AdamW step (fused, as the HF Trainer uses; ``--optim``) on an unsupervised batch
[B, 1, L] (each sentence encoded twice), real wiki sentences truncated / padded to exactly L tokens. Variants, each
its own model and optimizer built from the same checkpoint with ``torch.manual_seed`` set, all in ``train()`` mode
(dropout on), pooler ``avg``:

* ``plain``    ``SimCSEGSModel.from_backbone(use_gs=False)``; ``model(**batch).loss``.
* ``patch``    the same plain model, then ``enable_token_keep(model.backbone, 'sdpa')``; the step mirrors
               ``forward`` for V=1 but passes ``token_keep=ones`` through ``model.embed``: every layer's attention
               goes through the patched function and scales V by p=1. No proxy, no sampling, plain pooling.
* ``gs_sdpa``  ``from_backbone(use_gs=True, gs_attn_impl='sdpa')``; ``model(**batch, tau=1.0).loss``.
* ``gs_eager`` the same with ``gs_attn_impl='eager'`` (explicit probabilities, the reference).
* ``proxy``    the proxy alone: ``model.keep_weights`` (proxy forward once on the B sentences, keep statistics, two
               Gumbel samples) + backward of a fixed random projection of the samples + AdamW step on the proxy's
               parameters only. This is the "proxy cost" in the GS target.
* ``proxy_fb`` the same without the optimizer step (proxy forward + backward alone), for information.
* ``pruned``   in-encoder pruning in training (:mod:`simcse_gs.model.layer_pruning`): ``from_backbone(use_gs=False,
               prune_layers=--prune-layers, prune_keep_rates=--prune-rates, prune_scorer=--prune-scorer)``; the
               dropped tokens are removed from the layers after each prune point; ``model(**batch, tau=1.0).loss``.
* ``pruned_distill`` the same with ``distill_weight=1`` (cosine): one extra full-token forward without graph for
               the self-distillation target.

Targets: patch <= 1.05 x plain; gs_sdpa <= plain + proxy + 5 % of plain; pruned <= 0.85 x plain at a keep rate
<= 0.6 after the prune point (issue 20).

    python -m bench.train_step                      # packaged MiniLM (6 x 384)
    MALLOC_MMAP_THRESHOLD_=131072 python -m bench.train_step --config bert-base   # random 12 x 768 BERT
    python -m bench.train_step --quick              # tiny random model, seconds
    python -m bench.train_step --variants plain,pruned,pruned_distill --prune-layers 2 --prune-rates 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch

from bench.common import (
    MEMORY_TAG,
    current_rss_kib,
    fixed_batches,
    interleaved,
    machine_info,
    med,
    memory_children,
    peak_rss_kib,
    print_machine,
    print_table,
    quiet,
    read_sentences,
    resolve_model,
    saved_activation_bytes,
    set_threads,
    spread,
    sync,
    verdict,
)
from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.attention import enable_token_keep

VARIANTS = ("plain", "patch", "gs_sdpa", "gs_eager", "proxy", "proxy_fb", "pruned", "pruned_distill")
PRUNED = ("pruned", "pruned_distill")
TAU = 1.0  # the schedule's starting temperature


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=("minilm", "bert-base", "tiny"), default="minilm",
                   help="minilm: packaged all-MiniLM-L6-v2; bert-base: random 12x768 BERT; tiny: random 2x32")
    p.add_argument("--model-path", default=None, help="use this backbone checkpoint instead of --config")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-len", type=int, default=32)
    p.add_argument("--reps", type=int, default=None, help="timed rounds (default 7; 4 for bert-base)")
    p.add_argument("--warmup", type=int, default=None, help="untimed rounds first (default 2; 1 for bert-base)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    p.add_argument("--pooler", default="avg")
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--optim", choices=tuple(OPTIM_KWARGS), default="fused",
                   help="AdamW implementation: fused (the HF Trainer's default), foreach, or loop (per-tensor)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--memory", choices=("both", "saved", "rss", "none"), default="both",
                   help="saved: bytes autograd saves for backward; rss: peak RSS of a fresh process per variant")
    p.add_argument("--prune-layers", default=None,
                   help="pruned variants: prune after these layers, comma-separated (default 2; 1 with --quick)")
    p.add_argument("--prune-rates", default="0.5", help="pruned variants: keep rate after each prune point")
    p.add_argument("--prune-scorer", default="learned", help="pruned variants: the scorer (learned, attention, ...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny random model, batch 8, 2 rounds")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.config = "tiny" if args.model_path is None else args.config
        args.batch_size, args.reps, args.warmup = 8, 2, 1
        args.memory = "saved" if args.memory == "both" else args.memory
    big = args.config == "bert-base"
    args.reps = args.reps or (4 if big else 7)
    args.warmup = args.warmup if args.warmup is not None else (1 if big else 2)
    args.variant_list = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(args.variant_list) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}")
    args.prune_layers = args.prune_layers or ("1" if args.quick or args.config == "tiny" else "2")
    args.prune = {"prune_layers": [int(x) for x in args.prune_layers.split(",")],
                  "prune_keep_rates": [float(x) for x in args.prune_rates.split(",")],
                  "prune_scorer": args.prune_scorer}
    return args


# ---------------------------------------------------------------------------------------------- variants


def build(variant: str, path: str, pooler: str, seed: int, device: str,
          prune: dict[str, Any] | None = None) -> SimCSEGSModel:
    torch.manual_seed(seed)
    use_gs = variant in ("gs_sdpa", "gs_eager", "proxy", "proxy_fb")
    impl = "eager" if variant == "gs_eager" else "sdpa"
    extra: dict[str, Any] = {}
    if variant in PRUNED:
        if prune is None:
            raise ValueError(f"the {variant} variant needs its pruning schedule (--prune-layers, --prune-rates)")
        extra = dict(prune)
        extra["distill_weight"] = 1.0 if variant == "pruned_distill" else 0.0
    model = SimCSEGSModel.from_backbone(path, use_gs=use_gs, pooler_type=pooler, gs_attn_impl=impl, **extra)
    if variant == "patch":
        enable_token_keep(model.backbone, "sdpa")
    if variant in ("proxy", "proxy_fb"):
        model.backbone = None  # not used by the proxy alone; frees its weights (matters for bert-base on 24 GiB)
    return model.to(device).train()


def _flat(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    types = batch.get("token_type_ids")
    return batch["input_ids"][:, 0], batch["attention_mask"][:, 0], None if types is None else types[:, 0]


def patch_alone_loss(model: SimCSEGSModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``forward`` for V=1 with ``token_keep = 1`` handed to every attention layer (needs enable_token_keep)."""
    ids, mask, types = _flat(batch)
    n = ids.shape[0]
    ids, mask = ids.repeat(2, 1), mask.repeat(2, 1)
    types = None if types is None else types.repeat(2, 1)
    keep = torch.ones(ids.shape, dtype=torch.float32, device=ids.device)
    z = model.embed(ids, mask, types, keep).view(2, n, -1)
    return model.loss_fn(z[0], z[1])


def proxy_alone_loss(model: SimCSEGSModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The GS keep-weight machinery alone, reduced to a scalar with a fixed random projection (for backward)."""
    ids, mask, types = _flat(batch)
    kwargs = {} if types is None else {"token_type_ids": types}
    keep = model.keep_weights(ids, mask, 2, TAU, **kwargs).stacked()
    gen = torch.Generator(device="cpu").manual_seed(1)
    weights = torch.randn(keep.shape, generator=gen).to(keep.device)
    return (keep * weights).sum()


def loss_fn_for(variant: str) -> Callable[[SimCSEGSModel, dict[str, torch.Tensor]], torch.Tensor]:
    if variant == "patch":
        return patch_alone_loss
    if variant in ("proxy", "proxy_fb"):
        return proxy_alone_loss
    if variant == "plain":
        return lambda m, b: m(**b).loss
    return lambda m, b: m(**b, tau=TAU).loss


OPTIM_KWARGS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}


def optimizer_for(variant: str, model: SimCSEGSModel, lr: float, optim: str = "fused") -> torch.optim.Optimizer:
    """AdamW; ``fused`` is what the Hugging Face Trainer (so train.py) uses by default (``adamw_torch_fused``)."""
    params = model.proxy.parameters() if variant in ("proxy", "proxy_fb") else model.parameters()
    return torch.optim.AdamW(params, lr=lr, **OPTIM_KWARGS[optim])


def make_step(variant: str, model: SimCSEGSModel, opt: torch.optim.Optimizer,
              batches: list[dict[str, torch.Tensor]]) -> Callable[[int], float]:
    loss_fn = loss_fn_for(variant)

    def step(r: int) -> float:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, batches[r % len(batches)])
        loss.backward()
        if variant != "proxy_fb":
            opt.step()
        return float(loss.detach())

    return step


# ---------------------------------------------------------------------------------------------- run


def _setup(args: argparse.Namespace, workdir: str) -> tuple[str, list[dict[str, torch.Tensor]]]:
    from transformers import AutoTokenizer

    path = resolve_model(args.config, args.model_path, workdir)
    tok = AutoTokenizer.from_pretrained(path)
    n_batches = max(1, min(args.reps, 8))
    sentences = read_sentences(args.batch_size * n_batches)
    return path, fixed_batches(tok, sentences, args.batch_size, args.max_len, n_batches, args.device)


def memory_child(args: argparse.Namespace) -> None:
    """One variant in a fresh process: peak RSS over 2 steps, relative to RSS after building model and batches."""
    with tempfile.TemporaryDirectory() as workdir:
        path, batches = _setup(args, workdir)
        variant = args.memory_child
        model = build(variant, path, args.pooler, args.seed, args.device, args.prune)
        opt = optimizer_for(variant, model, args.lr, args.optim)
        step = make_step(variant, model, opt, batches)
        before = current_rss_kib()
        peak_before = peak_rss_kib()
        for r in range(2):  # the first step allocates AdamW's state; the second is the steady state
            step(r)
        result = {
            "rss_after_build_mib": before / 1024,
            "peak_rss_mib": peak_rss_kib() / 1024,
            "peak_increase_mib": (peak_rss_kib() - before) / 1024,
            "peak_before_steps_mib": peak_before / 1024,
        }
        print(MEMORY_TAG + json.dumps(result), flush=True)


def cuda_peak_mib(step: Callable[[int], float], device: str) -> float:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    step(0)
    sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def check_patch_identity(plain: SimCSEGSModel, patched: SimCSEGSModel, batch: dict[str, torch.Tensor]) -> float:
    """With dropout off, the patched attention with p = 1 must give plain SimCSE's loss: |difference|.

    Both models come from the same checkpoint and seed and have not been trained yet.
    """
    plain.eval()
    patched.eval()
    with torch.no_grad():
        diff = abs(float(plain(**batch).loss) - float(patch_alone_loss(patched, batch)))
    plain.train()
    patched.train()
    return diff


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.config == "bert-base" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        print("warning: with glibc's adaptive mmap threshold the freed activations of the interleaved models stay in "
              "the heap; for bert-base run with MALLOC_MMAP_THRESHOLD_=131072 to stay well inside 24 GiB "
              "(see docs/PERFORMANCE.md)", flush=True)
    quiet()
    set_threads(args.threads)
    info = machine_info(args.device)
    print_machine(info)
    variants = args.variant_list
    with tempfile.TemporaryDirectory() as workdir:
        path, batches = _setup(args, workdir)
        print(f"backbone: {path} ({args.config}); batch {args.batch_size} x {args.max_len} (x2 views); "
              f"variants {variants}; AdamW {args.optim}; warm-up {args.warmup}, rounds {args.reps}", flush=True)
        models = {v: build(v, path, args.pooler, args.seed, args.device, args.prune) for v in variants}
        identity = None
        if "patch" in variants:
            plain = models.get("plain") or build("plain", path, args.pooler, args.seed, args.device)
            identity = check_patch_identity(plain, models["patch"], batches[0])
            del plain
        opts = {v: optimizer_for(v, models[v], args.lr, args.optim) for v in variants}
        steps = {v: make_step(v, models[v], opts[v], batches) for v in variants}
        n_params = {v: sum(p.numel() for p in models[v].parameters()) for v in variants}

        saved: dict[str, float] = {}
        if args.memory in ("both", "saved"):
            for v in variants:
                model, loss_fn = models[v], loss_fn_for(v)
                saved[v] = saved_activation_bytes(lambda m=model, f=loss_fn: f(m, batches[0]), model) / 2**20
            del model

        times = interleaved(steps, args.reps, args.warmup, args.device)

        cuda_peak: dict[str, float] = {}
        if args.device.startswith("cuda"):
            cuda_peak = {v: cuda_peak_mib(steps[v], args.device) for v in variants}
        del models, opts, steps

        rss: dict[str, dict[str, float]] = {}
        if args.memory in ("both", "rss") and not args.device.startswith("cuda"):
            child_argv = ["--config", args.config, "--batch-size", str(args.batch_size), "--max-len",
                          str(args.max_len), "--reps", str(args.reps), "--pooler", args.pooler, "--seed",
                          str(args.seed), "--device", args.device, "--optim", args.optim, "--prune-layers",
                          args.prune_layers, "--prune-rates", args.prune_rates, "--prune-scorer", args.prune_scorer]
            if args.threads:
                child_argv += ["--threads", str(args.threads)]
            child_argv += ["--model-path", path]
            print("peak memory: one fresh process per variant ...", flush=True)
            rss = memory_children("bench.train_step", variants, child_argv)

    medians = {v: med(times[v]) for v in variants}
    base = medians.get("plain")
    paired = ({v: med([t / p for t, p in zip(times[v], times["plain"])]) for v in variants if v != "plain"}
              if base else {})
    rows = []
    for v in variants:
        rows.append([
            v, f"{medians[v]:.3f}", spread(times[v]), f"{medians[v] / base:.3f}" if base else "-",
            f"{n_params[v] / 1e6:.1f}M",
            f"{saved[v]:.1f}" if v in saved else "-",
            f"{rss[v]['peak_increase_mib']:.0f}" if v in rss else "-",
            f"{rss[v]['peak_rss_mib']:.0f}" if v in rss else "-",
            f"{cuda_peak[v]:.0f}" if v in cuda_peak else "-",
        ])
    print()
    print_table(["variant", "median s", "min-max s", "x plain", "params", "saved-for-bwd MiB",
                 "peak RSS incr MiB", "peak RSS MiB", "cuda peak MiB"], rows)

    result: dict[str, Any] = {"machine": info, "args": {k: v for k, v in vars(args).items() if k != "memory_child"},
                              "backbone": path, "times": times, "median_s": medians, "saved_mib": saved,
                              "rss": rss, "cuda_peak_mib": cuda_peak, "patch_identity_loss_diff": identity,
                              "paired_ratio_medians": paired, "parent_peak_rss_mib": peak_rss_kib() / 1024}
    ratios: dict[str, float] = {}
    targets: list[str] = []
    if base:
        ratios = {f"{v}/plain": medians[v] / base for v in variants if v != "plain"}
        if "patch" in medians:
            ok = medians["patch"] <= 1.05 * base
            targets.append(f"patch alone <= 1.05 x plain: {medians['patch'] / base:.3f} -> {verdict(ok)}")
        if "gs_sdpa" in medians and "proxy" in medians:
            bound = 1 + medians["proxy"] / base + 0.05
            ok = medians["gs_sdpa"] <= bound * base
            resid = (medians["gs_sdpa"] - base - medians["proxy"]) / base
            targets.append(f"gs_sdpa <= plain + proxy + 5%: {medians['gs_sdpa'] / base:.3f} vs bound {bound:.3f} "
                           f"(residual overhead beyond the proxy {100 * resid:+.1f}% of plain) -> {verdict(ok)}")
            result["gs_bound"] = bound
            result["gs_residual_overhead"] = resid
            if "proxy_fb" in medians:
                bound_fb = 1 + medians["proxy_fb"] / base + 0.05
                targets.append(f"  with the proxy cost taken as forward + backward only (no optimizer step): bound "
                               f"{bound_fb:.3f} -> {verdict(medians['gs_sdpa'] <= bound_fb * base)}")
        rates = args.prune["prune_keep_rates"]
        for v in (v for v in PRUNED if v in medians):
            if v == "pruned" and rates[-1] <= 0.6:
                ok = medians[v] <= 0.85 * base
                targets.append(f"pruned (keep {rates[-1]} after layer {args.prune['prune_layers'][-1]}) <= 0.85 x "
                               f"plain: {medians[v] / base:.3f} -> {verdict(ok)}")
            else:
                targets.append(f"{v} (keep {','.join(map(str, rates))}, for information): {medians[v] / base:.3f}")
    result["ratios"] = ratios
    result["targets"] = targets
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, default=str)
    print()
    if identity is not None:
        print(f"check: |loss(plain) - loss(patch, p=1)| with dropout off = {identity:.2e}")
    for line in targets:
        print("target: " + line)
    if paired:
        print("ratios vs plain, median of per-round ratios: " + ", ".join(f"{k}/plain = {v:.3f}"
                                                                         for k, v in paired.items()))
    print("ratios vs plain (median step time): " + ", ".join(f"{k} = {v:.3f}" for k, v in ratios.items()),
          flush=True)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.memory_child:
        quiet()
        set_threads(args.threads)
        memory_child(args)
        return None
    return run(args)


if __name__ == "__main__":
    main()
