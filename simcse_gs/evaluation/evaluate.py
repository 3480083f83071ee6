"""STS evaluation (SentEval, cosine similarity, Spearman) of simcse-gs checkpoints and plain HF encoders.

The logic of ``python evaluation.py`` (a thin wrapper around :func:`main`):

    python evaluation.py --model_name_or_path outputs/unsup-gs --mode test
    python evaluation.py --model_name_or_path bert-base-uncased outputs/unsup-gs --pooler avg --mode dev
    python evaluation.py --model_name_or_path outputs/unsup-gs --tasks STSBenchmark SICKRelatedness

Prints markdown tables (SimCSE's protocol; the original GS repo's columns; keep statistics and wall time) and,
with ``--output_json``, writes every number. See docs/EVALUATION.md for how each column is computed. In Python,
:func:`evaluate` returns the numbers and raises :class:`EvaluationError`; :func:`main` is the command line (see
:mod:`simcse_gs.cli`): bad input ends with one line on stderr, ``evaluation.py: error: ...``, and exit status 2.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import HfArgumentParser, set_seed

import senteval

from ..cli import RUN_FAILURE, USAGE_ERROR, fail
from ..model.configuration import check_keep_budget
from ..model.keep import KeepStatsAccumulator
from ..model.pooling import POOLER_TYPES
from ..model.precision import PRECISIONS
from ..model_folder import ModelFolderError, inspect_model, load_checkpoint, max_input_length
from .hf_encoder import HFEncoder
from .sts import (
    ALL_TASKS,
    DEV_TABLE,
    ORIGINAL_GS_COLUMNS,
    SIMCSE_TABLE,
    evaluate_sts,
    find_sts_data,
    original_gs_summary,
    simcse_summary,
    split_summary,
)

PROG = "evaluation.py"
DEV_TASKS = ("STSBenchmark", "SICKRelatedness")
TEST_SPLITS = ("train", "dev", "test", "train_and_dev", "all")  # everything both test tables need
TASK_SETS = {"sts": ALL_TASKS}
KEEP_KEYS = ("keep_rate", "keep_prob", "keep_entropy")


class EvaluationError(Exception):
    """Bad input: reported as one line on stderr and exit status 2, without a traceback."""


class OutputError(Exception):
    """The results could not be written (a failure during the run: exit status 1)."""


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
        metadata={"help": "Folder with STS/ and SICK/ (default: $SENTEVAL_DATA, else SentEval/data/downstream, else "
                  "the shared copy ../shared/data/downstream beside the checkout)."},
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
    keep_budget: float | None = field(
        default=None,
        metadata={"help": "simcse-gs checkpoints: keep the ceil(r * n) best tokens of every sentence (by the proxy, or "
                  "by the checkpoint's IDF / random control) instead of its own inference rule."},
    )
    prune: bool = field(
        default=False,
        metadata={"help": "simcse-gs checkpoints: remove the dropped tokens from the input (exact, and faster, under "
                  "the renormalised attention, --gs_attn_renorm) instead of masking them."},
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


@dataclass
class LoadedModel:
    name: str
    encoder: Any  # SimCSEGSModel or HFEncoder: both have encode(sentences, batch_size, max_length, ..., keep_stats)
    kind: str  # simcse_gs, sentence_transformers or hf (simcse_gs.model_folder.KINDS)
    pooler: str
    use_gs: bool
    max_length: int | None
    info: dict[str, Any] = field(default_factory=dict)


def load_model(name: str, args: EvalArguments, device: torch.device) -> LoadedModel:
    """Inspect ``name`` (:mod:`simcse_gs.model_folder`: kind, weights) and load it behind ``encode``."""
    try:
        folder = inspect_model(name)
    except ModelFolderError as err:
        raise EvaluationError(str(err)) from None
    remote = {"trust_remote_code": args.trust_remote_code}
    try:
        if folder.kind == "simcse_gs":
            model = load_checkpoint(name, device=device).eval()
            cfg = model.config
            if args.pooler is not None and args.pooler != cfg.pooler_type:
                print(f"{PROG}: note: {name} is a simcse-gs checkpoint and uses its own pooler '{cfg.pooler_type}'; "
                      f"--pooler {args.pooler} applies to plain encoders only", file=sys.stderr)
            info = {"use_gs": cfg.use_gs, "pooler_type": cfg.pooler_type, "mlp_only_train": cfg.mlp_only_train,
                    "token_drop_rate": cfg.token_drop_rate, "backbone": cfg.backbone_config.get("model_type")}
            limit = max_input_length(model.tokenizer, model.backbone.config)  # encode's own default
            max_length = min(args.max_length, limit) if args.max_length else limit
            return LoadedModel(name, model, folder.kind, cfg.pooler_type, bool(cfg.use_gs), max_length, info)
        pooler = args.pooler or "avg"
        encoder = HFEncoder.from_pretrained(name, pooler, device, args.max_length, **remote)
        info = {"model_type": encoder.model.config.model_type,
                "sentence_transformers_max_seq_length": folder.st_max_seq_length}
        return LoadedModel(name, encoder, folder.kind, pooler, False, encoder.max_length, info)
    except ModelFolderError as err:
        raise EvaluationError(str(err)) from None
    except Exception as exc:
        raise EvaluationError(f"could not load {name} ({_first_line(exc)})") from None


# ---------------------------------------------------------------------------------------------- evaluation


def evaluate_model(loaded: LoadedModel, args: EvalArguments, task_path: str, tasks: list[str],
                   splits: list[str]) -> dict[str, Any]:
    stats = KeepStatsAccumulator()
    counts = {"sentences": 0}
    selection = {}
    if args.keep_budget is not None or args.prune:
        if loaded.kind != "simcse_gs":
            raise EvaluationError(f"--keep_budget and --prune select tokens of simcse-gs checkpoints; {loaded.name} is "
                                  "a plain encoder")
        try:
            loaded.encoder.check_inference_options(args.keep_budget, args.prune)
        except ValueError as exc:
            raise EvaluationError(f"{loaded.name}: {exc}") from None
        selection = {"keep_budget": args.keep_budget, "prune": args.prune}

    def encode(sentences: list[str]) -> torch.Tensor:
        counts["sentences"] += len(sentences)
        return loaded.encoder.encode(sentences, batch_size=args.batch_size, max_length=loaded.max_length,
                                     show_progress_bar=args.progress, keep_stats=stats, precision=args.precision,
                                     **selection)

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
    record["keep_stats"] = (stats.compute() or None) if loaded.use_gs or selection else None
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
        rows = [[r["model"], *(_fmt(r["dev"].get(k)) for k, _ in DEV_TABLE)] for r in records]
        out += ["STS dev (Spearman x100, cosine; STS-B dev and SICK-R dev)", "",
                markdown_table(["model", *(header for _, header in DEV_TABLE)], rows)]
    else:
        rows = [[r["model"], *(_fmt(r["simcse"].get(k)) for k, _ in SIMCSE_TABLE)] for r in records]
        out += ["SimCSE protocol (Spearman x100, cosine; STS12-16 'all', STS-B test, SICK-R test)", "",
                markdown_table(["model", *(header for _, header in SIMCSE_TABLE)], rows)]
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
        raise OutputError(f"cannot write --output_json {path} ({_first_line(exc)})") from None


# ---------------------------------------------------------------------------------------------- main


def run(args: EvalArguments) -> dict[str, Any]:
    """Evaluate every model of ``args``; raises :class:`EvaluationError` (bad input) or :class:`OutputError`."""
    if not args.model_name_or_path:
        raise EvaluationError("--model_name_or_path is required (one or more models)")
    if args.batch_size < 1:
        raise EvaluationError(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.max_length is not None and args.max_length < 2:
        raise EvaluationError(f"--max_length must be >= 2, got {args.max_length}")
    try:
        check_keep_budget(args.keep_budget)
    except ValueError as err:
        raise EvaluationError(str(err).rstrip(".")) from None
    tasks, splits = resolve_tasks(args)
    device = resolve_device(args.device)
    try:
        task_path = find_sts_data(args.senteval_data)
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


def parse_args(argv: list[str] | None = None, prog: str = PROG) -> EvalArguments:
    """The flags (argparse exits with status 2 and ``PROG: error: ...`` on an unknown or malformed one)."""
    parser = HfArgumentParser(EvalArguments)
    parser.prog = prog
    (args,) = parser.parse_args_into_dataclasses(args=sys.argv[1:] if argv is None else argv)
    return args


def evaluate(argv: list[str] | None = None) -> dict[str, Any]:
    """``evaluation.py`` in-process: the results payload; errors propagate as exceptions."""
    return run(parse_args(argv))


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """The command line: tables on stdout; bad input exits 2, a failure to write the results 1 (simcse_gs.cli)."""
    try:
        args = parse_args(argv, prog)  # HfArgumentParser: ValueError for a flag it does not know
    except ValueError as err:
        return fail(prog, err, USAGE_ERROR)
    try:
        run(args)
    except EvaluationError as err:
        return fail(prog, err, USAGE_ERROR)
    except OutputError as err:
        return fail(prog, err, RUN_FAILURE)
    return 0


def console() -> int:
    """The ``simcse-gs-eval`` console command: :func:`main` under that name."""
    return main(prog="simcse-gs-eval")
