"""SentEval-compatible evaluation: STS (STS12-16, STSBenchmark, SICKRelatedness) by cosine similarity, and the
transfer tasks (MR, CR, SUBJ, MPQA, SST2, TREC, MRPC, SICKEntailment) by SentEval's logistic regression.

Usage mirrors SentEval: ``senteval.engine.SE(params, batcher, prepare).eval(["STS12", "STSBenchmark", "MR"])``;
``senteval.transfer_params("test" | "fasttest", task_path=...)`` gives SimCSE's two settings of the classifier.
"""

from . import engine, sts, transfer
from .engine import ALL_TASKS, SE, TASKS, TRANSFER_TASKS, Params
from .errors import SentEvalDataError, SentEvalError, SentEvalFormatError, SentEvalTaskUnavailableError
from .paths import DEFAULT_TASK_PATH, resolve_task_path
from .sts import STSPairs, cosine_similarity, load_sick, load_sts_year, load_stsb
from .tools.classifier import ClassifierConfig, LogisticRegression, parse_optimizer
from .transfer import PAIR_FEATURES, TRANSFER_PROTOCOLS, TransferSettings, TransferTask, transfer_params

__all__ = [
    "ALL_TASKS",
    "DEFAULT_TASK_PATH",
    "PAIR_FEATURES",
    "SE",
    "TASKS",
    "TRANSFER_PROTOCOLS",
    "TRANSFER_TASKS",
    "ClassifierConfig",
    "LogisticRegression",
    "Params",
    "STSPairs",
    "SentEvalDataError",
    "SentEvalError",
    "SentEvalFormatError",
    "SentEvalTaskUnavailableError",
    "TransferSettings",
    "TransferTask",
    "cosine_similarity",
    "engine",
    "load_sick",
    "load_sts_year",
    "load_stsb",
    "parse_optimizer",
    "resolve_task_path",
    "sts",
    "transfer",
    "transfer_params",
]
