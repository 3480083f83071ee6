"""Memory of a large STS evaluation: does it stay flat, i.e. bounded by the embeddings it must hold?

A synthetic STS-B test split of P pairs (2P unique sentences, random words, random gold scores) is written in
SentEval's layout to a temporary folder and evaluated through the same path as training-time evaluation
(``evaluate_sts`` -> SentEval engine -> ``SimCSEGSModel.encode`` in batches, GS keep rule on, keep statistics
accumulated). The engine must keep one float32 embedding per unique sentence (N x H x 4 bytes: it scores pairs
only after encoding every sentence) plus the sentences themselves; everything else (token ids, activations) should
live one batch at a time. A leak or an O(N x L x H) buffer shows up as growth far above that.

The measurement runs in a fresh child process per size (the parent only writes the data): RSS is sampled from
a background thread every 50 ms (psutil), baseline = after the model is loaded, before the evaluation starts.

    python -m bench.eval_memory                 # packaged MiniLM (H=384): 10k and 50k pairs (100k sentences)
    python -m bench.eval_memory --quick         # random 1-layer BERT (H=384), 1k and 5k pairs: minutes
    python -m bench.eval_memory --pairs 20000 --model /path/to/checkpoint_or_encoder
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MIB = 2**20
TAG = "EVAL_MEMORY_JSON "


def write_synthetic_stsb(root: Path, pairs: int, vocabulary: list[str], seed: int = 0) -> int:
    """``root/STS/STSBenchmark/sts-test.csv`` with ``pairs`` pairs of unique random sentences; returns its bytes."""
    rng = random.Random(seed)
    seen: set[str] = set()
    sentences: list[str] = []
    while len(sentences) < 2 * pairs:
        sentence = " ".join(rng.choices(vocabulary, k=rng.randint(6, 24)))
        if sentence not in seen:
            seen.add(sentence)
            sentences.append(sentence)
    folder = root / "STS" / "STSBenchmark"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sts-test.csv"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(pairs):
            score = round(rng.uniform(0, 5), 2)
            f.write(f"main-news\tsynthetic\t2024\t{i:06d}\t{score}\t{sentences[2 * i]}\t{sentences[2 * i + 1]}\n")
    return path.stat().st_size


def vocabulary_of(model_dir: str) -> list[str]:
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(model_dir).get_vocab()
    words = sorted(w for w in vocab if w.isalpha() and w.isascii() and len(w) >= 3)
    return words[:20000]


class RSSSampler:
    """Peak and time series of this process's resident set size, sampled in a background thread."""

    def __init__(self, interval: float = 0.05):
        import psutil

        self.process = psutil.Process()
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return self.process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.rss()))
            time.sleep(self.interval)

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter(), self.rss()))

    @property
    def peak(self) -> int:
        return max(rss for _, rss in self.samples)


def child(args: argparse.Namespace) -> None:
    """Load the model, then evaluate while sampling RSS; print one JSON line."""
    import gc
    import resource

    import torch

    from simcse_gs.evaluation.sts import evaluate_sts
    from simcse_gs.model import SimCSEGSModel
    from simcse_gs.model.keep import KeepStatsAccumulator
    from simcse_gs.model_folder import inspect_model, looks_local

    if args.threads:
        torch.set_num_threads(args.threads)
    if looks_local(args.model) and inspect_model(args.model).kind == "simcse_gs":
        model = SimCSEGSModel.from_pretrained(args.model)
    else:
        model = SimCSEGSModel.from_backbone(args.model, use_gs=not args.plain, pooler_type="avg",
                                            proxy_num_layers=args.proxy_num_layers)
    model.to(args.device).eval()
    stats = KeepStatsAccumulator()

    def encode(sentences):
        return model.encode(sentences, batch_size=args.batch_size, keep_stats=stats)

    with open(Path(args.data) / "STS" / "STSBenchmark" / "sts-test.csv", encoding="utf-8") as f:
        sample = [line.split("\t")[5] for _, line in zip(range(1000), f)]
    tokens = sum(len(ids) for ids in model.tokenizer(sample)["input_ids"]) / len(sample)
    del sample
    gc.collect()
    sampler = RSSSampler()
    baseline = sampler.rss()
    start = time.perf_counter()
    with sampler:
        results = evaluate_sts(encode, args.data, ("STSBenchmark",), ["test"], args.batch_size, progress=False)
    seconds = time.perf_counter() - start
    series = [rss for _, rss in sampler.samples]
    print(TAG + json.dumps({
        "sentences": 2 * args.pairs, "hidden": model.backbone.config.hidden_size, "tokens_per_sentence": tokens,
        "baseline_rss": baseline, "peak_rss": sampler.peak,
        "rss_deciles": [series[min(len(series) - 1, round(q * (len(series) - 1) / 10))] for q in range(1, 11)],
        "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "seconds": seconds,
        "spearman": results["STSBenchmark"]["test"]["spearman"], "samples": len(series),
        "threads": torch.get_num_threads(),
    }), flush=True)


def run_child(args: argparse.Namespace, model: str, data: Path, pairs: int, malloc: str) -> dict:
    cmd = [sys.executable, "-m", "bench.eval_memory", "--child", "--data", str(data), "--model", model,
           "--pairs", str(pairs), "--batch_size", str(args.batch_size), "--device", args.device]
    cmd += ["--plain"] if args.plain else []
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--proxy_num_layers", str(args.proxy_num_layers)] if args.proxy_num_layers else []
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    if malloc == "fixed":  # glibc: stop the dynamic mmap threshold from keeping freed activation buffers resident
        env["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(TAG)]
    if proc.returncode or not lines:
        sys.exit(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[0][len(TAG):])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="random 1-layer H=384 BERT, 1k and 5k pairs")
    parser.add_argument("--pairs", type=int, nargs="+", default=None,
                        help="pair counts to measure, each in a fresh process (default 10000 50000)")
    parser.add_argument("--model", default=None, help="encoder folder or SimCSE-GS checkpoint (default MiniLM)")
    parser.add_argument("--plain", action="store_true", help="plain SimCSE encoder instead of GS (fresh proxy)")
    parser.add_argument("--proxy_num_layers", type=int, default=None)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="cuda: activations on the GPU; RSS is host memory only")
    parser.add_argument("--malloc", choices=("default", "fixed", "both"), default="both",
                        help="fixed: run with MALLOC_MMAP_THRESHOLD_=128k (glibc), so RSS follows live memory")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.pairs = args.pairs[0]
        child(args)
        return

    sizes = sorted(args.pairs or ([1_000, 5_000] if args.quick else [10_000, 50_000]))
    if args.quick and args.proxy_num_layers is None:
        args.proxy_num_layers = 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="eval-memory-") as tmp:
        tmp_path = Path(tmp)
        if args.model is None:
            from bench.common import minilm_path, save_random_bert

            # --quick: a random 1-layer BERT of MiniLM's width (H=384) with its tokenizer: realistic H, fast
            args.model = (save_random_bert(tmp_path / "tiny", (1, 384, 6, 512), minilm_path()) if args.quick
                          else minilm_path())
        vocabulary = vocabulary_of(args.model)
        for pairs in sizes:
            data = tmp_path / f"data-{pairs}"
            text_bytes = write_synthetic_stsb(data, pairs, vocabulary)
            for malloc in ("default", "fixed") if args.malloc == "both" else (args.malloc,):
                result = run_child(args, args.model, data, pairs, malloc)
                rows.append({**result, "pairs": pairs, "text_bytes": text_bytes, "malloc": malloc})

    first = rows[0]
    hidden, tokens = first["hidden"], first["tokens_per_sentence"]
    print(f"model: {args.model} ({'plain' if args.plain else 'GS keep rule'}), hidden {hidden}, device "
          f"{args.device}, {first['threads']} threads, batch {args.batch_size}; {tokens:.1f} tokens per sentence")
    for r in rows:
        n, emb = r["sentences"], r["sentences"] * hidden * 4
        growth = r["peak_rss"] - r["baseline_rss"]
        print(f"\n{r['pairs']} pairs = {n} unique sentences ({r['text_bytes'] / MIB:.1f} MiB of text), "
              f"{r['malloc']} malloc: "
              f"{r['seconds']:.0f} s, {n / r['seconds']:.0f} sentences/s, spearman {r['spearman']:.3f} (random gold)")
        print(f"  expected = embeddings N x H x 4 bytes: {emb / MIB:.1f} MiB")
        print(f"  RSS baseline (model loaded) {r['baseline_rss'] / MIB:.1f} MiB, peak {r['peak_rss'] / MIB:.1f} MiB "
              f"(ru_maxrss {r['ru_maxrss'] / MIB:.1f}); growth {growth / MIB:.1f} MiB")
        print(f"  ratio growth / expected {growth / emb:.2f}; peak / (baseline + expected) "
              f"{r['peak_rss'] / (r['baseline_rss'] + emb):.2f}")
        print("  RSS by tenth of the run (MiB): " + " ".join(f"{x / MIB:.0f}" for x in r["rss_deciles"]))
    print()
    for malloc in ("default", "fixed"):
        same = [r for r in rows if r["malloc"] == malloc]
        if len(same) < 2:
            continue
        small, large = same[0], same[-1]
        per_sentence = ((large["peak_rss"] - large["baseline_rss"]) - (small["peak_rss"] - small["baseline_rss"])) / (
            large["sentences"] - small["sentences"])
        print(f"{malloc} malloc: marginal peak memory per extra sentence {per_sentence:.0f} bytes (its embedding: "
              f"{hidden * 4} bytes, its text ~{large['text_bytes'] / large['sentences']:.0f} bytes on disk; keeping "
              f"its token states would cost {tokens * hidden * 4:.0f} bytes)")


if __name__ == "__main__":
    main()
