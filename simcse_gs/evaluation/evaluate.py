"""SentEval evaluation of simcse-gs checkpoints and plain HF encoders: STS (cosine similarity, Spearman) and the
transfer tasks (logistic regression on frozen embeddings, accuracy).

The logic of ``python evaluation.py`` (a thin wrapper around :func:`main`):

    python evaluation.py --model_name_or_path outputs/unsup-gs --mode test
    python evaluation.py --model_name_or_path bert-base-uncased outputs/unsup-gs --pooler avg --mode dev
    python evaluation.py --model_name_or_path outputs/unsup-gs --tasks STSBenchmark SICKRelatedness
    python evaluation.py --model_name_or_path outputs/unsup-gs --task_set transfer --mode fasttest

Prints markdown tables (SimCSE's protocol; the original GS repo's columns; SimCSE's transfer table; keep statistics
and wall time) and,
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
from ..model.layer_pruning import SCORERS, PruneSchedule
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
from .transfer import (
    MODE_PROTOCOL,
    TRANSFER_SET,
    TRANSFER_TABLE,
    TRANSFER_TASKS,
    check_transfer_data,
    evaluate_transfer,
    find_task_data,
    transfer_summary,
    transfer_times,
)

PROG = "evaluation.py"
DEV_TASKS = ("STSBenchmark", "SICKRelatedness")
TEST_SPLITS = ("train", "dev", "test", "train_and_dev", "all")  # everything both test tables need
# SimCSE's task sets (``na``: the --tasks list). The transfer set adds SentEval's SICK-E to SimCSE's seven tasks.
TASK_SETS = {"sts": ALL_TASKS, "transfer": TRANSFER_TASKS, "full": (*ALL_TASKS, *TRANSFER_TASKS)}
EVAL_TASKS = (*ALL_TASKS, *TRANSFER_TASKS)
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
        metadata={"choices": list(MODE_PROTOCOL),
                  "help": "As SimCSE's: dev: STS-B dev + SICK-R dev, and the transfer tasks' validation accuracy "
                  "under the fast classifier (for model selection); test: the STS test tables, and the transfer "
                  "tasks' test accuracy under SentEval's full classifier (10 folds, Adam, batch 64, tenacity 5, epoch "
                  "size 4); fasttest: as test with the fast classifier (5 folds, RMSprop, batch 128, tenacity 3, "
                  "epoch size 2). STS is the same in test and fasttest."},
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
        metadata={"help": f"Explicit SentEval task list, any of: {', '.join(EVAL_TASKS)} (default: the sts set). "
                  "In dev mode, of the STS tasks only STSBenchmark and SICKRelatedness have a dev split."},
    )
    task_set: str | None = field(
        default=None,
        metadata={"choices": [*TASK_SETS, "na"],
                  "help": "sts: the seven STS tasks (the default; in dev mode STS-B and SICK-R); transfer: MR, CR, "
                  "SUBJ, MPQA, SST2, TREC, MRPC and SICKEntailment; full: both; na: the --tasks list."},
    )
    senteval_data: str | None = field(
        default=None,
        metadata={"help": "SentEval's data/downstream folder: STS/ and SICK/, and MR/, CR/, ... for the transfer "
                  "tasks (default: $SENTEVAL_DATA, else SentEval/data/downstream, else the shared copy "
                  "../shared/data/downstream beside the checkout)."},
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
    prune_layers: list[int] | None = field(
        default=None,
        metadata={"help": "In-encoder pruning: after each of these layers (1-based, increasing), keep the best share "
                  "--prune_keep_rates of every sentence's tokens; later layers run on what is left (plain BERT/RoBERTa "
                  "encoders and simcse-gs checkpoints; default: off, or a checkpoint's own schedule)."},
    )
    prune_keep_rates: list[float] | None = field(
        default=None, metadata={"help": "One keep rate in (0, 1] per --prune_layers entry, non-increasing."}
    )
    prune_scorer: str = field(
        default="attention",
        metadata={"choices": list(SCORERS),
                  "help": "What in-encoder pruning keeps: attention (the attention a token receives), first, idf "
                  "(rarest first; --idf_file), random, merge (token merging), learned (a checkpoint's trained "
                  "heads)."},
    )
    idf_file: str | None = field(
        default=None,
        metadata={"help": "IDF table of --prune_scorer idf for plain encoders: a JSON list (one value per vocabulary "
                  "id), a JSON object {token: idf} (tokens not in it count as the rarest), or a torch file (.pt) "
                  "of the tensor. simcse-gs checkpoints use their own table."},
    )


# ---------------------------------------------------------------------------------------------- arguments


def resolve_tasks(args: EvalArguments) -> tuple[list[str], list[str]]:
    """The tasks (STS first, then transfer, each in table order) and the STS-B/SICK-R splits to evaluate, from
    --mode, --tasks and --task_set (SimCSE's: a set, or ``na`` and the --tasks list)."""
    if args.tasks and args.task_set not in (None, "na"):
        raise EvaluationError(f"give either --tasks or --task_set {args.task_set}, not both (--task_set na evaluates "
                              "the --tasks list)")
    if args.task_set == "na" and not args.tasks:
        raise EvaluationError("--task_set na evaluates the --tasks list: give --tasks")
    if args.tasks:
        unknown = [t for t in args.tasks if t not in EVAL_TASKS]
        if unknown:
            raise EvaluationError(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(EVAL_TASKS)}")
        tasks = list(dict.fromkeys(args.tasks))
    else:
        tasks = list(TASK_SETS[args.task_set or "sts"])
        if args.mode == "dev":  # of the STS tasks, only these have a dev split
            tasks = [t for t in tasks if t not in ALL_TASKS or t in DEV_TASKS]
    sts = [t for t in ALL_TASKS if t in tasks]
    transfer = [t for t in TRANSFER_TASKS if t in tasks]
    if args.mode == "dev":
        no_dev = [t for t in sts if t not in DEV_TASKS]
        if no_dev:
            raise EvaluationError(f"--mode dev evaluates dev splits, which {', '.join(no_dev)} do not have; "
                                  "use --mode test or --tasks STSBenchmark SICKRelatedness")
        return [*sts, *transfer], ["dev"]
    return [*sts, *transfer], list(TEST_SPLITS) if args.protocol == "both" else ["test"]


def check_data(task_path: str, tasks: list[str], splits: list[str]) -> None:
    """Read every file the run needs before any model is loaded, so missing or malformed data fails fast."""
    files = ["train", "dev", "test"] if "test" in splits else list(splits)
    for task in tasks:
        if task in senteval.sts.STS_SUBSETS:
            senteval.load_sts_year(task_path, task)
        elif task == "STSBenchmark":
            senteval.load_stsb(task_path, files)
        elif task == "SICKRelatedness":
            senteval.load_sick(task_path, files)
    check_transfer_data(task_path, tasks)


def load_idf(path: str, tokenizer: Any) -> torch.Tensor:
    """The ``idf`` scorer's table from ``--idf_file`` (see its help), one value per vocabulary id."""
    vocab_size = len(tokenizer)
    file = Path(path).expanduser()
    if not file.is_file():
        raise EvaluationError(f"--idf_file {path}: no such file")
    try:
        if file.suffix in (".pt", ".pth", ".bin"):
            table = torch.load(file, map_location="cpu", weights_only=True)
        else:
            table = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RuntimeError) as exc:
        raise EvaluationError(f"--idf_file {path}: cannot read it ({_first_line(exc)})") from None
    if isinstance(table, dict):  # {token: idf}: tokens not listed are the rarest
        vocab = tokenizer.get_vocab()
        unknown = [t for t in table if t not in vocab]
        if unknown:
            raise EvaluationError(f"--idf_file {path}: {len(unknown)} token(s) not in the tokenizer's vocabulary, "
                                  f"e.g. {unknown[0]!r}")
        try:
            values = {vocab[t]: float(v) for t, v in table.items()}
        except (TypeError, ValueError):
            raise EvaluationError(f"--idf_file {path}: the values must be numbers") from None
        out = torch.full((vocab_size,), max(values.values(), default=1.0), dtype=torch.float32)
        out[torch.tensor(list(values), dtype=torch.long)] = torch.tensor(list(values.values()), dtype=torch.float32)
        return out
    try:
        out = torch.as_tensor(table, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise EvaluationError(f"--idf_file {path}: expected a list of numbers or a {{token: idf}} object") from None
    if out.ndim != 1 or len(out) != vocab_size:
        raise EvaluationError(f"--idf_file {path}: expected one value per vocabulary id ({vocab_size}), got shape "
                              f"{list(out.shape)}")
    if not torch.isfinite(out).all():
        raise EvaluationError(f"--idf_file {path}: every value must be finite")
    return out


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


def inference_options(loaded: LoadedModel, args: EvalArguments, schedule: PruneSchedule | None) -> dict[str, Any]:
    """The token-selection keywords of ``encode`` for this model (--keep_budget/--prune, the in-encoder pruning
    schedule and its IDF table), refused with a one-line reason where this model cannot apply them."""
    selection: dict[str, Any] = {}
    if args.keep_budget is not None or args.prune:
        if loaded.kind != "simcse_gs":
            raise EvaluationError(f"--keep_budget and --prune select tokens of simcse-gs checkpoints; {loaded.name} is "
                                  "a plain encoder")
        selection = {"keep_budget": args.keep_budget, "prune": args.prune}
    if loaded.kind == "simcse_gs":
        if schedule is not None and args.idf_file:
            raise EvaluationError(f"--idf_file is for plain encoders; {loaded.name} is a simcse-gs checkpoint, which "
                                  "uses its own IDF table")
        if schedule is not None and schedule.scorer == "idf" and getattr(loaded.encoder, "idf", None) is None:
            raise EvaluationError(f"--prune_scorer idf needs an IDF table, which {loaded.name} has none of (a "
                                  "checkpoint trained with --token_drop_heuristic idf has one)")
        if selection or schedule is not None:
            try:
                loaded.encoder.check_inference_options(args.keep_budget, args.prune, schedule)
            except ValueError as exc:
                raise EvaluationError(f"{loaded.name}: {str(exc).rstrip('.')}") from None
        return {**selection, **({"prune_schedule": schedule} if schedule is not None else {})}
    if schedule is None:
        return selection
    try:
        loaded.encoder.check_prune_schedule(schedule)
    except ValueError as exc:
        raise EvaluationError(f"{loaded.name}: {str(exc).rstrip('.')}") from None
    idf = None
    if schedule.scorer == "idf":
        if not args.idf_file:
            raise EvaluationError("--prune_scorer idf on a plain encoder needs --idf_file (its IDF table)")
        idf = load_idf(args.idf_file, loaded.encoder.tokenizer)
    return {"prune_schedule": schedule, "idf": idf}


def evaluate_model(loaded: LoadedModel, args: EvalArguments, task_path: str, tasks: list[str],
                   splits: list[str], schedule: PruneSchedule | None = None) -> dict[str, Any]:
    stats = KeepStatsAccumulator()
    counts = {"sentences": 0}
    selection = inference_options(loaded, args, schedule)

    def encode(sentences: list[str]) -> torch.Tensor:
        counts["sentences"] += len(sentences)
        return loaded.encoder.encode(sentences, batch_size=args.batch_size, max_length=loaded.max_length,
                                     show_progress_bar=args.progress, keep_stats=stats, precision=args.precision,
                                     **selection)

    sts = [t for t in tasks if t in ALL_TASKS]
    transfer = [t for t in tasks if t in TRANSFER_TASKS]
    start = time.perf_counter()
    results = evaluate_sts(encode, task_path, sts, splits, args.batch_size, args.progress) if sts else {}
    if transfer:
        results.update(evaluate_transfer(encode, task_path, transfer, MODE_PROTOCOL[args.mode], args.batch_size,
                                         args.progress))
    record: dict[str, Any] = {"results": results, "eval_time_s": round(time.perf_counter() - start, 3),
                              "sentences_encoded": counts["sentences"]}
    record["dev"] = split_summary(results, "dev") if sts and args.mode == "dev" else None
    record["simcse"] = simcse_summary(results) if sts and args.mode != "dev" else None
    complete = set(ALL_TASKS) <= set(results) and "all" in splits
    record["original_gs"] = original_gs_summary(results) if complete else None
    if transfer:
        record["transfer"] = transfer_summary(results, "dev" if args.mode == "dev" else "test")
        record["transfer_protocol"] = MODE_PROTOCOL[args.mode]
        record["transfer_time"] = transfer_times(results)
    else:
        record["transfer"] = record["transfer_protocol"] = record["transfer_time"] = None
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
    if any(r["dev"] is not None for r in records):
        rows = [[r["model"], *(_fmt(r["dev"].get(k)) for k, _ in DEV_TABLE)] for r in records]
        out += ["STS dev (Spearman x100, cosine; STS-B dev and SICK-R dev)", "",
                markdown_table(["model", *(header for _, header in DEV_TABLE)], rows), ""]
    if any(r["simcse"] is not None for r in records):
        rows = [[r["model"], *(_fmt(r["simcse"].get(k)) for k, _ in SIMCSE_TABLE)] for r in records]
        out += ["SimCSE protocol (Spearman x100, cosine; STS12-16 'all', STS-B test, SICK-R test)", "",
                markdown_table(["model", *(header for _, header in SIMCSE_TABLE)], rows)]
        gs_rows = [[r["model"], *(_fmt(r["original_gs"][k]) for k in ORIGINAL_GS_COLUMNS)]
                   for r in records if r["original_gs"] is not None]
        out += ["", "original GS repo columns (Spearman x100; stsbenchmark and sickrelatedness pool "
                "train+dev+test, see docs/EVALUATION.md)", ""]
        out += [markdown_table(["model", *ORIGINAL_GS_COLUMNS], gs_rows) if gs_rows
                else "(needs all seven tasks; not computed)", ""]
    if any(r["transfer"] is not None for r in records):
        what = "validation accuracy" if mode == "dev" else "test accuracy"
        protocol = MODE_PROTOCOL[mode]
        rows = [[r["model"], *(_fmt(r["transfer"].get(k)) for k, _ in TRANSFER_TABLE)] for r in records]
        out += [f"Transfer tasks ({what} x100; SentEval's logistic regression, {protocol} protocol; Avg. over "
                f"{', '.join(TRANSFER_SET)})", "", markdown_table(["model", *(h for _, h in TRANSFER_TABLE)], rows), ""]
        rows = [[r["model"], str(r["transfer_time"]["sentences"]),
                 *(_fmt(r["transfer_time"][k], 1) for k in ("load_s", "encode_s", "classifier_s"))]
                for r in records if r["transfer_time"] is not None]
        out += ["transfer tasks: distinct sentences embedded, and seconds spent", "",
                markdown_table(["model", "sentences", "load s", "embed s", "classifier s"], rows), ""]
    rows = []
    for r in records:
        keep = r["keep_stats"] or {}
        rows.append([r["model"], r["kind"], r["pooler"], *(_fmt(keep.get(k), 4) for k in KEEP_KEYS),
                     _fmt(r["load_time_s"], 1), _fmt(r["eval_time_s"], 1), _fmt(r["wall_time_s"], 1)])
    out += ["keep statistics on the evaluated sentences (GS checkpoints and pruning; decided tokens, inference rule) "
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
    schedule = parse_prune_schedule(args)
    tasks, splits = resolve_tasks(args)
    device = resolve_device(args.device)
    try:
        if any(t in TRANSFER_TASKS for t in tasks):
            task_path = find_task_data(args.senteval_data, tasks)
        else:
            task_path = find_sts_data(args.senteval_data)
        check_data(task_path, tasks, splits)
    except senteval.SentEvalError as exc:
        raise EvaluationError(str(exc)) from None
    set_seed(args.seed)
    bars_were_on = transformers.utils.logging.is_progress_bar_enabled()
    if not args.progress:
        transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars
    try:
        return _evaluate_all(args, tasks, splits, task_path, device, schedule)
    finally:
        if bars_were_on:
            transformers.utils.logging.enable_progress_bar()


def parse_prune_schedule(args: EvalArguments) -> PruneSchedule | None:
    """The in-encoder pruning schedule of --prune_layers / --prune_keep_rates / --prune_scorer (None: off)."""
    try:
        schedule = PruneSchedule.parse(args.prune_layers, args.prune_keep_rates, args.prune_scorer)
    except ValueError as err:
        raise EvaluationError(str(err).rstrip(".")) from None
    if schedule is None and args.prune_scorer != "attention":
        raise EvaluationError(f"--prune_scorer {args.prune_scorer} needs --prune_layers and --prune_keep_rates")
    if args.idf_file and (schedule is None or schedule.scorer != "idf"):
        raise EvaluationError("--idf_file is the table of --prune_scorer idf: give --prune_layers, "
                              "--prune_keep_rates and --prune_scorer idf with it")
    return schedule


def _evaluate_all(args: EvalArguments, tasks: list[str], splits: list[str], task_path: str,
                  device: torch.device, schedule: PruneSchedule | None = None) -> dict[str, Any]:
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
            record = evaluate_model(loaded, args, task_path, tasks, splits, schedule)
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
