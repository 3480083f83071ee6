"""SentEval's transfer tasks (a logistic regression on frozen sentence embeddings) of a model, and SimCSE's table.

* ``evaluation.py --task_set transfer`` (:func:`evaluate_transfer`, :func:`transfer_summary`): MR, CR, SUBJ, MPQA,
  SST2, TREC, MRPC and their mean (SimCSE's columns), with SICK-E beside them; accuracy x100. ``--mode test`` runs
  SentEval's full protocol (10 folds, Adam), ``fasttest`` and ``dev`` the fast one (5 folds, RMSprop), as SimCSE's
  ``evaluation.py`` does; ``dev`` reports the validation accuracy (``devacc``), the other modes the test accuracy.
* :class:`TransferEvaluator`: the seven tasks' validation accuracies for ``--eval_transfer`` during training.

The classifier and the tasks live in our ``senteval`` package (``senteval/tools``, one file per task kind).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import senteval

from ..data_files import shared_data_root
from ..model.keep import KeepStatsAccumulator
from ..model.precision import check_precision

# SimCSE's transfer set and table order; SICK-E is SentEval's too, shown beside the average (not in it).
TRANSFER_SET = ("MR", "CR", "SUBJ", "MPQA", "SST2", "TREC", "MRPC")
TRANSFER_TASKS = (*TRANSFER_SET, "SICKEntailment")
# (key in the summary dict, header), for evaluation.py's table and the tests.
TRANSFER_TABLE = (
    ("mr", "MR"), ("cr", "CR"), ("subj", "SUBJ"), ("mpqa", "MPQA"), ("sst2", "SST2"), ("trec", "TREC"),
    ("mrpc", "MRPC"), ("avg", "Avg."), ("sicke", "SICK-E"),
)  # fmt: skip
TRANSFER_COLUMNS = tuple(key for key, _ in TRANSFER_TABLE)
_KEYS = dict(zip((*TRANSFER_SET, "SICKEntailment"), (*TRANSFER_COLUMNS[:7], "sicke")))
# evaluation.py's --mode -> SentEval's classifier setting (SimCSE: dev and fasttest use the fast one).
MODE_PROTOCOL = {"test": "test", "fasttest": "fasttest", "dev": "fasttest"}


def _has_folders(folder: Path, tasks: Sequence[str]) -> bool:
    needed = {senteval.TRANSFER_TASKS[t].folder for t in tasks if t in senteval.TRANSFER_TASKS}
    if any(t in senteval.TASKS and t != "SICKRelatedness" for t in tasks):
        needed.add("STS")
    if "SICKRelatedness" in tasks:
        needed.add("SICK")
    return all((folder / name).is_dir() for name in needed)


def find_task_data(explicit: str | None, tasks: Sequence[str]) -> str:
    """The data folder for ``tasks``: ``explicit`` (``--senteval_data``), else ``$SENTEVAL_DATA``, else
    ``SentEval/data/downstream``, else the shared copy ``../shared/data/downstream``; a folder that was named is
    never replaced by another one. Raises :class:`senteval.SentEvalDataError` saying how to get the data."""
    # any SentEval folder will do here: check_transfer_data then names each missing task and the fetch command
    folders = [*senteval.paths.STS_FOLDERS]
    folders += [senteval.TRANSFER_TASKS[t].folder.split("/")[0] for t in tasks if t in senteval.TRANSFER_TASKS]
    named = explicit or os.environ.get(senteval.errors.ENV_VAR)
    if named:
        return senteval.resolve_task_path(named, folders)
    candidates = (senteval.DEFAULT_TASK_PATH, shared_data_root() / "downstream")
    chosen = next((c for c in candidates if _has_folders(c, tasks)), None)
    if chosen is None:  # neither has them all: the first that exists, so the error names what it lacks
        chosen = next((c for c in candidates if c.is_dir()), candidates[0])
    return senteval.resolve_task_path(chosen, folders)


def check_transfer_data(task_path: str, tasks: Sequence[str]) -> None:
    """Read every transfer task's files now (before any model is loaded): a missing folder or file names it and
    the fetch command, a malformed line its file and line number (:mod:`senteval.errors`)."""
    transfer = [t for t in tasks if t in senteval.TRANSFER_TASKS]
    senteval.SE.check_transfer_data(transfer, task_path)
    for task in transfer:
        senteval.TRANSFER_TASKS[task](task_path)


def evaluate_transfer(
    encode: Any,
    task_path: str,
    tasks: Sequence[str] = TRANSFER_SET,
    protocol: str = "fasttest",
    batch_size: int = 128,
    progress: bool = True,
) -> dict[str, Any]:
    """Run SentEval transfer tasks with ``encode(list_of_str) -> [N, H]``; returns SentEval's results dict.

    Each task's distinct sentences go to ``encode`` in one call (from SentEval's ``prepare`` hook), so the encoder
    sorts them by exact token length; ``protocol``: ``test`` or ``fasttest`` (:data:`senteval.TRANSFER_PROTOCOLS`).
    """
    cache: dict[str, np.ndarray] = {}

    def prepare(_params: Any, samples: list[list[str]]) -> None:
        cache.clear()  # one task at a time: only its sentences are held
        texts = [" ".join(tokens) for tokens in samples]
        vectors = encode(texts)
        vectors = vectors.float().cpu().numpy() if hasattr(vectors, "cpu") else np.asarray(vectors, np.float32)
        cache.update(zip(texts, vectors))

    def batcher(_params: Any, batch: list[list[str]]) -> np.ndarray:
        return np.stack([cache[" ".join(tokens)] for tokens in batch])

    # the batcher only looks vectors up, so its batches can be large
    params = senteval.transfer_params(protocol, task_path=task_path, batch_size=max(batch_size, 4096),
                                      progress=progress)
    results = senteval.engine.SE(params, batcher, prepare).eval(list(tasks))
    cache.clear()
    return results


def transfer_summary(results: dict[str, Any], split: str = "test") -> dict[str, float]:
    """SimCSE's transfer columns (accuracy x100, :data:`TRANSFER_TABLE`): test accuracy (``split="test"``) or the
    validation accuracy SentEval selects the L2 penalty on (``"dev"``); ``avg`` over the seven when all are there."""
    key = "devacc" if split == "dev" else "acc"
    row = {_KEYS[task]: round(float(results[task][key]), 2) for task in TRANSFER_TASKS if task in results}
    seven = [row[_KEYS[task]] for task in TRANSFER_SET if _KEYS[task] in row]
    if len(seven) == len(TRANSFER_SET):
        row["avg"] = round(float(np.mean(seven)), 2)
    return row


def transfer_times(results: dict[str, Any]) -> dict[str, float]:
    """Seconds spent on the transfer tasks: loading the files, embedding, the classifier (summed over tasks)."""
    parts = ("load_s", "encode_s", "classifier_s")
    times = {p: round(sum(r["time"][p] for t, r in results.items() if t in senteval.TRANSFER_TASKS), 3) for p in parts}
    times["sentences"] = sum(r["nsentences"] for t, r in results.items() if t in senteval.TRANSFER_TASKS)
    return times


class TransferEvaluator:
    """The transfer tasks' validation accuracies under SentEval's fast protocol, for model selection during training
    (SimCSE's ``--eval_transfer``): ``{"MR": devacc, ..., "avg_transfer": mean}`` (x100)."""

    def __init__(self, task_path: str | None = None, tasks: Sequence[str] = TRANSFER_SET, batch_size: int = 128,
                 progress: bool = False, precision: str = "fp32"):
        self.tasks = tuple(tasks)
        self.task_path = find_task_data(task_path, self.tasks)
        check_transfer_data(self.task_path, self.tasks)  # fail at start-up, not at the first evaluation
        self.batch_size = batch_size
        self.progress = progress
        self.precision = check_precision(precision, "--eval_precision")

    def __call__(self, model: Any, keep_stats: KeepStatsAccumulator | None = None) -> dict[str, float]:
        def encode(sentences: list[str]) -> Any:
            return model.encode(sentences, batch_size=self.batch_size, keep_stats=keep_stats, precision=self.precision)

        results = evaluate_transfer(encode, self.task_path, self.tasks, "fasttest", self.batch_size, self.progress)
        metrics = {task: round(float(results[task]["devacc"]), 2) for task in self.tasks}
        metrics["avg_transfer"] = round(float(np.mean(list(metrics.values()))), 2)
        return metrics
