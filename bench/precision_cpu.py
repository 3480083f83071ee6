"""bf16 against fp32 on the CPU: the full STS suite (time and the numbers) and the training step, in one run.

CPUs with AVX-512 BF16 / AMX run bf16 matrix products natively; torch's CPU autocast uses them. Two measurements,
each interleaved (fp32, bf16, fp32, bf16, ...) in one process so that the load of other jobs hits both alike:

* **STS suite**: ``evaluate_sts`` (what ``evaluation.py --mode test`` runs: all seven tasks, every split both tables
  need) with ``SimCSEGSModel.encode(..., precision=...)`` on the packaged MiniLM (plain, mean pooling), batch 128,
  each ``encode`` call made in both precisions in alternating order (see :func:`bench_sts`); the SimCSE table and
  the original GS repo's columns of both precisions, their largest difference (target: within 0.05), and the
  lowest cosine between the fp32 and bf16 vector of a sentence.
* **Training step**: forward + backward + fused AdamW of plain SimCSE and GS (sdpa path) on MiniLM, unsupervised
  batch 64 x 32 of wiki sentences, pooler ``avg``, dropout on, fp32 against ``torch.autocast("cpu", bfloat16)``.

    OMP_NUM_THREADS=1 python -m bench.precision_cpu --threads 1       # ~10 min on one loaded core
    python -m bench.precision_cpu --quick                              # tiny model, synthetic STS-B, seconds
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import (
    STS_DATA,
    fixed_batches,
    interleaved,
    machine_info,
    med,
    print_machine,
    print_table,
    quiet,
    read_sentences,
    report,
    resolve_model,
    set_threads,
    spread,
    synthetic_sentences,
    verdict,
    write_stsb_folder,
)
from simcse_gs.evaluation.sts import ALL_TASKS, evaluate_sts, original_gs_summary, simcse_summary
from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.precision import autocast

SPLITS = ("train", "dev", "test", "train_and_dev", "all")
PRECISIONS = ("fp32", "bf16")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("sts", "train", "both"), default="both")
    p.add_argument("--config", choices=("minilm", "tiny"), default="minilm")
    p.add_argument("--model-path", default=None)
    p.add_argument("--task-path", default=str(STS_DATA))
    p.add_argument("--tasks", default=",".join(ALL_TASKS))
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--sts-rounds", type=int, default=1, help="suite rounds per precision (alternating order)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-len", type=int, default=32)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.config = "tiny" if args.model_path is None else args.config
        args.batch_size, args.reps, args.warmup = 8, 2, 1
    return args


def bench_sts(args: argparse.Namespace, path: str, task_path: str, tasks: list[str]) -> dict[str, Any]:
    """The suite as ``evaluation.py`` runs it (one ``evaluate_sts`` call: each task's new sentences in one
    ``encode`` call), interleaved at the finest grain that keeps that: every ``encode`` call is made in both
    precisions, in alternating order, each timed; the fp32 vectors feed this call's results, the bf16 ones a
    second ``evaluate_sts`` call that only looks them up (its wall time is the engine's own work). A suite's time
    is then its encode time plus that engine time. ``--sts-rounds`` repeats the whole."""
    torch.manual_seed(0)
    model = SimCSEGSModel.from_backbone(path, use_gs=False, pooler_type="avg")
    warm = ["a warm-up sentence .", "another one for the first call"] * 4
    for precision in PRECISIONS:
        model.encode(warm, batch_size=args.eval_batch_size, precision=precision)
    encode_s: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    engine_s: list[float] = []
    results: dict[str, Any] = {}
    vectors: dict[str, dict[str, np.ndarray]] = {p: {} for p in PRECISIONS}
    for rnd in range(args.sts_rounds):
        totals = dict.fromkeys(PRECISIONS, 0.0)
        calls = [0]

        def encode_both(sentences: list[str], totals=totals, calls=calls, rnd=rnd) -> torch.Tensor:
            order = PRECISIONS if (calls[0] + rnd) % 2 == 0 else PRECISIONS[::-1]
            calls[0] += 1
            out = {}
            for precision in order:
                start = time.perf_counter()
                out[precision] = model.encode(sentences, batch_size=args.eval_batch_size, precision=precision)
                totals[precision] += time.perf_counter() - start
                vectors[precision].update(zip(sentences, out[precision].numpy()))
            return out["fp32"]

        results["fp32"] = evaluate_sts(encode_both, task_path, tasks, SPLITS, args.eval_batch_size, progress=False)
        start = time.perf_counter()
        results["bf16"] = evaluate_sts(lambda sentences: np.stack([vectors["bf16"][x] for x in sentences]),
                                       task_path, tasks, SPLITS, args.eval_batch_size, progress=False)
        engine_s.append(time.perf_counter() - start)
        for precision in PRECISIONS:
            encode_s[precision].append(totals[precision])
        print(f"  round {rnd + 1}: encode fp32 {totals['fp32']:.1f}s, bf16 {totals['bf16']:.1f}s ({calls[0]} calls, "
              f"alternating order); engine {engine_s[-1]:.1f}s", flush=True)
    tables = {p: simcse_summary(results[p]) for p in PRECISIONS}
    complete = set(ALL_TASKS) <= set(tasks)
    original = {p: original_gs_summary(results[p]) for p in PRECISIONS} if complete else None
    diffs = [abs(tables["bf16"][k] - tables["fp32"][k]) for k in tables["fp32"]]
    if original:
        diffs += [abs(original["bf16"][k] - original["fp32"][k]) for k in original["fp32"]]
    a = np.stack([vectors["fp32"][x] for x in vectors["fp32"]])
    b = np.stack([vectors["bf16"][x] for x in vectors["fp32"]])
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    suite = {p: [e + g for e, g in zip(encode_s[p], engine_s)] for p in PRECISIONS}
    return {"encode_s": encode_s, "engine_s": engine_s, "times": suite,
            "median_s": {p: med(suite[p]) for p in PRECISIONS}, "simcse": tables, "original_gs": original,
            "max_abs_diff": max(diffs), "min_cosine": float(cos.min()), "sentences": len(vectors["fp32"]),
            "paired_bf16_over_fp32": med([b / a for a, b in zip(encode_s["fp32"], encode_s["bf16"])])}


def bench_train(args: argparse.Namespace, path: str) -> dict[str, Any]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    n_batches = max(1, min(args.reps, 4))
    batches = fixed_batches(tok, read_sentences(args.batch_size * n_batches), args.batch_size, args.max_len,
                            n_batches)
    steps = {}
    for variant in ("plain", "gs"):
        for precision in PRECISIONS:
            torch.manual_seed(0)
            model = SimCSEGSModel.from_backbone(path, use_gs=variant == "gs", pooler_type="avg").train()
            opt = torch.optim.AdamW(model.parameters(), lr=3e-5, fused=True)
            tau = 1.0 if variant == "gs" else None

            def step(r: int, model=model, opt=opt, precision=precision, tau=tau) -> None:
                opt.zero_grad(set_to_none=True)
                with autocast(precision, "cpu"):
                    loss = model(**batches[r % len(batches)], tau=tau).loss
                loss.backward()
                opt.step()

            steps[f"{variant}_{precision}"] = step
    times = interleaved(steps, args.reps, args.warmup)
    return {"times": times, "median_s": {k: med(v) for k, v in times.items()},
            "spread": {k: spread(v) for k, v in times.items()},
            "paired_bf16_over_fp32": {v: med([b / a for a, b in zip(times[f"{v}_fp32"], times[f"{v}_bf16"])])
                                      for v in ("plain", "gs")}}


def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet()
    set_threads(args.threads)
    info = machine_info("cpu")
    flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n")[0] if Path("/proc/cpuinfo").exists() \
        else ""
    info["cpu_bf16"] = [f for f in ("avx512_bf16", "amx_bf16", "avx512_fp16", "amx_fp16") if f in flags.split()]
    print_machine(info)
    result: dict[str, Any] = {"machine": info, "args": vars(args)}
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as workdir:
        path = resolve_model(args.config, args.model_path, workdir)
        result["backbone"] = path
        if args.part in ("sts", "both"):
            task_path, tasks = args.task_path, [t for t in args.tasks.split(",") if t]
            if args.quick:
                sents = synthetic_sentences(120, seed=3)
                rng = np.random.default_rng(0)
                pairs = {s: [(sents[i], sents[i + 1], float(rng.uniform(0, 5))) for i in range(o, o + 40, 2)]
                         for s, o in (("train", 0), ("dev", 40), ("test", 80))}
                task_path, tasks = write_stsb_folder(Path(workdir) / "sts", pairs), ["STSBenchmark"]
            print(f"STS suite: {', '.join(tasks)}, batch {args.eval_batch_size}, {args.sts_rounds} round(s)",
                  flush=True)
            sts = bench_sts(args, path, task_path, tasks)
            result["sts"] = sts
            print()
            keys = list(sts["simcse"]["fp32"])
            print_table(["precision", "wall s", *keys], [[p, f"{sts['median_s'][p]:.1f}",
                                                         *(f"{sts['simcse'][p][k]:.2f}" for k in keys)]
                                                        for p in PRECISIONS])
            ratio = sts["median_s"]["fp32"] / sts["median_s"]["bf16"]
            result["sts_speedup"] = ratio
            lines.append(f"STS suite ({sts['sentences']} sentences): fp32 {sts['median_s']['fp32']:.1f}s, bf16 "
                         f"{sts['median_s']['bf16']:.1f}s: bf16 speed-up = {ratio:.3f} (median of per-round "
                         f"bf16/fp32 encode time {sts['paired_bf16_over_fp32']:.3f}); bf16 suite <= 70 s -> "
                         f"{verdict(sts['median_s']['bf16'] <= 70)}")
            lines.append(f"STS numbers bf16 vs fp32: max |difference| over both tables = {sts['max_abs_diff']:.2f} "
                         f"(target <= 0.05 -> {verdict(sts['max_abs_diff'] <= 0.05)}); lowest cosine between a "
                         f"sentence's fp32 and bf16 vectors = {sts['min_cosine']:.6f}")
        if args.part in ("train", "both"):
            print(f"training step: batch {args.batch_size} x {args.max_len}, plain and GS, fp32 vs bf16 autocast",
                  flush=True)
            tr = bench_train(args, path)
            result["train"] = tr
            print()
            print_table(["variant", "median s", "min-max s"],
                        [[k, f"{v:.3f}", tr["spread"][k]] for k, v in tr["median_s"].items()])
            for v in ("plain", "gs"):
                r = tr["median_s"][f"{v}_fp32"] / tr["median_s"][f"{v}_bf16"]
                result[f"train_{v}_speedup"] = r
                lines.append(f"training step {v}: bf16 speed-up = {r:.3f} (median of per-round bf16/fp32 "
                             f"{tr['paired_bf16_over_fp32'][v]:.3f})")
    return report(result, lines, args.json)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
