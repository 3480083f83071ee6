"""Our plain SimCSE against sentence-transformers: training throughput, and the STS evaluation suite.

Training (same MiniLM, batch 64 sentences, max length 32, AdamW lr 3e-5, dropout on, same number of steps):

* ours: ``SimCSEGSModel.from_backbone(use_gs=False, pooler_type='avg')``, loss = SimCSE's InfoNCE at temp 0.05;
* theirs: sentence-transformers' unsupervised-SimCSE recipe: ``Transformer(max_seq_length=32) + Pooling('mean')``
  and ``MultipleNegativesRankingLoss`` (scale 20 = 1 / 0.05, cosine) on (s, s) pairs. Both are the same loss on
  the same mean-pooled vectors (checked: equal losses with dropout off).

Two levels, both interleaved (ours, theirs, ours, theirs, ...):

* ``loop``: a manual loop on the same raw 64-sentence batches, each library tokenising its own batch (ours: the
  tokenizer + [B, 1, L]; theirs: ``model.preprocess`` per column, what its collator does), forward, backward,
  ``torch.optim.AdamW`` step. Isolates the model + loss code.
* ``trainer``: each library's Trainer end to end (our ``SimCSETrainer`` on ``load_train_dataset`` +
  ``SimCSECollator``; their ``SentenceTransformerTrainer`` on a ``datasets`` table (anchor, positive) = (s, s)),
  both on the Hugging Face Trainer's default optimizer and schedule; time between consecutive optimizer steps.

STS suite: our ``evaluate_sts`` (SentEval engine + ``model.encode``) over STS12-16, STS-B and SICK-R (all splits,
what ``evaluation.py --mode test`` computes), in ONE call as evaluation.py makes it, vs
``SentenceTransformer(minilm).encode`` on each task's unique sentences + cosine + ``scipy.stats.spearmanr``; same
model, mean pooling, batch 128, same max length; ``--sts-rounds`` rounds alternating which side goes first. Spearman
numbers must agree to 1e-4.

    pip install --no-deps sentence-transformers==6.2.0    # the `bench` extra; see docs/PERFORMANCE.md
    python -m bench.vs_sentence_transformers               # both parts
    python -m bench.vs_sentence_transformers --part train  # or --part sts
    python -m bench.vs_sentence_transformers --quick       # tiny random model, synthetic STS-B, seconds
    python -m bench.vs_sentence_transformers --device cuda --precision bf16   # on a GPU (bench/device/device_check.sh)

``--precision bf16 | fp16``: autocast for both libraries (the loop and ``encode``; fp16 with a GradScaler), the
Trainers' own ``--bf16`` / ``--fp16``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from bench.common import (
    STS_DATA,
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
    sync,
    synthetic_sentences,
    verdict,
    write_stsb_folder,
)
from senteval.sts import cosine_similarity, load_sick, load_sts_year, load_stsb
from simcse_gs.evaluation.sts import ALL_TASKS, STS_YEARS, evaluate_sts
from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.precision import PRECISIONS, autocast
from simcse_gs.model_folder import max_input_length

ALL_SPLITS = ("train", "dev", "test", "train_and_dev", "all")
POOLED = {"train_and_dev": ("train", "dev"), "all": ("train", "dev", "test")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("train", "sts", "both"), default="both")
    p.add_argument("--config", choices=("minilm", "tiny"), default="minilm")
    p.add_argument("--model-path", default=None)
    p.add_argument("--batch-size", type=int, default=64, help="training batch (sentences)")
    p.add_argument("--max-len", type=int, default=32, help="training max_seq_length")
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--loop-reps", type=int, default=8, help="timed rounds of the manual loop")
    p.add_argument("--loop-warmup", type=int, default=2)
    p.add_argument("--trainer-rounds", type=int, default=3, help="rounds of (our Trainer, their Trainer)")
    p.add_argument("--trainer-steps", type=int, default=8, help="optimizer steps per Trainer run")
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--tasks", default=",".join(ALL_TASKS))
    p.add_argument("--task-path", default=str(STS_DATA))
    p.add_argument("--sts-rounds", type=int, default=1, help="timed suite rounds per side (alternating order)")
    p.add_argument("--profile", default=None, metavar="TASK",
                   help="only profile (cProfile) our evaluate_sts and their encode on one task, e.g. STS16")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.config = "tiny" if args.model_path is None else args.config
        args.batch_size, args.loop_reps, args.loop_warmup = 8, 2, 1
        args.trainer_rounds, args.trainer_steps = 1, 3
    return args


# ---------------------------------------------------------------------------------------------- models


def ours(path: str, seed: int, device: str = "cpu") -> SimCSEGSModel:
    torch.manual_seed(seed)
    return SimCSEGSModel.from_backbone(path, use_gs=False, pooler_type="avg").to(device)


def theirs_for_training(path: str, max_len: int, seed: int, device: str = "cpu"):
    """sentence-transformers' unsupervised SimCSE setup: Transformer(max_seq_length) + mean Pooling, MNRL."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Pooling

    torch.manual_seed(seed)
    word = Transformer(path, max_seq_length=max_len)
    pooling = Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[word, pooling], device=device)
    return model, MultipleNegativesRankingLoss(model, scale=20.0)


# ---------------------------------------------------------------------------------------------- training


def _our_batch(tok, texts: list[str], max_len: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    enc = tok(texts, truncation=True, max_length=max_len, padding=True, return_tensors="pt")
    return {k: v.unsqueeze(1).to(device) for k, v in enc.items()}


def _their_features(st, texts: list[str], device: str) -> dict[str, torch.Tensor]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in st.preprocess(texts).items()}


def check_same_loss(path: str, texts: list[str], max_len: int) -> float:
    """With dropout off, our loss and MNRL on (s, s) must agree: |difference|."""
    model = ours(path, 0).eval()
    st, mnrl = theirs_for_training(path, max_len, 0)
    st.eval()
    with torch.no_grad():
        a = float(model(**_our_batch(model.tokenizer, texts, max_len)).loss)
        b = float(mnrl([st.preprocess(texts), st.preprocess(texts)], None))
    return abs(a - b)


def bench_loop(args: argparse.Namespace, path: str, sentences: list[str]) -> dict[str, Any]:
    dev = args.device
    model = ours(path, args.seed, dev).train()
    st, mnrl = theirs_for_training(path, args.max_len, args.seed, dev)
    st.train()
    opt_ours = torch.optim.AdamW(model.parameters(), lr=args.lr)
    opt_st = torch.optim.AdamW(st.parameters(), lr=args.lr)
    fp16 = args.precision == "fp16"
    scalers = {name: torch.amp.GradScaler(torch.device(dev).type) if fp16 else None for name in ("ours", "st")}

    def backward_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler) -> None:
        if scaler is None:
            loss.backward()
            opt.step()
            return
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    bs = args.batch_size
    n_batches = max(1, len(sentences) // bs)

    def texts(r: int) -> list[str]:
        b = r % n_batches
        return sentences[b * bs : (b + 1) * bs]

    def step_ours(r: int) -> None:
        opt_ours.zero_grad(set_to_none=True)
        with autocast(args.precision, dev):
            loss = model(**_our_batch(model.tokenizer, texts(r), args.max_len, dev)).loss
        backward_step(loss, opt_ours, scalers["ours"])

    def step_st(r: int) -> None:
        opt_st.zero_grad(set_to_none=True)
        batch = texts(r)
        with autocast(args.precision, dev):
            loss = mnrl([_their_features(st, batch, dev), _their_features(st, batch, dev)], None)
        backward_step(loss, opt_st, scalers["st"])

    times = interleaved({"ours": step_ours, "sentence_transformers": step_st}, args.loop_reps, args.loop_warmup,
                        dev)
    return {k: {"median_step_s": med(v), "spread": spread(v), "sentences_per_s": bs / med(v), "times": v}
            for k, v in times.items()}


def _step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time between consecutive optimizer-step ends (data loading, forward, backward, optimizer, hooks)."""

        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

        def intervals(self) -> list[float]:
            return [b - a for a, b in zip(self.ends, self.ends[1:])]

    return StepTimer()


def _same_training_arguments(args: argparse.Namespace, outdir: str) -> dict[str, Any]:
    """The TrainingArguments both libraries' Trainers get: same batch, steps, lr, seed; no saving or logging."""
    return dict(output_dir=outdir, per_device_train_batch_size=args.batch_size, max_steps=args.trainer_steps,
                learning_rate=args.lr, report_to="none", save_strategy="no", logging_strategy="no",
                eval_strategy="no", disable_tqdm=True, use_cpu=args.device == "cpu", dataloader_drop_last=True,
                seed=args.seed, bf16=args.precision == "bf16", fp16=args.precision == "fp16")


def _run_our_trainer(args: argparse.Namespace, model: SimCSEGSModel, dataset, outdir: str) -> tuple[list[float], float]:
    from simcse_gs.training.arguments import SimCSETrainingArguments
    from simcse_gs.training.data import SimCSECollator
    from simcse_gs.training.trainer import SimCSETrainer

    targs = SimCSETrainingArguments(**_same_training_arguments(args, outdir))
    timer = _step_timer()
    trainer = SimCSETrainer(model=model, args=targs, train_dataset=dataset, data_collator=SimCSECollator(
        model.tokenizer), processing_class=model.tokenizer, callbacks=[timer])
    start = time.perf_counter()
    trainer.train()
    return timer.intervals(), time.perf_counter() - start


def _run_their_trainer(args: argparse.Namespace, st, mnrl, dataset, outdir: str) -> tuple[list[float], float]:
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    targs = SentenceTransformerTrainingArguments(**_same_training_arguments(args, outdir))
    timer = _step_timer()
    trainer = SentenceTransformerTrainer(model=st, args=targs, train_dataset=dataset, loss=mnrl, callbacks=[timer])
    start = time.perf_counter()
    trainer.train()
    return timer.intervals(), time.perf_counter() - start


def bench_trainers(args: argparse.Namespace, path: str, sentences: list[str], workdir: str) -> dict[str, Any]:
    from datasets import Dataset

    from simcse_gs.training.data import load_train_dataset

    n = args.batch_size * args.trainer_steps
    train_txt = Path(workdir) / "train.txt"
    train_txt.write_text("\n".join(sentences[:n]) + "\n", encoding="utf-8")
    model = ours(path, args.seed, args.device)
    our_data = load_train_dataset(str(train_txt), model.tokenizer, args.max_len, cache_dir=str(Path(workdir) / "c"))
    st, mnrl = theirs_for_training(path, args.max_len, args.seed, args.device)
    their_data = Dataset.from_dict({"anchor": sentences[:n], "positive": sentences[:n]})
    steps: dict[str, list[float]] = {"ours": [], "sentence_transformers": []}
    totals: dict[str, list[float]] = {"ours": [], "sentence_transformers": []}
    for r in range(args.trainer_rounds):
        for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):  # alternate who goes first
            out = str(Path(workdir) / f"{name}-{r}")
            if name == "ours":
                iv, total = _run_our_trainer(args, model, our_data, out)
            else:
                iv, total = _run_their_trainer(args, st, mnrl, their_data, out)
            steps[name] += iv[1:]  # the first interval still carries first-step effects
            totals[name].append(total)
            print(f"  trainer round {r + 1} {name}: {args.trainer_steps} steps in {total:.2f}s "
                  f"(median step {med(iv):.3f}s)", flush=True)
    return {k: {"median_step_s": med(v), "spread": spread(v), "sentences_per_s": args.batch_size / med(v),
                "train_call_s": totals[k], "intervals": v} for k, v in steps.items()}


# ---------------------------------------------------------------------------------------------- STS suite


def load_groups(task: str, task_path: str) -> dict[str, Any]:
    if task in STS_YEARS:
        return load_sts_year(task_path, task)
    loader = load_stsb if task == "STSBenchmark" else load_sick
    return loader(task_path, ("train", "dev", "test"))


def their_sts(st, task: str, task_path: str, batch_size: int, keep: dict | None = None, precision: str = "fp32"
              ) -> tuple[dict[str, float], int]:
    """SentenceTransformer.encode on the task's unique sentences + cosine + scipy Spearman, per subset / split."""
    groups = load_groups(task, task_path)
    norm = {key: ([" ".join(s.split()) for s in g.sent1], [" ".join(s.split()) for s in g.sent2])
            for key, g in groups.items()}
    unique = list(dict.fromkeys(s for a, b in norm.values() for s in (*a, *b)))
    with autocast(precision, st.device):  # the same autocast as our encode(precision=...)
        emb = st.encode(unique, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    emb = emb.astype(np.float32)
    if keep is not None:
        keep.update(zip(unique, emb))
    where = {s: i for i, s in enumerate(unique)}
    # cosine in float64, the formula every STS evaluator uses (scipy does the ranking)
    sims = {key: cosine_similarity(emb[[where[s] for s in a]], emb[[where[s] for s in b]])
            for key, (a, b) in norm.items()}
    gold = {key: g.scores for key, g in groups.items()}
    out = {key: float(spearmanr(sims[key], gold[key])[0]) for key in groups}
    if task in STS_YEARS:
        out["all"] = float(spearmanr(np.concatenate(list(sims.values())), np.concatenate(list(gold.values())))[0])
    else:
        for pooled, parts in POOLED.items():
            out[pooled] = float(spearmanr(np.concatenate([sims[p] for p in parts]),
                                          np.concatenate([gold[p] for p in parts]))[0])
    return out, len(unique)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def our_spearmans(task: str, result: dict[str, Any]) -> dict[str, float]:
    if task in STS_YEARS:
        out = {key: float(v["spearman"]) for key, v in result.items() if key != "all"}
        out["all"] = float(result["all"]["spearman"]["all"])
        return out
    return {split: float(result[split]["spearman"]) for split in ALL_SPLITS}


def bench_sts(args: argparse.Namespace, path: str, task_path: str) -> dict[str, Any]:
    """Whole suite, each side as its users would run it: ours is ONE ``evaluate_sts`` call over every task (what
    ``evaluation.py`` does: each distinct sentence encoded once, in exact token-length order), theirs encodes each
    task's unique sentences. ``--sts-rounds`` rounds, alternating which side goes first; medians of the totals."""
    from sentence_transformers import SentenceTransformer

    model = ours(path, args.seed, args.device)
    st = SentenceTransformer(path, device=args.device)
    limit = max_input_length(model.tokenizer, model.backbone.config)
    st.max_seq_length = limit  # our encode truncates at this limit; theirs would stop at its configured length
    bs = args.eval_batch_size
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    ours_emb: dict[str, np.ndarray] = {}
    stats = {"encode_s": 0.0, "encoded": 0}

    def encode(sentences: list[str]) -> torch.Tensor:
        t0 = time.perf_counter()
        out = model.encode(sentences, batch_size=bs, precision=args.precision)
        stats["encode_s"] += time.perf_counter() - t0
        stats["encoded"] += len(sentences)
        ours_emb.update(zip(sentences, out.numpy()))
        return out

    warm = ["a warm-up sentence .", "another one for the first call"] * 4
    model.encode(warm, batch_size=bs, precision=args.precision)
    with autocast(args.precision, args.device):
        st.encode(warm, batch_size=bs, show_progress_bar=False)
    times: dict[str, list[float]] = {"ours": [], "theirs": [], "ours_encode": []}
    for rnd in range(args.sts_rounds):
        for who in (("ours", "theirs") if rnd % 2 == 0 else ("theirs", "ours")):
            t0 = time.perf_counter()
            if who == "ours":
                ours_emb.clear()
                stats.update(encode_s=0.0, encoded=0)
                ours_res = evaluate_sts(encode, task_path, tasks, ALL_SPLITS, bs, progress=False)
                times["ours_encode"].append(stats["encode_s"])
            else:
                theirs_emb: dict[str, np.ndarray] = {}
                theirs_res, per_task_s = {}, {}
                for task in tasks:
                    t_task = time.perf_counter()
                    theirs_res[task] = their_sts(st, task, task_path, bs, theirs_emb, args.precision)
                    per_task_s[task] = time.perf_counter() - t_task
            sync(args.device)
            times[who].append(time.perf_counter() - t0)
        print(f"  round {rnd + 1}: ours {times['ours'][-1]:.1f}s, theirs {times['theirs'][-1]:.1f}s", flush=True)
    rows: dict[str, dict[str, Any]] = {}
    for task in tasks:
        ours_sp = our_spearmans(task, ours_res[task])
        theirs_sp, n_theirs = theirs_res[task]
        keys = ours_sp.keys() & theirs_sp.keys()
        headline = "all" if task in STS_YEARS else "test"
        rows[task] = {"n_theirs": n_theirs, "theirs_s": per_task_s[task], "keys_compared": len(keys),
                      "max_abs_diff": max(abs(ours_sp[k] - theirs_sp[k]) for k in keys),
                      "headline_diff": abs(ours_sp[headline] - theirs_sp[headline])}
    emb_diff = max(float(np.abs(_unit(ours_emb[t]) - _unit(theirs_emb[t])).max()) for t in theirs_emb)
    return {"tasks": rows, "ours_s": med(times["ours"]), "ours_encode_s": med(times["ours_encode"]),
            "theirs_s": med(times["theirs"]), "n_ours": stats["encoded"], "rounds": times,
            "max_abs_embedding_diff": emb_diff}  # unit vectors: the ST model ends in Normalize


def profile_task(args: argparse.Namespace, path: str) -> dict[str, Any]:
    """cProfile of both sides on one task: where does the time go (tokenising, padding, forward, engine)?"""
    import cProfile
    import io
    import pstats

    from sentence_transformers import SentenceTransformer

    model = ours(path, args.seed)
    st = SentenceTransformer(path, device="cpu")
    st.max_seq_length = max_input_length(model.tokenizer, model.backbone.config)
    bs = args.eval_batch_size
    model.encode(["warm-up ."] * 4, batch_size=bs)
    st.encode(["warm-up ."] * 4, batch_size=bs, show_progress_bar=False)
    jobs = {
        "ours": lambda: evaluate_sts(lambda s: model.encode(s, batch_size=bs), args.task_path, [args.profile],
                                     ALL_SPLITS, bs, progress=False),
        "theirs": lambda: their_sts(st, args.profile, args.task_path, bs),
    }
    out = {}
    for name, job in jobs.items():
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.runcall(job)
        wall = time.perf_counter() - t0
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(14)
        print(f"==== {name}: {wall:.2f}s (under cProfile) ====")
        print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:6000], flush=True)
        out[name] = wall
    return out


# ---------------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet()
    set_threads(args.threads)
    import sentence_transformers

    info = machine_info(args.device)
    info["sentence_transformers"] = sentence_transformers.__version__
    print_machine(info)
    result: dict[str, Any] = {"machine": info, "args": vars(args)}
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as workdir:
        path = resolve_model(args.config, args.model_path, workdir)
        result["backbone"] = path
        if args.profile:
            result["profile_wall_s"] = profile_task(args, path)
            return result
        if args.part in ("train", "both"):
            n_loop = args.batch_size * max(1, min(args.loop_reps, 8))
            sentences = read_sentences(max(n_loop, args.batch_size * args.trainer_steps))
            diff = check_same_loss(path, sentences[: args.batch_size], args.max_len)
            print(f"check: |our loss - MNRL loss| with dropout off = {diff:.2e}", flush=True)
            print(f"training, manual loop: batch {args.batch_size}, max length {args.max_len}", flush=True)
            loop = bench_loop(args, path, sentences)
            print(f"training, Trainers: {args.trainer_rounds} rounds x {args.trainer_steps} steps each", flush=True)
            trainers = bench_trainers(args, path, sentences, workdir)
            result.update(loss_diff=diff, loop=loop, trainer=trainers)
            print()
            rows = [[level, who, f"{r['median_step_s']:.3f}", r["spread"], f"{r['sentences_per_s']:.1f}"]
                    for level, res in (("loop", loop), ("trainer", trainers)) for who, r in res.items()]
            print_table(["level", "library", "median step s", "min-max s", "sentences/s"], rows)
            for level, res in (("loop", loop), ("trainer", trainers)):
                ratio = res["ours"]["sentences_per_s"] / res["sentence_transformers"]["sentences_per_s"]
                result[f"train_{level}_ratio"] = ratio
                lines.append(f"training throughput ours/sentence-transformers ({level}) = {ratio:.3f} "
                             f"(target >= 1.0 -> {verdict(ratio >= 1.0)})")
        if args.part in ("sts", "both"):
            task_path = args.task_path
            if args.quick:
                sents = synthetic_sentences(120, seed=3)
                rng = np.random.default_rng(0)
                pairs = {s: [(sents[i], sents[i + 1], float(rng.uniform(0, 5))) for i in range(o, o + 40, 2)]
                         for s, o in (("train", 0), ("dev", 40), ("test", 80))}
                task_path = write_stsb_folder(Path(workdir) / "sts", pairs)
                args.tasks = "STSBenchmark"
            print(f"STS suite: tasks {args.tasks}, batch {args.eval_batch_size}", flush=True)
            sts = bench_sts(args, path, task_path)
            result["sts"] = sts
            rows_sts = sts["tasks"]
            ours_s, theirs_s, n = sts["ours_s"], sts["theirs_s"], sts["n_ours"]
            n_theirs = sum(r["n_theirs"] for r in rows_sts.values())
            max_diff = max(r["max_abs_diff"] for r in rows_sts.values())
            head_diff = max(r["headline_diff"] for r in rows_sts.values())
            emb_diff = sts["max_abs_embedding_diff"]
            print()
            table = [[t, r["n_theirs"], f"{r['theirs_s']:.2f}", f"{r['max_abs_diff']:.1e}", f"{r['headline_diff']:.1e}"]
                     for t, r in rows_sts.items()]
            print_table(["task", "sentences (theirs)", "theirs s", "max|dSpearman|", "headline |d|"], table)
            print()
            print_table(["side", "sentences encoded", "wall s (median)", "of which encode s", "rounds s"],
                        [["ours (one evaluate_sts call)", n, f"{ours_s:.2f}", f"{sts['ours_encode_s']:.2f}",
                          ", ".join(f"{x:.1f}" for x in sts["rounds"]["ours"])],
                         ["sentence-transformers (per task)", n_theirs, f"{theirs_s:.2f}", "",
                          ", ".join(f"{x:.1f}" for x in sts["rounds"]["theirs"])]])
            speedup = theirs_s / ours_s
            result.update(sts_speedup=speedup, sts_max_diff=max_diff, sts_headline_diff=head_diff,
                          sts_max_embedding_diff=emb_diff, sts_sentences=n, sts_theirs_sentences=n_theirs,
                          sts_ours_s=ours_s, sts_theirs_s=theirs_s)
            lines.append(f"STS suite: ours {ours_s:.1f}s ({n} distinct sentences encoded), sentence-transformers "
                         f"{theirs_s:.1f}s ({n_theirs} encoded, per task)")
            result.update(encode_sentences_per_s={"ours": n / sts["ours_encode_s"], "theirs": n_theirs / theirs_s})
            lines.append(f"encode throughput: ours {n / sts['ours_encode_s']:.0f} sentences/s (encode calls only), "
                         f"sentence-transformers {n_theirs / theirs_s:.0f} sentences/s (whole per-task loop; cosine "
                         f"and Spearman are < 1 % of it)")
            lines.append(f"STS suite speed-up ours vs sentence-transformers = {speedup:.3f} "
                         f"(target >= 1.5 -> {verdict(speedup >= 1.5)})")
            lines.append(f"Spearman agreement: max |difference| over every subset/split = {max_diff:.2e} (target <= "
                         f"1e-4 -> {verdict(max_diff <= 1e-4)}); over the headline numbers (STS12-16 all, STS-B and "
                         f"SICK-R test) = {head_diff:.2e} ({verdict(head_diff <= 1e-4)}); max |embedding difference| "
                         f"= {emb_diff:.2e}")
    return report(result, lines, args.json)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
