"""Training, the command: ``python train.py`` (or the ``simcse-gs-train`` console command) is :func:`cli`.

    python train.py --train_file data/wiki1m_for_simcse.txt --output_dir outputs/unsup-gs
    python train.py configs/cpu-minilm-unsup-gs.yaml            # the same from a YAML/JSON file
    python train.py configs/cpu-minilm-unsup-gs.yaml --seed 2   # ... with flags that override the file

Arguments (:mod:`.arguments`) -> checkpoint to resume -> STS data -> model -> training data -> Trainer, all
checked before any work starts (:func:`setup`), then :func:`train_and_save`.
"""

from __future__ import annotations

import json
import logging
import sys

import transformers
import yaml
from transformers import HfArgumentParser, set_seed

import senteval

from ..cli import RUN_FAILURE, USAGE_ERROR, fail
from ..data_files import resolve_train_file
from ..evaluation.sts import STSEvaluator
from ..model import SimCSEGSModel
from .arguments import DataArguments, ModelArguments, SimCSETrainingArguments
from .data import SimCSECollator, load_train_dataset
from .idf import idf_from_dataset
from .resume import CheckpointError, resolve_resume_checkpoint
from .trainer import NonFiniteLossError, SimCSETrainer

logger = logging.getLogger("train")
PROG = "train.py"
OBJECTIVES = {1: "unsupervised (each sentence twice, dropout as noise)", 2: "supervised pairs",
              3: "supervised pairs with a hard negative"}


def parse_args(
    argv: list[str], prog: str = PROG
) -> tuple[ModelArguments, DataArguments, SimCSETrainingArguments]:
    """Flags, or a YAML/JSON file of flags followed by flags that override it (``train.py cfg.yaml --seed 2``)."""
    parser = HfArgumentParser((ModelArguments, DataArguments, SimCSETrainingArguments), prog=prog)
    if argv and argv[0].endswith((".yaml", ".yml", ".json")):
        with open(argv[0], encoding="utf-8") as f:
            config = yaml.safe_load(f) if argv[0].endswith((".yaml", ".yml")) else json.load(f)
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(config or {}) - known)
        if unknown:
            raise ValueError(f"{argv[0]}: unknown key(s) {unknown}; `python train.py --help` lists the valid ones.")
        parser.set_defaults(**(config or {}))
        argv = argv[1:]
    return parser.parse_args_into_dataclasses(args=argv)


def check_sts_data(task_path: str, split: str) -> None:
    """Read the STS-B and SICK-R files the evaluator will need, so missing or malformed ones fail at start-up."""
    splits = ["train", "dev"] if split == "train_and_dev" else [split]
    senteval.load_stsb(task_path, splits)
    senteval.load_sick(task_path, splits)


def check_last_batch(n_examples: int, n_sent: int, args: SimCSETrainingArguments) -> None:
    """Refuse a run whose epochs end in a batch of one example: it has no negative, the loss would stop training."""
    batch = args.per_device_train_batch_size
    full_batches = n_examples // batch
    reaches_the_end = args.max_steps <= 0 or args.max_steps * args.gradient_accumulation_steps > full_batches
    if args.world_size == 1 and not args.dataloader_drop_last and n_sent < 3 and n_examples % batch == 1 \
            and reaches_the_end:
        raise ValueError(
            f"{n_examples} training examples in batches of {batch} leave a last batch of 1 example in every epoch; "
            "it has no in-batch negative, so the contrastive loss cannot be computed and training would stop "
            "there. Pass --dataloader_drop_last (skips that example each epoch) or choose another "
            "--per_device_train_batch_size."
        )


def setup(argv: list[str] | None = None, prog: str = PROG) -> SimCSETrainer:
    """Everything before training (arguments, checkpoint, STS data, model, training data): fails before any work."""
    model_args, data_args, training_args = parse_args(sys.argv[1:] if argv is None else argv, prog)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    set_seed(training_args.seed)
    training_args.resume_from_checkpoint = resolve_resume_checkpoint(training_args.resume_from_checkpoint,
                                                                     training_args.output_dir)
    evaluator = None
    if training_args.eval_strategy != "no" or training_args.load_best_model_at_end:
        evaluator = STSEvaluator(data_args.senteval_data, data_args.eval_split, data_args.eval_batch_size,
                                 precision=data_args.eval_precision)
        check_sts_data(evaluator.task_path, data_args.eval_split)

    settings = model_args.model_settings()
    if training_args.scorer_learning_rate is not None and not (settings["prune_layers"]
                                                               and settings["prune_scorer"] == "learned"):
        raise ValueError("--scorer_learning_rate is the learning rate of the in-encoder learned scorer: set "
                         "--prune_layers and --prune_scorer learned, or drop the flag.")
    load_kwargs = {"cache_dir": model_args.cache_dir, "trust_remote_code": model_args.trust_remote_code}
    model = SimCSEGSModel.from_backbone(
        model_args.model_name_or_path,
        proxy_model_name_or_path=model_args.proxy_model_name_or_path,
        proxy_num_layers=model_args.proxy_num_layers,
        load_kwargs=load_kwargs,
        **settings,
    )
    if model.config.distill_weight > 0 and model.config.distill_teacher == "initial":
        model.keep_initial_teacher()  # the starting weights, also when resuming (the checkpoint loads later)
    tokenizer = model.tokenizer
    # data/<name> of a config, or the copy in $SIMCSE_GS_DATA / the shared data (simcse_gs.data_files; it says which)
    data_args.train_file = resolve_train_file(data_args.train_file, log=training_args.process_index == 0)
    with training_args.main_process_first(desc="tokenizing the training file"):
        train_dataset = load_train_dataset(data_args.train_file, tokenizer, data_args.max_seq_length,
                                           data_args.preprocessing_num_workers, model_args.cache_dir)
    n_sent = len(train_dataset[0]["input_ids"])
    check_last_batch(len(train_dataset), n_sent, training_args)
    if hasattr(model, "idf"):  # the IDF heuristic's or IDF-scored pruning's table comes from the training file
        model.idf.copy_(idf_from_dataset(train_dataset, model.backbone.config.vocab_size))
    return SimCSETrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=SimCSECollator(tokenizer, model_args.do_mlm, model_args.mlm_probability,
                                     data_args.max_seq_length if data_args.pad_to_max_length else None),
        processing_class=tokenizer,
        sts_evaluator=evaluator,
        model_card_data={"train_file": data_args.train_file, "examples": len(train_dataset),
                         "objective": OBJECTIVES[n_sent], "max_seq_length": data_args.max_seq_length},
    )


def train_and_save(trainer: SimCSETrainer) -> dict:
    """Train (resuming if asked), save the model and the state, evaluate, write the model card (and push it with
    the model under ``--push_to_hub``); returns the metrics."""
    training_args, evaluator = trainer.args, trainer.sts_evaluator
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()
    trainer.save_state()
    metrics = dict(result.metrics)
    if evaluator is not None:
        metrics.update(trainer.evaluate())
    if trainer.is_world_process_zero():
        trainer.save_metrics("all", metrics)
        logger.info("Finished. Model in %s; metrics: %s", training_args.output_dir, json.dumps(metrics))
    if training_args.push_to_hub:  # the card now holds the final evaluation
        trainer.push_to_hub(commit_message="End of training")
    else:
        trainer.create_model_card()
    return metrics


def main(argv: list[str] | None = None) -> dict:
    """``train.py`` in-process: errors propagate as exceptions (:func:`cli` turns a user's mistakes into messages)."""
    return train_and_save(setup(argv))


def cli(argv: list[str] | None = None, prog: str = PROG) -> int:
    """``python train.py``: a user's mistake prints ``train.py: error: <message>`` instead of a traceback.

    ValueError / OSError / YAMLError raised while setting up (bad flags or config file, training file, STS data,
    model or checkpoint folder; nothing has run yet) exit with 2; a NaN/inf loss or a checkpoint problem during
    training exits with 1 (the convention of every command: :mod:`simcse_gs.cli`). Any other exception keeps its
    traceback; ``SIMCSE_GS_TRACEBACK=1`` shows it for these too.
    """
    try:
        trainer = setup(argv, prog)
    except (ValueError, OSError, yaml.YAMLError) as err:
        return fail(prog, err, USAGE_ERROR)
    try:
        train_and_save(trainer)
    except (NonFiniteLossError, CheckpointError) as err:
        return fail(prog, err, RUN_FAILURE)
    finally:
        leave_process_group()
    return 0


def leave_process_group() -> None:
    """Destroy the torch.distributed group before the process exits: left to the interpreter's shutdown, gloo's
    threads can abort a finished worker ("terminate called without an active exception", seen on an AMD EPYC CI
    machine), which torchrun reports as a failed run."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def console() -> int:
    """The ``simcse-gs-train`` console command (``[project.scripts]``): :func:`cli` under that name."""
    return cli(prog="simcse-gs-train")
