"""GPU check: fp32 vs bf16 vs fp16 (autocast) step time of plain SimCSE vs GS, and which SDPA kernels GS can use.

Needs only torch, transformers and this repository (no tokenizer, checkpoint or data: a random BERT-base-sized
model, 12 layers x 768, vocabulary 30522, and random token ids with realistic padding, lengths 8..L).

1. Step time (forward + backward + AdamW, dropout on) at batch 64 x 32 and 512 x 32, for fp32, bf16 autocast and
   fp16 autocast + GradScaler; variants interleaved, medians; peak memory by ``torch.cuda.max_memory_allocated``:

   * ``plain``: plain SimCSE; ``patch``: the same with the token-keep attention and p = 1 (the patch alone);
   * ``gs_sdpa`` / ``gs_eager``: GS with the value-scaling / explicit-probability attention;
   * ``gs_sdpa_sync``: gs_sdpa plus the host syncs the training step had before they were removed (keep statistics
     read as floats after the proxy, the logged values and the finiteness read after the loss): prices them;
   * ``plain_nomasksync``: plain without transformers' own per-forward sync (``padding_mask.all()``, asked before
     building the SDPA mask; every batch here has padding, so the mask is the same): prices the one left.

   The bf16 matmul peak is measured in the same run (8192^3 products), and each step's model FLOP utilisation
   (MFU) is reported against it: 6 x (the encoder's matmul parameters x tokens) + the attention products, every
   padded position counted.
2. Kernels: the forward + backward of ``plain`` and ``gs_sdpa`` run inside ``sdpa_kernel([...])`` restricted to
   FLASH, EFFICIENT, or both (a restriction that no kernel satisfies raises), in train mode (dropout) and eval
   mode, with and without padding; and a profiler listing of the attention kernels actually launched.

Writes ``gpu_precision.json`` and ``gpu_precision.md`` to ``--out-dir`` (default ``$OUT``, else the current folder).

    bash bench/device/device_check.sh                                  # on the GPU machine: its part b runs this
    python -m bench.device.gpu_precision --quick --device cpu          # syntax / flow check on a CPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
import traceback
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from transformers import BertConfig

import simcse_gs.model.keep_policy as keep_policy
from bench.common import interleaved, machine_info, med, quiet, spread
from simcse_gs.model import SimCSEGSConfig, SimCSEGSModel
from simcse_gs.model.attention import enable_token_keep
from simcse_gs.model.keep import keep_statistic_tensors

VARIANTS = ("plain", "patch", "gs_sdpa", "gs_eager", "gs_sdpa_sync", "plain_nomasksync")
PLAIN_VARIANTS = ("plain", "patch", "plain_nomasksync")
SPECIAL = (101, 102)  # [CLS], [SEP] of the uncased BERT vocabulary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--batches", default="64,512")
    p.add_argument("--max-len", type=int, default=32)
    p.add_argument("--precisions", default="fp32,bf16,fp16")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=240, help="skip remaining timing cases after this long")
    p.add_argument("--out-dir", default=os.environ.get("OUT") or ".")
    p.add_argument("--quick", action="store_true", help="tiny model, small batches, 2 rounds")
    args = p.parse_args(argv)
    if args.quick:
        args.batches, args.reps, args.warmup, args.max_len = "4", 2, 1, 16
    return args


# ---------------------------------------------------------------------------------------------- model and data


def bert_config(quick: bool, layers: int | None = None) -> BertConfig:
    if quick:
        return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers or 2, num_attention_heads=4,
                          intermediate_size=64)
    return BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=layers or 12, num_attention_heads=12,
                      intermediate_size=3072)


def build(variant: str, quick: bool, device: str) -> SimCSEGSModel:
    torch.manual_seed(0)
    use_gs = variant not in PLAIN_VARIANTS
    cfg = SimCSEGSConfig(
        backbone_config=bert_config(quick).to_dict(),
        proxy_config=bert_config(quick, layers=2).to_dict() if use_gs else None,
        special_token_ids=list(SPECIAL), pooler_type="avg", use_gs=use_gs,
        gs_attn_impl="eager" if variant == "gs_eager" else "sdpa",
    )
    model = SimCSEGSModel(cfg)
    if variant == "patch":
        enable_token_keep(model.backbone, "sdpa")
    return model.to(device).train()


def random_batch(batch: int, length: int, device: str, padded: bool = True, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (batch, length), generator=gen)
    lengths = torch.randint(8, length + 1, (batch,), generator=gen) if padded else torch.full((batch,), length)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    ids[:, 0] = SPECIAL[0]
    ids[torch.arange(batch), lengths - 1] = SPECIAL[1]
    ids = ids * mask
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return {k: v.unsqueeze(1).to(device) for k, v in out.items()}


def _autocast(precision: str, device: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def _keep_statistics_read_on_the_host(keep_prob, hard_keep, decided):
    """The keep statistics as the training step computed them before: floats on the host, copied back."""
    stats = keep_statistic_tensors(keep_prob, hard_keep, decided)
    return {k: torch.as_tensor(float(v), device=keep_prob.device) for k, v in stats.items()}


def _loss(variant: str, model: SimCSEGSModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    if variant == "patch":  # forward for V=1 with p = 1 handed to every layer's patched attention
        from bench.train_step import patch_alone_loss

        return patch_alone_loss(model, batch)
    if variant in PLAIN_VARIANTS:
        return model(**batch).loss
    out = model(**batch, tau=1.0)
    if variant == "gs_sdpa_sync":  # what compute_loss read per step before: every logged output, the finiteness
        [float(out[k]) for k in ("contrastive_loss", "keep_prob", "keep_rate", "keep_entropy")]
        bool(torch.isfinite(out.loss))
    return out.loss


def make_step(variant: str, model: SimCSEGSModel, opt, scaler, batch, precision: str, device: str):
    patches = []
    if variant == "gs_sdpa_sync":
        patches.append(mock.patch.object(keep_policy, "keep_statistic_tensors", _keep_statistics_read_on_the_host))
    if variant == "plain_nomasksync":
        import transformers.masking_utils as masking_utils

        patches.append(mock.patch.object(masking_utils, "_ignore_bidirectional_mask_sdpa", lambda *a, **k: False))

    def step(_r: int) -> None:
        opt.zero_grad(set_to_none=True)
        with contextlib.ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch)
            with _autocast(precision, device):
                loss = _loss(variant, model, batch)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    return step


# ---------------------------------------------------------------------------------------------- parts


def matmul_peak_tflops(device: str, dtype: torch.dtype, n: int = 8192, reps: int = 20) -> float | None:
    """Measured dense matmul throughput (TFLOP/s) of an n^3 product: the peak MFU is reported against."""
    if not device.startswith("cuda"):
        return None
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def step_flops(config: BertConfig, n_sequences: int, length: int) -> float:
    """Model FLOPs of one training step of the encoder (forward + backward = 3 x forward): per token and layer,
    2 x (Q, K, V, O and the two FFN matrices) + 2 x 2 x length x hidden for QK^T and PV."""
    h, i = config.hidden_size, config.intermediate_size
    per_token_layer = 2 * (4 * h * h + 2 * h * i) + 4 * length * h
    return 3.0 * n_sequences * length * config.num_hidden_layers * per_token_layer


def timing(args: argparse.Namespace, t_start: float) -> list[dict[str, Any]]:
    variants = [v for v in args.variants.split(",") if v]
    models = {v: build(v, args.quick, args.device) for v in variants}
    opts = {v: torch.optim.AdamW(models[v].parameters(), lr=3e-5) for v in variants}
    rows: list[dict[str, Any]] = []
    for batch_size in [int(b) for b in args.batches.split(",")]:
        batch = random_batch(batch_size, args.max_len, args.device)
        for precision in args.precisions.split(","):
            if time.perf_counter() - t_start > args.budget_s:
                rows.append({"batch": batch_size, "precision": precision, "skipped": "time budget"})
                continue
            scalers = {v: torch.amp.GradScaler(torch.device(args.device).type) if precision == "fp16" else None
                       for v in variants}
            steps = {v: make_step(v, models[v], opts[v], scalers[v], batch, precision, args.device)
                     for v in variants}
            print(f"batch {batch_size} x {args.max_len}, {precision}", flush=True)
            try:
                times = interleaved(steps, args.reps, args.warmup, args.device, log=False)
            except Exception as err:  # noqa: BLE001 - record and go on with the other cases
                rows.append({"batch": batch_size, "precision": precision, "error": repr(err)[:500]})
                continue
            peaks = {}
            for v in variants:
                if args.device.startswith("cuda"):
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(args.device)
                    steps[v](0)
                    torch.cuda.synchronize(args.device)
                    peaks[v] = torch.cuda.max_memory_allocated(args.device) / 2**20
            base = med(times["plain"]) if "plain" in times else None
            flops = step_flops(bert_config(args.quick), 2 * batch_size, args.max_len)  # two views per sentence
            for v in variants:
                m = med(times[v])
                peak = args.matmul_peak_tflops.get(precision)
                rows.append({"batch": batch_size, "precision": precision, "variant": v, "median_ms": 1000 * m,
                             "spread_s": spread(times[v]), "x_plain": m / base if base else None,
                             "sentences_per_s": batch_size / m, "peak_mib": peaks.get(v),
                             "model_tflops": flops / m / 1e12,
                             "mfu": flops / m / 1e12 / peak if peak and v in PLAIN_VARIANTS else None})
                print(f"  {v}: {1000 * m:.1f} ms" + (f" ({m / base:.3f} x plain)" if base else ""), flush=True)
    del models, opts
    return rows


def kernel_checks(args: argparse.Namespace) -> dict[str, Any]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    restrictions = {
        "flash+efficient": [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION],
        "flash": [SDPBackend.FLASH_ATTENTION],
        "efficient": [SDPBackend.EFFICIENT_ATTENTION],
    }
    if args.quick:  # flow check only: one restriction, one precision
        restrictions = {"flash+efficient": restrictions["flash+efficient"]}
    precisions = ("fp32",) if args.quick else ("bf16", "fp32")
    results: dict[str, Any] = {}
    batch_size = 8 if args.quick else 64
    for variant in ("plain", "gs_sdpa"):
        model = build(variant, args.quick, args.device)
        tau = None if variant == "plain" else 1.0
        for padded in (True, False):
            batch = random_batch(batch_size, args.max_len, args.device, padded=padded)
            for mode in ("train", "eval"):
                model.train(mode == "train")
                for precision in precisions:
                    for name, backends in restrictions.items():
                        key = f"{variant} | {'padded' if padded else 'no padding'} | {mode} | {precision} | {name}"
                        try:
                            with sdpa_kernel(backends), _autocast(precision, args.device):
                                loss = model(**batch, tau=tau).loss
                            if mode == "train":
                                loss.backward()
                            results[key] = "ok"
                        except Exception as err:  # noqa: BLE001 - the point is to see which raise
                            results[key] = f"raises {type(err).__name__}: {str(err).splitlines()[0][:160]}"
                        model.zero_grad(set_to_none=True)
        # Which attention kernels does the default dispatch launch (train mode, padded, bf16)?
        model.train()
        batch = random_batch(batch_size, args.max_len, args.device)
        if args.device.startswith("cuda"):
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CUDA]) as prof, _autocast("bf16", args.device):
                model(**batch, tau=tau).loss.backward()
            names = sorted({e.key for e in prof.key_averages()
                            if any(s in e.key.lower() for s in ("flash", "fmha", "efficient", "attention", "sdpa"))})
            results[f"{variant} | launched attention kernels (train, padded, bf16)"] = names[:20]
        del model
    return results


def target_lines(rows: list[dict[str, Any]], batch: int = 512) -> list[str]:
    """The issue's GPU targets, from the timing rows of ``batch`` x L (ratios measured in this run)."""
    by = {(r["precision"], r["variant"]): r for r in rows if r.get("batch") == batch and "variant" in r}
    lines = []

    def ratio(precision: str, variant: str, base: str = "plain") -> float | None:
        a, b = by.get((precision, variant)), by.get((precision, base))
        return a["median_ms"] / b["median_ms"] if a and b else None

    checks = (("GS bf16 step <= 1.15 x plain", ratio("bf16", "gs_sdpa"), 1.15),
              ("attention patch alone (bf16) <= 1.03 x plain", ratio("bf16", "patch"), 1.03))
    for text, value, bound in checks:
        if value is not None:
            lines.append(f"{text} at batch {batch}: {value:.3f} -> {'MET' if value <= bound else 'NOT MET'}")
    plain = by.get(("bf16", "plain"))
    if plain and plain.get("mfu"):
        lines.append(f"plain SimCSE bf16 at batch {batch}: {plain['model_tflops']:.0f} TFLOP/s = MFU "
                     f"{100 * plain['mfu']:.1f} % of the measured bf16 matmul peak (aim >= 35 % -> "
                     f"{'MET' if plain['mfu'] >= 0.35 else 'NOT MET'})")
    for precision in ("bf16", "fp32"):
        sync_cost = ratio(precision, "gs_sdpa_sync", "gs_sdpa")
        mask_cost = ratio(precision, "plain", "plain_nomasksync")
        if sync_cost is not None:
            lines.append(f"{precision}: the removed host syncs would cost gs_sdpa_sync / gs_sdpa = {sync_cost:.3f}")
        if mask_cost is not None:
            lines.append(f"{precision}: transformers' mask sync costs plain / plain_nomasksync = {mask_cost:.3f}")
    return lines


def write_report(out_dir: Path, report: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_precision.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    lines = ["# GPU precision / kernel check", "", "machine: " + json.dumps(report["machine"], default=str), "",
             "matmul peak TFLOP/s (8192^3, measured): " + json.dumps(report.get("matmul_peak_tflops")), "",
             "| batch | precision | variant | median ms | x plain | sentences/s | peak MiB | model TFLOP/s | MFU |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report.get("timing", []):
        if "variant" not in r:
            lines.append(f"| {r['batch']} | {r['precision']} | - | {r.get('skipped') or r.get('error')} | | | | | |")
            continue
        xp = f"{r['x_plain']:.3f}" if r["x_plain"] else "-"
        pk = f"{r['peak_mib']:.0f}" if r["peak_mib"] else "-"
        mfu = f"{100 * r['mfu']:.1f} %" if r.get("mfu") else "-"
        lines.append(f"| {r['batch']} | {r['precision']} | {r['variant']} | {r['median_ms']:.1f} | {xp} | "
                     f"{r['sentences_per_s']:.0f} | {pk} | {r['model_tflops']:.1f} | {mfu} |")
    lines += ["", "## Targets (batch 512 x L; the ratios of this run)", ""]
    lines += [f"* {line}" for line in target_lines(report.get("timing", []))] or ["(no timing at batch 512)"]
    lines += ["", "## SDPA kernel restrictions (forward + backward)", "", "| case | result |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in report.get("kernels", {}).items()]
    if report.get("errors"):
        lines += ["", "## Errors", "", *[f"    {e}" for e in report["errors"]]]
    (out_dir / "gpu_precision.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    quiet()
    args = parse_args(argv)
    t_start = time.perf_counter()
    info = machine_info(args.device)
    info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    print("machine: " + json.dumps(info, default=str), flush=True)
    report: dict[str, Any] = {"machine": info, "args": vars(args), "errors": []}
    args.matmul_peak_tflops = {}
    if args.device.startswith("cuda"):
        for precision, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", torch.float32)):
            args.matmul_peak_tflops[precision] = matmul_peak_tflops(args.device, dtype)
        print("matmul peak TFLOP/s: " + json.dumps(args.matmul_peak_tflops), flush=True)
    report["matmul_peak_tflops"] = args.matmul_peak_tflops
    for part, fn in (("timing", lambda: timing(args, t_start)), ("kernels", lambda: kernel_checks(args))):
        try:
            report[part] = fn()
        except Exception:  # noqa: BLE001 - keep what the other part found
            report["errors"].append(f"{part}: {traceback.format_exc()[-2000:]}")
        write_report(Path(args.out_dir), report)
    report["wall_s"] = time.perf_counter() - t_start
    write_report(Path(args.out_dir), report)
    print(f"done in {report['wall_s']:.0f}s; wrote {Path(args.out_dir) / 'gpu_precision.md'}", flush=True)
    for k, v in report.get("kernels", {}).items():
        print(f"  {k}: {v}")
    for line in target_lines(report.get("timing", [])):
        print("target: " + line)
    return report


if __name__ == "__main__":
    main()
