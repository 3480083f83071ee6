"""Folders for the GPU check (``bench/device/device_check.sh``): what travels to the device, and what is built there.

    python -m bench.device.device_data fp16 SRC DST   # a checkpoint's float weights as fp16 safetensors (half size)
    python -m bench.device.device_data fp32 SRC DST   # ... and back to float32 (on the device, before training)
    python -m bench.device.device_data sts SRC DST [--max-pairs N]
        # the STS / SICK files SentEval reads (first N pairs)
    python -m bench.device.device_data random OUT --tokenizer DIR [--tiny]
        # random BERT-base + DistilBERT, that tokenizer
    python -m bench.device.device_data head SRC DST N
        # the first N lines of a text / csv file (csv: + its header)
    python -m bench.device.device_data compare A.json CPU_DIR ...
        # STS tables of a GPU run against the committed CPU runs
    python -m bench.device.device_data check-run RUN STS_DIR
        # a finished run: best checkpoint, reload, evaluate (a row)

Only weights change in ``fp16`` / ``fp32``: every other file of the folder (config, tokenizer,
sentence-transformers files) is copied as it is, and the tensor names stay the same.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
from pathlib import Path

WEIGHTS = "model.safetensors"
SKIP = {"README.md", ".gitattributes", "data_config.json"}  # not needed to load or run the model


def cast_checkpoint(src: str | Path, dst: str | Path, dtype: str) -> Path:
    """Copy the folder ``src`` to ``dst`` with the floating-point tensors of ``model.safetensors`` cast to ``dtype``
    (``float16`` or ``float32``)."""
    import torch
    from safetensors.torch import load_file, save_file

    src, dst, dtype = Path(src), Path(dst), getattr(torch, dtype)
    if not (src / WEIGHTS).is_file():
        raise FileNotFoundError(f"{src / WEIGHTS} not found (a folder written by save_pretrained is needed)")
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name in SKIP or item.name == WEIGHTS:
            continue
        if item.is_dir():
            shutil.copytree(item, dst / item.name, dirs_exist_ok=True)
        else:
            shutil.copy2(item, dst / item.name)
    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_file(str(src / WEIGHTS)).items()}
    save_file(tensors, str(dst / WEIGHTS), metadata={"format": "pt"})
    return dst


def sts_files(root: Path) -> list[Path]:
    """The files SentEval's STS tasks read, relative to the downstream folder."""
    from senteval.sts import STS_SUBSETS

    files = []
    for year, subsets in STS_SUBSETS.items():
        for subset in subsets:
            files += [Path("STS") / f"{year}-en-test" / f"STS.{kind}.{subset}.txt" for kind in ("input", "gs")]
    files += [Path("STS") / "STSBenchmark" / f"sts-{split}.csv" for split in ("train", "dev", "test")]
    files += [Path("SICK") / name for name in ("SICK_train.txt", "SICK_trial.txt", "SICK_test_annotated.txt")]
    missing = [str(root / f) for f in files if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"STS data incomplete under {root}: {', '.join(missing[:3])} ...")
    return files


def copy_sts(src: str | Path, dst: str | Path, max_pairs: int | None = None) -> Path:
    """Copy the STS / SICK files (no readmes, no extra formats); with ``max_pairs``, only the first pairs of each."""
    src, dst = Path(src), Path(dst)
    for rel in sts_files(src):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if max_pairs is None:
            shutil.copy2(src / rel, target)
            continue
        lines = (src / rel).read_bytes().splitlines(keepends=True)
        header = 1 if rel.parts[0] == "SICK" else 0
        target.write_bytes(b"".join(lines[: header + max_pairs]))
    return dst


def save_random_models(out: str | Path, tokenizer: str, tiny: bool = False, seed: int = 0) -> dict[str, str]:
    """Random-weight BERT (base: 12 x 768; tiny: 2 x 32) and DistilBERT (6 x 768; tiny: 2 x 32) with ``tokenizer``'s
    vocabulary, saved as ``out/bert`` and ``out/distilbert``: paper-sized timings, and the separate-proxy path."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel, DistilBertConfig, DistilBertModel

    out = Path(out)
    tok = AutoTokenizer.from_pretrained(tokenizer)
    if tiny:
        bert = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64, max_position_embeddings=512)
        distil = DistilBertConfig(vocab_size=tok.vocab_size, dim=32, n_layers=2, n_heads=4, hidden_dim=64)
    else:
        bert = BertConfig(vocab_size=tok.vocab_size)  # bert-base-uncased's shape
        distil = DistilBertConfig(vocab_size=tok.vocab_size)  # distilbert-base-uncased's shape
    paths = {}
    for name, model_cls, config in (("bert", BertModel, bert), ("distilbert", DistilBertModel, distil)):
        torch.manual_seed(seed)
        model_cls(config).save_pretrained(out / name)
        tok.save_pretrained(out / name)
        paths[name] = str(out / name)
    return paths


def head(src: str | Path, dst: str | Path, n: int) -> Path:
    lines = Path(src).read_text(encoding="utf-8").splitlines(keepends=True)
    keep = lines[: n + (1 if str(src).endswith(".csv") else 0)]
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).write_text("".join(keep), encoding="utf-8")
    return Path(dst)


def compare(eval_json: str, cpu_dirs: list[str], target: float = 0.3) -> list[str]:
    """Markdown lines: each evaluated model's SimCSE table against the committed CPU fp32 run(s) it names.

    ``cpu_dirs`` are ``NAME=docs/results/cpu/<config>`` pairs; a model whose path contains NAME is compared with
    ``<config>/seed1`` (same seed and steps) and shown next to the mean and range of all seeds there.
    """
    payload = json.loads(Path(eval_json).read_text(encoding="utf-8"))
    keys = ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr", "avg")
    lines = ["| run | " + " | ".join(keys) + " | max abs diff vs CPU seed 1 | within target |",
             "|" + "---|" * (len(keys) + 3)]
    refs = dict(item.split("=", 1) for item in cpu_dirs)
    for record in payload["models"]:
        row = record["simcse"]
        name = Path(record["model"]).name
        match = [ref for key, ref in refs.items() if key in name]
        cells = [f"{row.get(k, float('nan')):.2f}" for k in keys]
        if not match:
            lines.append(f"| {name} | " + " | ".join(cells) + " | - | - |")
            continue
        seeds = sorted(Path(match[0]).glob("seed*/eval_test.json"))
        tables = {p.parent.name: json.loads(p.read_text())["models"][0]["simcse"] for p in seeds}
        diff = max(abs(row[k] - tables["seed1"][k]) for k in keys) if "seed1" in tables else float("nan")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {diff:.2f} | {'yes' if diff <= target else 'NO'} |")
        lines.append("| CPU fp32 seed 1 | " + " | ".join(f"{tables['seed1'][k]:.2f}" for k in keys) + " | | |")
        avgs = [t["avg"] for t in tables.values()]
        lines.append(f"| CPU fp32, {len(avgs)} seeds | avg mean {statistics.mean(avgs):.2f}, range "
                     f"{min(avgs):.2f}-{max(avgs):.2f} | | | | | | | | | |")
    return lines


def check_run(run: str | Path, sts_dir: str) -> str:
    """A markdown row for a finished ``load_best_model_at_end`` run: the best checkpoint was recorded and kept, the
    final model is its weights, and the saved model reloads and evaluates (STS-B dev, SICK-R dev)."""
    import torch
    from safetensors.torch import load_file

    from simcse_gs.evaluation.evaluate import evaluate
    from simcse_gs.model import SimCSEGSModel

    run = Path(run)
    state = json.loads((run / "trainer_state.json").read_text(encoding="utf-8"))
    best = state.get("best_model_checkpoint")
    if not best or not (Path(best) / WEIGHTS).is_file():
        raise AssertionError(f"{run}: no best checkpoint kept (best_model_checkpoint = {best})")
    final, kept = load_file(str(run / WEIGHTS)), load_file(str(Path(best) / WEIGHTS))
    same = final.keys() == kept.keys() and all(torch.equal(final[k], kept[k]) for k in final)
    if not same:
        raise AssertionError(f"{run}: the final model is not the best checkpoint {best}")
    model = SimCSEGSModel.from_pretrained(run)
    proxy = model.proxy.encoder.config.model_type if model.proxy is not None else "none"
    with contextlib.redirect_stdout(sys.stderr):  # evaluation.py's tables go to the log, the row to stdout
        payload = evaluate(["--model_name_or_path", str(run), "--mode", "dev", "--senteval_data", sts_dir,
                            "--no_progress"])
    dev = payload["models"][0]["dev"]
    return (f"| {run.name} | {state['global_step']} steps (proxy: {proxy}) | {Path(best).name}, best "
            f"{state.get('best_metric')} | {dev['stsb_spearman']:.2f}, {dev['sickr_spearman']:.2f} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("fp16", "fp32"):
        s = sub.add_parser(name)
        s.add_argument("src")
        s.add_argument("dst")
    s = sub.add_parser("sts")
    s.add_argument("src")
    s.add_argument("dst")
    s.add_argument("--max-pairs", type=int, default=None)
    s = sub.add_parser("random")
    s.add_argument("out")
    s.add_argument("--tokenizer", required=True)
    s.add_argument("--tiny", action="store_true")
    s = sub.add_parser("head")
    s.add_argument("src")
    s.add_argument("dst")
    s.add_argument("n", type=int)
    s = sub.add_parser("check-run")
    s.add_argument("run")
    s.add_argument("sts_dir")
    s = sub.add_parser("compare")
    s.add_argument("eval_json")
    s.add_argument("cpu_dirs", nargs="+", help="NAME=docs/results/cpu/<config>")
    args = p.parse_args(argv)
    if args.cmd in ("fp16", "fp32"):
        cast_checkpoint(args.src, args.dst, "float16" if args.cmd == "fp16" else "float32")
    elif args.cmd == "sts":
        copy_sts(args.src, args.dst, args.max_pairs)
    elif args.cmd == "random":
        print(json.dumps(save_random_models(args.out, args.tokenizer, args.tiny)))
    elif args.cmd == "head":
        head(args.src, args.dst, args.n)
    elif args.cmd == "check-run":
        print(check_run(args.run, args.sts_dir))
    else:
        print("\n".join(compare(args.eval_json, args.cpu_dirs)))


if __name__ == "__main__":
    sys.exit(main())
