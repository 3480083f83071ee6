"""GPU check: fp32 vs bf16 vs fp16 (autocast) step time of plain SimCSE vs GS, and which SDPA kernels GS can use.

Needs only torch, transformers and this repository (no tokenizer, checkpoint or data: a random BERT-base-sized
model, 12 layers x 768, vocabulary 30522, and random token ids with realistic padding, lengths 8..L).

1. Step time (forward + backward + AdamW, dropout on) of ``plain``, ``gs_sdpa``, ``gs_eager`` and
   ``gs_sdpa_nosync`` (gs_sdpa with the per-step keep statistics kept on the GPU, to price the host syncs that
   ``keep_statistics`` causes) at batch 64 x 32 and 512 x 32, for fp32, bf16 autocast and fp16 autocast +
   GradScaler; variants interleaved, medians; peak memory by ``torch.cuda.max_memory_allocated``.
2. Kernels: the forward + backward of ``plain`` and ``gs_sdpa`` run inside ``sdpa_kernel([...])`` restricted to
   FLASH, EFFICIENT, or both (a restriction that no kernel satisfies raises), in train mode (dropout) and eval
   mode, with and without padding; and a profiler listing of the attention kernels actually launched.

Writes ``gpu_precision.json`` and ``gpu_precision.md`` to ``--out-dir`` (default ``$OUT``, else the current folder).

    bash bench/gpu_check.sh                                     # on the GPU machine (< 5 min on an H100)
    python -m bench.gpu_precision --quick --device cpu          # syntax / flow check on a CPU
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

import simcse_gs.modeling as modeling
from bench.common import interleaved, machine_info, med, quiet, spread
from simcse_gs.keep import keep_statistic_tensors
from simcse_gs.modeling import SimCSEGSConfig, SimCSEGSModel

VARIANTS = ("plain", "gs_sdpa", "gs_eager", "gs_sdpa_nosync")
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
    use_gs = variant != "plain"
    cfg = SimCSEGSConfig(
        backbone_config=bert_config(quick).to_dict(),
        proxy_config=bert_config(quick, layers=2).to_dict() if use_gs else None,
        special_token_ids=list(SPECIAL), pooler_type="avg", use_gs=use_gs,
        gs_attn_impl="eager" if variant == "gs_eager" else "sdpa",
    )
    return SimCSEGSModel(cfg).to(device).train()


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


def make_step(variant: str, model: SimCSEGSModel, opt, scaler, batch, precision: str, device: str):
    nosync = variant == "gs_sdpa_nosync"
    tau = None if variant == "plain" else 1.0

    def step(_r: int) -> None:
        opt.zero_grad(set_to_none=True)
        nosync_stats = mock.patch.object(modeling, "keep_statistics", keep_statistic_tensors)
        patch = nosync_stats if nosync else contextlib.nullcontext()
        with patch, _autocast(precision, device):
            loss = model(**batch, tau=tau).loss
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    return step


# ---------------------------------------------------------------------------------------------- parts


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
            for v in variants:
                m = med(times[v])
                rows.append({"batch": batch_size, "precision": precision, "variant": v, "median_ms": 1000 * m,
                             "spread_s": spread(times[v]), "x_plain": m / base if base else None,
                             "sentences_per_s": batch_size / m, "peak_mib": peaks.get(v)})
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


def write_report(out_dir: Path, report: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_precision.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    lines = ["# GPU precision / kernel check", "", "machine: " + json.dumps(report["machine"], default=str), "",
             "| batch | precision | variant | median ms | x plain | sentences/s | peak MiB |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in report.get("timing", []):
        if "variant" not in r:
            lines.append(f"| {r['batch']} | {r['precision']} | - | {r.get('skipped') or r.get('error')} | | | |")
            continue
        xp = f"{r['x_plain']:.3f}" if r["x_plain"] else "-"
        pk = f"{r['peak_mib']:.0f}" if r["peak_mib"] else "-"
        lines.append(f"| {r['batch']} | {r['precision']} | {r['variant']} | {r['median_ms']:.1f} | {xp} | "
                     f"{r['sentences_per_s']:.0f} | {pk} |")
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
    return report


if __name__ == "__main__":
    main()
