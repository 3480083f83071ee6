"""STS evaluation of a model through our SentEval, and the two ways of summing it up.

* SimCSE's protocol (the headline): STS12-16 ``all`` (one Spearman over each year's pooled subsets), STS-B test,
  SICK-R test, and their average ``avg``.
* The original GS repo's columns, kept for comparison with its table (see :data:`ORIGINAL_GS_COLUMNS`). Its
  ``stsbenchmark`` and ``sickrelatedness`` pool train+dev+test into one correlation, so its ``avg_test``
  includes SICK-R's train and dev pairs: it is not SimCSE's number.

All numbers are Spearman x 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import senteval

from ..data_files import resolve_sts_data
from ..model.keep import KeepStatsAccumulator
from ..model.precision import check_precision

STS_YEARS = ("STS12", "STS13", "STS14", "STS15", "STS16")
ALL_TASKS = (*STS_YEARS, "STSBenchmark", "SICKRelatedness")
# The result tables' columns, defined once for evaluation.py's tables, scripts/make_table.py and the tests:
# (key in the summary dict, header).
SIMCSE_TABLE = (
    ("sts12", "STS12"), ("sts13", "STS13"), ("sts14", "STS14"), ("sts15", "STS15"), ("sts16", "STS16"),
    ("stsb", "STS-B"), ("sickr", "SICK-R"), ("avg", "Avg."),
)  # fmt: skip
SIMCSE_COLUMNS = tuple(key for key, _ in SIMCSE_TABLE)
DEV_TABLE = (("stsb_spearman", "STS-B dev"), ("sickr_spearman", "SICK-R dev"), ("avg_sts", "Avg."))
DEV_COLUMNS = tuple(key for key, _ in DEV_TABLE)
ORIGINAL_GS_COLUMNS = (
    "avg_sts", "avg_test", "avg_train_and_dev", "sickrelatedness", "sts12", "sts13", "sts14", "sts15", "sts16",
    "stsbenchmark", "stsbenchmark_test", "stsbenchmark_train_and_dev",
)  # fmt: skip


def find_sts_data(explicit: str | None = None) -> str:
    """The STS folder: ``explicit`` (``--senteval_data``), else ``$SENTEVAL_DATA``, else ``SentEval/data/downstream``,
    else the shared copy beside the checkout (:func:`simcse_gs.data_files.resolve_sts_data`, what the scripts use);
    a named folder that is unusable is an error, never replaced by another one. Raises
    :class:`senteval.SentEvalDataError` saying how to get the data."""
    found = resolve_sts_data(explicit or None, log=False)
    return found if found is not None else senteval.resolve_task_path(explicit or None)  # raises, with the fix


def evaluate_sts(
    encode: Any,
    task_path: str | None = None,
    tasks: Sequence[str] = ALL_TASKS,
    splits: Sequence[str] = ("train", "dev", "test", "train_and_dev", "all"),
    batch_size: int = 128,
    progress: bool = True,
) -> dict[str, Any]:
    """Run SentEval STS tasks with ``encode(list_of_str) -> [N, H]``; returns SentEval's results dict.

    Each task's new sentences go to ``encode`` in one call from SentEval's ``prepare`` hook, so the encoder sorts
    them by exact token length (SentEval sorts by word count: 1.4x the tokens in padding), and the vectors are
    cached for the whole call (STS-B repeats many STS12-16 sentences): every distinct sentence is encoded once.
    """
    params = {"task_path": find_sts_data(task_path), "batch_size": batch_size,
              "progress": progress, "splits": list(splits)}
    cache: dict[str, np.ndarray] = {}

    def prepare(_params: Any, samples: list[list[str]]) -> None:
        new = [text for text in dict.fromkeys(" ".join(tokens) for tokens in samples) if text not in cache]
        if new:
            vectors = encode(new)
            vectors = vectors.float().cpu().numpy() if hasattr(vectors, "cpu") else np.asarray(vectors, np.float32)
            cache.update(zip(new, vectors))

    def batcher(_params: Any, batch: list[list[str]]) -> np.ndarray:
        return np.stack([cache[" ".join(tokens)] for tokens in batch])

    return senteval.engine.SE(params, batcher, prepare).eval(list(tasks))


def _sp(value: float) -> float:
    return round(100 * float(value), 2)


def simcse_summary(results: dict[str, Any]) -> dict[str, float]:
    """SimCSE's test columns: STS12-16 ``all``, STS-B test, SICK-R test, and their mean."""
    row = {year.lower(): _sp(results[year]["all"]["spearman"]["all"]) for year in STS_YEARS if year in results}
    if "STSBenchmark" in results:
        row["stsb"] = _sp(results["STSBenchmark"]["test"]["spearman"])
    if "SICKRelatedness" in results:
        row["sickr"] = _sp(results["SICKRelatedness"]["test"]["spearman"])
    if len(row) == 7:
        row["avg"] = round(float(np.mean(list(row.values()))), 2)
    return row


def split_summary(results: dict[str, Any], split: str = "dev") -> dict[str, float]:
    """STS-B and SICK-R on one split (``dev`` in ``evaluation.py --mode dev``; what :class:`STSEvaluator` logs):
    ``stsb_spearman``, ``sickr_spearman`` and, when both are there, their mean ``avg_sts``."""
    row = {}
    if "STSBenchmark" in results:
        row["stsb_spearman"] = _sp(results["STSBenchmark"][split]["spearman"])
    if "SICKRelatedness" in results:
        row["sickr_spearman"] = _sp(results["SICKRelatedness"][split]["spearman"])
    if len(row) == 2:
        row["avg_sts"] = round((row["stsb_spearman"] + row["sickr_spearman"]) / 2, 2)
    return row


def original_gs_summary(results: dict[str, Any]) -> dict[str, float]:
    """The original GS repo's columns, computed as its README table was (checked against its numbers):

    ``stsbenchmark`` / ``sickrelatedness``: train+dev+test pooled; ``avg_sts``: mean of STS12-16, stsbenchmark,
    sickrelatedness; ``avg_test``: the same with stsbenchmark_test for stsbenchmark (SICK-R stays pooled);
    ``avg_train_and_dev``: stsbenchmark_train_and_dev.
    """
    years = {year.lower(): _sp(results[year]["all"]["spearman"]["all"]) for year in STS_YEARS}
    stsb, sick = results["STSBenchmark"], results["SICKRelatedness"]
    row = {
        **years,
        "stsbenchmark": _sp(stsb["all"]["spearman"]),
        "stsbenchmark_test": _sp(stsb["test"]["spearman"]),
        "stsbenchmark_train_and_dev": _sp(stsb["train_and_dev"]["spearman"]),
        "sickrelatedness": _sp(sick["all"]["spearman"]),
    }
    row["avg_sts"] = round(float(np.mean([*years.values(), row["stsbenchmark"], row["sickrelatedness"]])), 2)
    row["avg_test"] = round(float(np.mean([*years.values(), row["stsbenchmark_test"], row["sickrelatedness"]])), 2)
    row["avg_train_and_dev"] = row["stsbenchmark_train_and_dev"]
    return {key: row[key] for key in ORIGINAL_GS_COLUMNS}


class STSEvaluator:
    """STS-B and SICK-R on one split, for model selection during training (sentence-transformers style).

    ``split="dev"`` is SimCSE's choice; ``"train_and_dev"`` the original GS repo's. Returns
    ``{"stsb_spearman", "sickr_spearman", "avg_sts"}`` (x100) plus keep statistics for GS models.
    """

    primary_metric = "stsb_spearman"

    def __init__(self, task_path: str | None = None, split: str = "dev", batch_size: int = 128,
                 progress: bool = False, precision: str = "fp32"):
        self.task_path = find_sts_data(task_path)  # fail at start-up, not at the first evaluation
        self.split = split
        self.batch_size = batch_size
        self.progress = progress
        self.precision = check_precision(precision, "--eval_precision")  # fp32, or bf16 / fp16 autocast

    def __call__(self, model: Any, keep_stats: KeepStatsAccumulator | None = None) -> dict[str, float]:
        """Metrics of ``model``; ``keep_stats`` (e.g. one that samples probabilities) collects the keep decisions."""
        stats = keep_stats if keep_stats is not None else KeepStatsAccumulator()

        def encode(sentences: list[str]) -> Any:
            return model.encode(sentences, batch_size=self.batch_size, keep_stats=stats, precision=self.precision)

        results = evaluate_sts(encode, self.task_path, ("STSBenchmark", "SICKRelatedness"), [self.split],
                               self.batch_size, self.progress)
        metrics = split_summary(results, self.split)
        metrics.update(stats.compute())
        return metrics
