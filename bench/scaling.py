"""Scaling: STS evaluation time vs number of sentences, and training-step time vs max_seq_length.

* Evaluation: N real sentences (unique STS-B sentences, shuffled; N = 1k, 2k, 4k, 8k) paired into N / 2 pairs with
  random gold scores, written as a STS-B test split; timed through the whole path ``evaluate_sts`` (file loading,
  SentEval engine, ``model.encode`` at batch 128, cosine, Spearman) with plain MiniLM (pooler ``avg``). Linear
  means time / sentence stays flat; we also report time / real token.
* Training: one step (forward + backward + AdamW) of plain SimCSE and GS (sdpa path) at batch 64 x L,
  L = 32, 64, 128 (wiki sentences truncated / padded to exactly L), the variants of ``bench.train_step``.

Both parts interleave their cases (1k 2k 4k 8k 1k ...; plain@32 gs@32 plain@64 ... plain@32 ...).

    python -m bench.scaling                  # both parts, packaged MiniLM
    python -m bench.scaling --part eval      # or --part train
    python -m bench.scaling --quick          # tiny random model, seconds
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

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
    write_stsb_folder,
)
from bench.train_step import build, make_step, optimizer_for
from simcse_gs.evaluation.sts import evaluate_sts
from simcse_gs.model import SimCSEGSModel


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("eval", "train", "both"), default="both")
    p.add_argument("--config", choices=("minilm", "bert-base", "tiny"), default="minilm")
    p.add_argument("--model-path", default=None)
    p.add_argument("--sizes", default="1000,2000,4000,8000", help="numbers of sentences to evaluate")
    p.add_argument("--eval-rounds", type=int, default=2)
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--lengths", default="32,64,128", help="max_seq_length values for the training step")
    p.add_argument("--variants", default="plain,gs_sdpa")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--reps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.config = "tiny" if args.model_path is None else args.config
        args.sizes, args.eval_rounds = "100,200", 1
        args.lengths, args.batch_size, args.reps, args.warmup = "16,32", 8, 2, 1
    return args


def sts_sentences(n: int, seed: int) -> list[str]:
    """``n`` unique STS-B sentences (all splits), shuffled; synthetic ones if the data is missing or too small."""
    folder = STS_DATA / "STS" / "STSBenchmark"
    pool: dict[str, None] = {}
    if folder.is_dir():
        from senteval.sts import load_stsb

        for pairs in load_stsb(STS_DATA).values():
            for s in (*pairs.sent1, *pairs.sent2):
                pool[" ".join(s.split())] = None
    sentences = [s for s in pool if s]
    if len(sentences) < n:
        return synthetic_sentences(n, seed)
    rng = np.random.default_rng(seed)
    return [sentences[i] for i in rng.permutation(len(sentences))[:n]]


def bench_eval(args: argparse.Namespace, path: str, workdir: str) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",")]
    sentences = sts_sentences(max(sizes), args.seed)
    rng = np.random.default_rng(args.seed)
    folders = {}
    for n in sizes:
        sub = sentences[:n]
        test = [(sub[i], sub[i + 1], float(rng.uniform(0, 5))) for i in range(0, n - 1, 2)]
        folders[n] = write_stsb_folder(Path(workdir) / f"sts-{n}", {"test": test})
    model = SimCSEGSModel.from_backbone(path, use_gs=False, pooler_type="avg")
    tokens = {n: sum(len(ids) for ids in model.tokenizer(sentences[:n])["input_ids"]) for n in sizes}
    model.encode(["warm-up sentence ."] * 8, batch_size=args.eval_batch_size)
    encode_s: dict[int, list[float]] = {n: [] for n in sizes}

    def case(n: int):
        def run(_r: int) -> None:
            spent = [0.0]

            def encode(batch: list[str]):
                t0 = time.perf_counter()
                out = model.encode(batch, batch_size=args.eval_batch_size)
                spent[0] += time.perf_counter() - t0
                return out

            evaluate_sts(encode, folders[n], ["STSBenchmark"], ["test"], args.eval_batch_size, progress=False)
            encode_s[n].append(spent[0])

        return run

    times = interleaved({f"{n}": case(n) for n in sizes}, args.eval_rounds, 0)
    out = {}
    for n in sizes:
        t = med(times[str(n)])
        out[n] = {"median_s": t, "spread": spread(times[str(n)]), "encode_s": med(encode_s[n]),
                  "tokens": tokens[n], "ms_per_sentence": 1000 * t / n, "us_per_token": 1e6 * t / tokens[n]}
    return out


def bench_train(args: argparse.Namespace, path: str) -> dict[str, Any]:
    from transformers import AutoTokenizer

    lengths = [int(x) for x in args.lengths.split(",")]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    tok = AutoTokenizer.from_pretrained(path)
    n_batches = max(1, min(args.reps, 4))
    sentences = read_sentences(args.batch_size * n_batches)
    models = {v: build(v, path, "avg", args.seed, "cpu") for v in variants}
    opts = {v: optimizer_for(v, models[v], 3e-5, "fused") for v in variants}
    steps = {}
    for length in lengths:
        batches = fixed_batches(tok, sentences, args.batch_size, length, n_batches)
        for v in variants:
            steps[f"{v}@{length}"] = make_step(v, models[v], opts[v], batches)
    times = interleaved(steps, args.reps, args.warmup)
    return {key: {"median_s": med(t), "spread": spread(t), "times": t} for key, t in times.items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet()
    set_threads(args.threads)
    info = machine_info("cpu")
    print_machine(info)
    result: dict[str, Any] = {"machine": info, "args": vars(args)}
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as workdir:
        path = resolve_model(args.config, args.model_path, workdir)
        result["backbone"] = path
        if args.part in ("eval", "both"):
            print(f"evaluation time vs sentences ({args.sizes}), {args.eval_rounds} interleaved rounds", flush=True)
            ev = bench_eval(args, path, workdir)
            result["eval"] = ev
            sizes = sorted(ev)
            first = ev[sizes[0]]
            print()
            print_table(["sentences", "tokens", "median s", "min-max s", "encode s", "ms/sentence", "us/token",
                         "time ratio", "size ratio"],
                        [[n, r["tokens"], f"{r['median_s']:.2f}", r["spread"], f"{r['encode_s']:.2f}",
                          f"{r['ms_per_sentence']:.2f}", f"{r['us_per_token']:.1f}",
                          f"{r['median_s'] / first['median_s']:.2f}", f"{n / sizes[0]:.0f}"] for n, r in ev.items()])
            slope, intercept = np.polyfit(sizes, [ev[n]["median_s"] for n in sizes], 1)
            result["eval_fit"] = {"s_per_1k": 1000 * slope, "intercept_s": intercept}
            per_sent = [ev[n]["ms_per_sentence"] for n in sizes]
            lines.append(f"eval: time per sentence {', '.join(f'{n}: {x:.2f} ms' for n, x in zip(sizes, per_sent))}"
                         f" (largest/smallest = {per_sent[-1] / per_sent[0]:.2f}; 1.00 = linear); fit "
                         f"{1000 * slope:.2f} s per 1k sentences + {intercept:.2f} s")
        if args.part in ("train", "both"):
            print(f"train step vs max_seq_length ({args.lengths}), batch {args.batch_size}", flush=True)
            tr = bench_train(args, path)
            result["train"] = tr
            lengths = [int(x) for x in args.lengths.split(",")]
            variants = [v.strip() for v in args.variants.split(",") if v.strip()]
            rows = []
            for v in variants:
                for length in lengths:
                    r = tr[f"{v}@{length}"]
                    base_len = tr[f"{v}@{lengths[0]}"]["median_s"]
                    vs_plain = r["median_s"] / tr[f"plain@{length}"]["median_s"] if "plain" in variants else None
                    rows.append([v, length, f"{r['median_s']:.3f}", r["spread"], f"{r['median_s'] / base_len:.2f}",
                                 f"{length / lengths[0]:.0f}", f"{vs_plain:.3f}" if vs_plain else "-"])
            print()
            print_table(["variant", "L", "median s", "min-max s", "x L0 time", "x L0 length", "x plain"], rows)
            for v in variants:
                lines.append(f"train {v}: step time ratio vs L={lengths[0]}: " + ", ".join(
                    f"L={length} {tr[f'{v}@{length}']['median_s'] / tr[f'{v}@{lengths[0]}']['median_s']:.2f}x"
                    for length in lengths[1:]))
            if "plain" in variants:
                for v in variants:
                    if v != "plain":
                        lines.append(f"train {v}/plain by L: " + ", ".join(
                            f"L={length} {tr[f'{v}@{length}']['median_s'] / tr[f'plain@{length}']['median_s']:.3f}"
                            for length in lengths))
    return report(result, lines, args.json)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
