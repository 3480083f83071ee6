"""SentEval-compatible STS evaluation (STS12-16, STSBenchmark, SICKRelatedness) by cosine similarity.

Usage mirrors SentEval: ``senteval.engine.SE(params, batcher, prepare).eval(["STS12", "STSBenchmark"])``.
"""

from . import engine, sts
from .engine import SE, TASKS, Params
from .errors import SentEvalDataError, SentEvalError, SentEvalFormatError
from .paths import DEFAULT_TASK_PATH, resolve_task_path
from .sts import STSPairs, cosine_similarity, load_sick, load_sts_year, load_stsb

__all__ = [
    "DEFAULT_TASK_PATH",
    "SE",
    "TASKS",
    "Params",
    "STSPairs",
    "SentEvalDataError",
    "SentEvalError",
    "SentEvalFormatError",
    "cosine_similarity",
    "engine",
    "load_sick",
    "load_sts_year",
    "load_stsb",
    "resolve_task_path",
    "sts",
]
