"""STS evaluation (SentEval, cosine similarity, Spearman) of simcse-gs checkpoints and plain HF encoders.

    python evaluation.py --model_name_or_path outputs/unsup-gs --mode test
    python evaluation.py --model_name_or_path bert-base-uncased outputs/unsup-gs --pooler avg --mode dev
    python evaluation.py --model_name_or_path outputs/unsup-gs --tasks STSBenchmark SICKRelatedness

Prints markdown tables (SimCSE's protocol; the original GS repo's columns; keep statistics and wall time) and,
with ``--output_json``, writes every number. See docs/EVALUATION.md for how each column is computed.
Bad input (missing folder or weights, corrupted safetensors, missing data) ends with one line on stderr,
``evaluation.py: error: ...``, and exit status 2.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoTokenizer, HfArgumentParser, PretrainedConfig, set_seed
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

import senteval
from simcse_gs.hf_encoder import HFEncoder, sentence_transformers_max_length
from simcse_gs.keep import KeepStatsAccumulator
from simcse_gs.modeling import SimCSEGSModel
from simcse_gs.pooling import POOLER_TYPES
from simcse_gs.precision import PRECISIONS
from simcse_gs.sts_eval import (
    ALL_TASKS,
    ORIGINAL_GS_COLUMNS,
    evaluate_sts,
    original_gs_summary,
    simcse_summary,
    split_summary,
)

PROG = "evaluation.py"
DEV_TASKS = ("STSBenchmark", "SICKRelatedness")
TEST_SPLITS = ("train", "dev", "test", "train_and_dev", "all")  # everything both test tables need
TASK_SETS = {"sts": ALL_TASKS}
SIMCSE_HEADERS = ("STS12", "STS13", "STS14", "STS15", "STS16", "STS-B", "SICK-R", "Avg")
SIMCSE_KEYS = ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr", "avg")
DEV_HEADERS = ("STS-B dev", "SICK-R dev", "Avg")
DEV_KEYS = ("stsb_spearman", "sickr_spearman", "avg_sts")
KEEP_KEYS = ("keep_rate", "keep_prob", "keep_entropy")


class EvaluationError(Exception):
    """Bad input: reported as one line on stderr and exit status 2, without a traceback."""


@dataclass
class EvalArguments:
    model_name_or_path: list[str] = field(
        default_factory=list,
        metadata={"help": "One or more models: simcse-gs checkpoint folders (config.json model_type 'simcse_gs') "
                  "or plain Hugging Face encoders (hub name or folder)."},
    )
    pooler: str | None = field(
        default=None,
        metadata={"choices": list(POOLER_TYPES),
                  "help": "Pooler for plain HF encoders (default: avg). As in SimCSE's evaluation, 'cls' is the "
                  "model's pooler_output (Linear + Tanh over [CLS]; where SimCSE's released checkpoints and our "
                  "export keep the MLP head) and 'cls_before_pooler' the raw last-layer [CLS] vector. simcse-gs "
                  "checkpoints always use the pooler they were trained with."},
    )
    mode: str = field(
        default="test",
        metadata={"choices": ["dev", "test"],
                  "help": "dev: STS-B dev + SICK-R dev only (fast, for model selection); test: all seven tasks with "
                  "every split both result tables need."},
    )
    protocol: str = field(
        default="both",
        metadata={"choices": ["both", "simcse"],
                  "help": "test mode: 'both' = SimCSE's table and the original GS repo's columns (encodes STS-B and "
                  "SICK-R train/dev too); 'simcse' = SimCSE's table only (test splits: about a third fewer "
                  "sentences)."},
    )
    tasks: list[str] | None = field(
        default=None,
        metadata={"help": f"Explicit SentEval task list, any of: {', '.join(ALL_TASKS)} (default: by --mode). "
                  "In dev mode only STSBenchmark and SICKRelatedness have a dev split."},
    )
    task_set: str | None = field(
        default=None, metadata={"choices": list(TASK_SETS), "help": "sts: all seven STS tasks."}
    )
    senteval_data: str | None = field(
        default=None,
        metadata={"help": "Folder with STS/ and SICK/ (default: $SENTEVAL_DATA, else SentEval/data/downstream)."},
    )
    batch_size: int = field(default=128, metadata={"help": "Sentences per encoder batch."})
    max_length: int | None = field(
        default=None,
        metadata={"help": "Truncate sentences to this many tokens (default: the model's limit; for a "
                  "sentence-transformers folder its max_seq_length)."},
    )
    output_json: str | None = field(default=None, metadata={"help": "Write all numbers (per model) to this file."})
    seed: int = field(default=42, metadata={"help": "Random seed (evaluation is deterministic anyway)."})
    device: str | None = field(default=None, metadata={"help": "Device (default: cuda if available, else cpu)."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow custom modelling code from the hub (off by default)."}
    )
    progress: bool = field(default=True, metadata={"help": "Show tqdm progress bars (--no_progress to hide)."})
    precision: str = field(
        default="fp32",
        metadata={"choices": list(PRECISIONS),
                  "help": "Encoder precision: fp32, or bf16 / fp16 autocast (bf16: faster on CPUs with AVX-512 BF16 "
                  "or AMX and on GPUs; STS within 0.05 of fp32 on MiniLM, see docs/PERFORMANCE.md)."},
    )


# ---------------------------------------------------------------------------------------------- arguments


def resolve_tasks(args: EvalArguments) -> tuple[list[str], list[str]]:
    """The tasks and STS-B/SICK-R splits to evaluate, from --mode, --tasks and --task_set."""
    if args.tasks and args.task_set:
        raise EvaluationError("give either --tasks or --task_set, not both")
    if args.tasks:
        unknown = [t for t in args.tasks if t not in ALL_TASKS]
        if unknown:
            raise EvaluationError(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(ALL_TASKS)}")
        tasks = list(dict.fromkeys(args.tasks))
    elif args.task_set:
        tasks = list(TASK_SETS[args.task_set])
    else:
        tasks = list(DEV_TASKS if args.mode == "dev" else ALL_TASKS)
    if args.mode == "dev":
        no_dev = [t for t in tasks if t not in DEV_TASKS]
        if no_dev:
            raise EvaluationError(f"--mode dev evaluates dev splits, which {', '.join(no_dev)} do not have; "
                                  "use --mode test or --tasks STSBenchmark SICKRelatedness")
        return tasks, ["dev"]
    return [t for t in ALL_TASKS if t in tasks], list(TEST_SPLITS) if args.protocol == "both" else ["test"]


def check_data(task_path: str, tasks: list[str], splits: list[str]) -> None:
    """Read every file the run needs before any model is loaded, so missing or malformed data fails fast."""
    files = ["train", "dev", "test"] if "test" in splits else list(splits)
    for task in tasks:
        if task in senteval.sts.STS_SUBSETS:
            senteval.load_sts_year(task_path, task)
        elif task == "STSBenchmark":
            senteval.load_stsb(task_path, files)
        else:
            senteval.load_sick(task_path, files)


def resolve_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise EvaluationError(f"invalid --device {device!r} ({exc})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise EvaluationError(f"--device {device} asked for, but CUDA is not available")
    return resolved


# ---------------------------------------------------------------------------------------------- loading


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _looks_local(name: str) -> bool:
    return os.path.isabs(name) or name.startswith(("./", "../", "~", ".\\")) or name in (".", "..") or \
        name.count("/") > 1


def check_safetensors(path: Path) -> None:
    """Open a safetensors file's header; a truncated or garbage file fails here with a clear message."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception as exc:  # SafetensorError (rust) has no importable base class across versions
        raise EvaluationError(f"weights file {path} is corrupted (not a valid safetensors file: "
                              f"{_first_line(exc)}); re-save or re-download the checkpoint") from None


def check_weights(folder: Path, safetensors_only: bool) -> None:
    """Make sure ``folder`` holds loadable weights: model.safetensors (or its shards; or .bin for plain models)."""
    if (folder / SAFE_WEIGHTS_NAME).is_file():
        check_safetensors(folder / SAFE_WEIGHTS_NAME)
        return
    if (folder / SAFE_WEIGHTS_INDEX_NAME).is_file():
        try:
            shards = sorted(set(json.loads((folder / SAFE_WEIGHTS_INDEX_NAME).read_text())["weight_map"].values()))
        except (ValueError, KeyError, AttributeError) as exc:
            raise EvaluationError(f"{folder / SAFE_WEIGHTS_INDEX_NAME} is corrupted ({_first_line(exc)})") from None
        for shard in shards:
            if not (folder / shard).is_file():
                raise EvaluationError(f"weights shard {folder / shard} is missing "
                                      f"(listed in {SAFE_WEIGHTS_INDEX_NAME})")
            check_safetensors(folder / shard)
        return
    if not safetensors_only and ((folder / WEIGHTS_NAME).is_file() or (folder / WEIGHTS_INDEX_NAME).is_file()):
        return
    raise EvaluationError(f"{folder} has no weights: {SAFE_WEIGHTS_NAME} is missing "
                          "(expected a folder written by save_pretrained)")


def read_config(name: str) -> tuple[dict[str, Any], bool]:
    """config.json of a folder or hub model, and whether ``name`` is a local folder; checks local weights."""
    path = Path(name).expanduser()
    if path.exists() or _looks_local(name):
        if not path.exists():
            raise EvaluationError(f"model path {name} does not exist")
        if not path.is_dir():
            raise EvaluationError(f"model path {name} is a file; give the folder that holds config.json and "
                                  f"{SAFE_WEIGHTS_NAME}")
        config_file = path / "config.json"
        if not config_file.is_file():
            raise EvaluationError(f"{name} is not a model folder: config.json is missing")
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise EvaluationError(f"{config_file} is corrupted (not valid JSON: {_first_line(exc)})") from None
        if not isinstance(config, dict):
            raise EvaluationError(f"{config_file} is corrupted (not a JSON object)")
        check_weights(path, safetensors_only=config.get("model_type") == "simcse_gs")
        return config, True
    try:
        config, _ = PretrainedConfig.get_config_dict(name)
    except Exception as exc:
        raise EvaluationError(f"{name}: no such local folder, and it could not be loaded from the Hugging Face Hub "
                              f"({_first_line(exc)})") from None
    return config, False


@dataclass
class LoadedModel:
    name: str
    encoder: Any  # SimCSEGSModel or HFEncoder: both have encode(sentences, batch_size, max_length, ..., keep_stats)
    kind: str  # "simcse_gs" or "hf"
    pooler: str
    use_gs: bool
    max_length: int | None
    info: dict[str, Any] = field(default_factory=dict)


def load_model(name: str, args: EvalArguments, device: torch.device) -> LoadedModel:
    config, local = read_config(name)
    remote = {"trust_remote_code": args.trust_remote_code}
    try:
        if config.get("model_type") == "simcse_gs":
            model = SimCSEGSModel.from_pretrained(name)
            if model.tokenizer is None:
                if local:
                    raise EvaluationError(f"{name} has no tokenizer files (tokenizer.json / vocab.txt); "
                                          "save the checkpoint with SimCSEGSModel.save_pretrained")
                model.tokenizer = AutoTokenizer.from_pretrained(name, **remote)
            model.to(device).eval()
            cfg = model.config
            if args.pooler is not None and args.pooler != cfg.pooler_type:
                print(f"{PROG}: note: {name} is a simcse-gs checkpoint and uses its own pooler '{cfg.pooler_type}'; "
                      f"--pooler {args.pooler} applies to plain encoders only", file=sys.stderr)
            info = {"use_gs": cfg.use_gs, "pooler_type": cfg.pooler_type, "mlp_only_train": cfg.mlp_only_train,
                    "token_drop_rate": cfg.token_drop_rate, "backbone": cfg.backbone_config.get("model_type")}
            # the limit SimCSEGSModel.encode truncates to by default; a larger --max_length would overrun positions
            limit = min(model.tokenizer.model_max_length, model.backbone.config.max_position_embeddings - 2)
            max_length = min(args.max_length, limit) if args.max_length else limit
            return LoadedModel(name, model, "simcse_gs", cfg.pooler_type, bool(cfg.use_gs), max_length, info)
        pooler = args.pooler or "avg"
        encoder = HFEncoder.from_pretrained(name, pooler, device, args.max_length, **remote)
        info = {"model_type": encoder.model.config.model_type,
                "sentence_transformers_max_seq_length": sentence_transformers_max_length(name)}
        return LoadedModel(name, encoder, "hf", pooler, False, encoder.max_length, info)
    except EvaluationError:
        raise
    except Exception as exc:
        text = _first_line(exc)
        if "safetensor" in text.lower() or "header" in text.lower():
            raise EvaluationError(f"could not load {name}: a weights file is corrupted ({text})") from None
        raise EvaluationError(f"could not load {name} ({text})") from None


# ---------------------------------------------------------------------------------------------- evaluation


def evaluate_model(loaded: LoadedModel, args: EvalArguments, task_path: str, tasks: list[str],
                   splits: list[str]) -> dict[str, Any]:
    stats = KeepStatsAccumulator()
    counts = {"sentences": 0}

    def encode(sentences: list[str]) -> torch.Tensor:
        counts["sentences"] += len(sentences)
        return loaded.encoder.encode(sentences, batch_size=args.batch_size, max_length=loaded.max_length,
                                     show_progress_bar=args.progress, keep_stats=stats, precision=args.precision)

    start = time.perf_counter()
    results = evaluate_sts(encode, task_path, tasks, splits, args.batch_size, args.progress)
    record: dict[str, Any] = {"results": results, "eval_time_s": round(time.perf_counter() - start, 3),
                              "sentences_encoded": counts["sentences"]}
    if args.mode == "dev":
        record["dev"] = split_summary(results, "dev")
    else:
        record["simcse"] = simcse_summary(results)
        complete = set(ALL_TASKS) <= set(results) and "all" in splits
        record["original_gs"] = original_gs_summary(results) if complete else None
    record["keep_stats"] = stats.compute() if loaded.use_gs else None
    return record


# ---------------------------------------------------------------------------------------------- output


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def format_report(records: list[dict[str, Any]], mode: str) -> str:
    out = []
    if mode == "dev":
        rows = [[r["model"], *(_fmt(r["dev"].get(k)) for k in DEV_KEYS)] for r in records]
        out += ["STS dev (Spearman x100, cosine; STS-B dev and SICK-R dev)", "",
                markdown_table(["model", *DEV_HEADERS], rows)]
    else:
        rows = [[r["model"], *(_fmt(r["simcse"].get(k)) for k in SIMCSE_KEYS)] for r in records]
        out += ["SimCSE protocol (Spearman x100, cosine; STS12-16 'all', STS-B test, SICK-R test)", "",
                markdown_table(["model", *SIMCSE_HEADERS], rows)]
        gs_rows = [[r["model"], *(_fmt(r["original_gs"][k]) for k in ORIGINAL_GS_COLUMNS)]
                   for r in records if r["original_gs"] is not None]
        out += ["", "original GS repo columns (Spearman x100; stsbenchmark and sickrelatedness pool "
                "train+dev+test, see docs/EVALUATION.md)", ""]
        out += [markdown_table(["model", *ORIGINAL_GS_COLUMNS], gs_rows) if gs_rows
                else "(needs all seven tasks; not computed)"]
    rows = []
    for r in records:
        keep = r["keep_stats"] or {}
        rows.append([r["model"], r["kind"], r["pooler"], *(_fmt(keep.get(k), 4) for k in KEEP_KEYS),
                     _fmt(r["load_time_s"], 1), _fmt(r["eval_time_s"], 1), _fmt(r["wall_time_s"], 1)])
    out += ["", "keep statistics on the evaluated sentences (GS checkpoints; decided tokens, inference rule) "
            "and wall time", "",
            markdown_table(["model", "kind", "pooler", *KEEP_KEYS, "load s", "eval s", "wall s"], rows)]
    return "\n".join(out)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: str, payload: dict[str, Any]) -> None:
    target = Path(path).expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(_json_safe(payload), indent=2) + "\n", encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        raise EvaluationError(f"cannot write --output_json {path} ({_first_line(exc)})") from None


# ---------------------------------------------------------------------------------------------- main


def run(args: EvalArguments) -> dict[str, Any]:
    if not args.model_name_or_path:
        raise EvaluationError("--model_name_or_path is required (one or more models)")
    if args.batch_size < 1:
        raise EvaluationError(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.max_length is not None and args.max_length < 2:
        raise EvaluationError(f"--max_length must be >= 2, got {args.max_length}")
    tasks, splits = resolve_tasks(args)
    device = resolve_device(args.device)
    try:
        task_path = senteval.resolve_task_path(args.senteval_data)
        check_data(task_path, tasks, splits)
    except senteval.SentEvalError as exc:
        raise EvaluationError(str(exc)) from None
    set_seed(args.seed)
    bars_were_on = transformers.utils.logging.is_progress_bar_enabled()
    if not args.progress:
        transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars
    try:
        return _evaluate_all(args, tasks, splits, task_path, device)
    finally:
        if bars_were_on:
            transformers.utils.logging.enable_progress_bar()


def _evaluate_all(args: EvalArguments, tasks: list[str], splits: list[str], task_path: str,
                  device: torch.device) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "args": dataclasses.asdict(args), "task_path": task_path, "mode": args.mode, "tasks": tasks,
        "splits": splits, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "models": [],
    }
    for name in args.model_name_or_path:
        start = time.perf_counter()
        loaded = load_model(name, args, device)
        load_time = time.perf_counter() - start
        try:
            record = evaluate_model(loaded, args, task_path, tasks, splits)
        except senteval.SentEvalError as exc:
            raise EvaluationError(str(exc)) from None
        record = {"model": name, "kind": loaded.kind, "pooler": loaded.pooler, "use_gs": loaded.use_gs,
                  "max_length": loaded.max_length, "info": loaded.info, "load_time_s": round(load_time, 3),
                  **record, "wall_time_s": round(time.perf_counter() - start, 3)}
        payload["models"].append(record)
        if args.output_json:  # after every model, so a long multi-model run keeps what it has
            write_json(args.output_json, payload)
        del loaded
    print(format_report(payload["models"], args.mode))
    if args.output_json:
        print(f"\nwrote {args.output_json}")
    return payload


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = HfArgumentParser(EvalArguments)
    parser.prog = PROG
    (args,) = parser.parse_args_into_dataclasses(args=sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except EvaluationError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
