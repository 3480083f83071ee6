"""SentEval-style entry point: ``SE(params, batcher, prepare).eval(tasks)``.

Per task, every sentence that any requested subset or split needs is collected, deduplicated, handed to
``prepare`` once and encoded exactly once, in length-sorted batches so padding is minimal. Embeddings are
then mapped back to the pairs and scored with cosine similarity (see ``senteval.sts``), or, for the transfer
tasks (MR, CR, SUBJ, MPQA, SST2, TREC, MRPC, SICKEntailment), turned into SentEval's feature rows for its
logistic-regression protocols (see ``senteval.transfer`` and ``senteval.tools``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .binary import CREval, MPQAEval, MREval, SUBJEval
from .errors import SentEvalDataError, SentEvalTaskUnavailableError, missing_task_data_message
from .mrpc import MRPCEval
from .paths import STS_FOLDERS, resolve_task_path
from .sick_entailment import SICKEntailmentEval
from .sst import SSTEval
from .sts import (
    SPLITS,
    STS_SUBSETS,
    STSPairs,
    aggregate,
    correlations,
    cosine_similarity,
    load_sick,
    load_sts_year,
    load_stsb,
)
from .transfer import Sentence, TransferSettings, TransferTask
from .trec import TRECEval

logger = logging.getLogger(__name__)

Tokens = list[str]
Batcher = Callable[[Any, list[Tokens]], Any]
Prepare = Callable[[Any, list[Tokens]], Any]

SPLIT_TASKS: tuple[str, ...] = ("STSBenchmark", "SICKRelatedness")
TASKS: tuple[str, ...] = (*STS_SUBSETS, *SPLIT_TASKS)  # the STS tasks (cosine similarity, nothing trained)
# The transfer tasks (a classifier on frozen embeddings): SentEval's task name -> its task class, in one place.
TRANSFER_TASKS: dict[str, type[TransferTask]] = {
    task.name: task
    for task in (MREval, CREval, SUBJEval, MPQAEval, SSTEval, TRECEval, MRPCEval, SICKEntailmentEval)
}
ALL_TASKS: tuple[str, ...] = (*TASKS, *TRANSFER_TASKS)
# Pooled splits: one correlation over the pairs of several splits. ``train_and_dev`` is the original GS repo's
# model-selection set; ``all`` (train+dev+test) is what its ``stsbenchmark`` / ``sickrelatedness`` columns report.
POOLED_SPLITS: dict[str, tuple[str, ...]] = {"train_and_dev": ("train", "dev"), "all": SPLITS}
RESULT_SPLITS: tuple[str, ...] = (*SPLITS, *POOLED_SPLITS)
DEFAULT_PARAMS: dict[str, Any] = {"batch_size": 128, "usepytorch": True, "seed": 1111, "progress": True, "kfold": 5}
_COSINE_CHUNK = 4096  # pairs per cosine block: bounds the float64 temporaries for large encoders


class Params(dict):
    """A dict that also allows attribute access (``params.batch_size``), as SentEval batchers expect."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


def _as_matrix(output: Any, expected_rows: int) -> np.ndarray:
    """Turn batcher output (numpy array, torch tensor, nested list) into a 2-D float array, validating its shape."""
    if type(output).__module__.split(".")[0] == "torch":
        output = output.detach()
        if not output.is_floating_point() or output.element_size() < 4:  # bf16/fp16/int -> float32 for numpy
            output = output.float()
        output = output.cpu().numpy()
    matrix = np.asarray(output)
    if matrix.dtype != np.float64:
        matrix = matrix.astype(np.float32, copy=False)
    if matrix.ndim != 2 or matrix.shape[0] != expected_rows:
        raise ValueError(
            f"batcher must return one embedding row per sentence: expected shape ({expected_rows}, dim), "
            f"got {tuple(matrix.shape)}"
        )
    return matrix


class SE:
    """Evaluate a sentence encoder on STS12-16, STSBenchmark and SICKRelatedness with cosine similarity, and on
    SentEval's transfer tasks (:data:`TRANSFER_TASKS`) with its logistic-regression protocols.

    ``params`` keys: ``task_path`` (data folder; falls back to $SENTEVAL_DATA, then SentEval/data/downstream),
    ``batch_size`` (default 128), ``progress`` (tqdm bar, default True), ``splits`` (for STSBenchmark and
    SICKRelatedness: any of train, dev, test, train_and_dev, all; default every one). ``batcher(params, batch)`` gets a
    list of sentences, each a list of whitespace tokens, and returns an array/tensor with one row per sentence.
    Transfer tasks also read SentEval's ``classifier`` (dict; default ``{'nhid': 0}``), ``kfold`` (default 5) and
    ``seed`` (default 1111); see :data:`senteval.TRANSFER_PROTOCOLS` for SimCSE's two settings.
    """

    list_tasks: tuple[str, ...] = ALL_TASKS

    def __init__(self, params: dict[str, Any], batcher: Batcher, prepare: Prepare | None = None) -> None:
        merged = {**DEFAULT_PARAMS, **params}
        self.params = Params(merged)
        batch_size = self.params.batch_size
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"params['batch_size'] must be a positive int, got {batch_size!r}")
        self.params.splits = self._check_result_splits(self.params.get("splits"))
        if not self.params.get("classifier"):  # SentEval's default: logistic regression
            self.params.classifier = {"nhid": 0}
        self.transfer = TransferSettings.from_params(self.params)  # checked now, not after minutes of encoding
        self.batcher = batcher
        self.prepare = prepare if prepare is not None else (lambda params, samples: None)
        self.results: dict[str, Any] = {}

    @staticmethod
    def _check_result_splits(splits: Sequence[str] | None) -> list[str]:
        if splits is None:
            return list(RESULT_SPLITS)
        if isinstance(splits, str):
            splits = [splits]
        unknown = [s for s in splits if s not in RESULT_SPLITS]
        if unknown or not splits:
            raise ValueError(f"params['splits'] must be a non-empty subset of {list(RESULT_SPLITS)}, got {splits!r}")
        return list(dict.fromkeys(splits))

    def eval(self, name: str | Sequence[str]) -> dict[str, Any]:
        """Run one task (returns its results) or a list of tasks (returns ``{task: results}``), like SentEval."""
        names = [name] if isinstance(name, str) else list(name)
        unknown = [n for n in names if n not in ALL_TASKS]
        if unknown:  # fail before encoding anything
            raise ValueError(f"Unknown SentEval task(s) {unknown}; this evaluator implements: {', '.join(ALL_TASKS)}")
        transfer = [n for n in names if n in TRANSFER_TASKS]
        folders = (*STS_FOLDERS, *(TRANSFER_TASKS[n].folder.split("/")[0] for n in transfer))
        task_path = resolve_task_path(self.params.get("task_path"), folders)
        self.check_transfer_data(transfer, task_path)
        self.params.task_path = task_path
        self.results = {task: self._run_task(task, task_path) for task in names}
        return self.results[name] if isinstance(name, str) else self.results

    @staticmethod
    def check_transfer_data(names: Sequence[str], task_path: str) -> None:
        """Before encoding anything: a transfer task whose folder is absent, or one of whose files is missing."""
        absent = [n for n in names if not (Path(task_path) / TRANSFER_TASKS[n].folder).is_dir()]
        if absent:
            folders = ", ".join(f"{TRANSFER_TASKS[n].folder}/" for n in absent)
            fetch = " / ".join(dict.fromkeys(f"`{TRANSFER_TASKS[n].fetch}`" for n in absent))
            raise SentEvalTaskUnavailableError(
                f"SentEval task(s) {absent} not available: {task_path} has no {folders} (download with {fetch}, or "
                f"point --senteval_data / SENTEVAL_DATA at a folder that has them). "
                f"This evaluator implements: {', '.join(ALL_TASKS)}"
            )
        for n in names:
            missing = TRANSFER_TASKS[n].missing_files(task_path)
            if missing:
                raise SentEvalDataError(missing_task_data_message(missing[0], f"{n} file is missing",
                                                                  TRANSFER_TASKS[n].fetch))

    # ------------------------------------------------------------------------------------------ internals

    def _run_task(self, task: str, task_path: str) -> dict[str, Any]:
        self.params.current_task = task
        if task in TRANSFER_TASKS:
            return self._run_transfer(task, task_path)
        if task in STS_SUBSETS:
            groups = load_sts_year(task_path, task)
        else:
            wanted = self.params.splits
            pooled_parts = {part for split in wanted for part in POOLED_SPLITS.get(split, ())}
            needed = [s for s in SPLITS if s in wanted or s in pooled_parts]
            loader = load_stsb if task == "STSBenchmark" else load_sick
            groups = loader(task_path, needed)

        system = self._similarities(task, groups)
        gold = {key: pairs.scores for key, pairs in groups.items()}

        if task in STS_SUBSETS:
            results: dict[str, Any] = {key: correlations(system[key], gold[key]) for key in groups}
            results["all"] = aggregate(results, system, gold)
            logger.info(
                "%s: spearman all=%.4f mean=%.4f wmean=%.4f",
                task,
                results["all"]["spearman"]["all"],
                results["all"]["spearman"]["mean"],
                results["all"]["spearman"]["wmean"],
            )
            return results

        results = {}
        for split in RESULT_SPLITS:
            if split not in self.params.splits:
                continue
            if split in POOLED_SPLITS:
                sys_scores = np.concatenate([system[part] for part in POOLED_SPLITS[split]])
                gold_scores = np.concatenate([gold[part] for part in POOLED_SPLITS[split]])
            else:
                sys_scores, gold_scores = system[split], gold[split]
            results[split] = correlations(sys_scores, gold_scores)
            logger.info(
                "%s %s: pearson=%.4f spearman=%.4f (n=%d)",
                task,
                split,
                results[split]["pearson"],
                results[split]["spearman"],
                results[split]["nsamples"],
            )
        return results

    def _run_transfer(self, name: str, task_path: str) -> dict[str, Any]:
        """Load, embed every distinct sentence once, then train and test the classifier; time each part."""
        start = time.perf_counter()
        task = TRANSFER_TASKS[name](task_path)
        index: dict[Sentence, int] = {}
        for sentence in task.sentences():
            index.setdefault(sentence, len(index))
        unique = [list(tokens) for tokens in index]
        loaded = time.perf_counter()
        self.prepare(self.params, unique)
        embeddings = self._encode(name, unique)
        encoded = time.perf_counter()

        def embed(sentences: Sequence[Sentence]) -> np.ndarray:
            return embeddings[np.fromiter((index[s] for s in sentences), dtype=np.int64, count=len(sentences))]

        results = task.run(embed, self.transfer)
        done = time.perf_counter()
        results["nsentences"] = len(unique)
        results["time"] = {"load_s": loaded - start, "encode_s": encoded - loaded, "classifier_s": done - encoded}
        logger.info("%s: devacc=%.2f acc=%.2f (encode %.1fs, classifier %.1fs)", name, results["devacc"],
                    results["acc"], encoded - loaded, done - encoded)
        return results

    def _similarities(self, task: str, groups: dict[str, STSPairs]) -> dict[str, np.ndarray]:
        """Encode each unique sentence once and return the cosine similarity of every pair, per group."""
        index: dict[tuple[str, ...], int] = {}
        pair_ids: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for key, pairs in groups.items():
            ids = []
            for side in (pairs.sent1, pairs.sent2):
                ids.append(
                    np.fromiter(
                        (index.setdefault(tuple(s.split()), len(index)) for s in side), dtype=np.int64, count=len(side)
                    )
                )
            pair_ids[key] = (ids[0], ids[1])
        unique = [list(tokens) for tokens in index]  # dicts keep first-appearance order

        self.prepare(self.params, unique)
        embeddings = self._encode(task, unique)

        system: dict[str, np.ndarray] = {}
        for key, (left, right) in pair_ids.items():
            sims = np.empty(len(left), dtype=np.float64)
            for start in range(0, len(left), _COSINE_CHUNK):
                stop = start + _COSINE_CHUNK
                sims[start:stop] = cosine_similarity(embeddings[left[start:stop]], embeddings[right[start:stop]])
            system[key] = sims
        return system

    def _encode(self, task: str, sentences: list[Tokens]) -> np.ndarray:
        """Call the batcher on length-sorted batches; return embeddings in the original sentence order."""
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))  # stable: ties keep input order
        batch_size = self.params.batch_size
        embeddings: np.ndarray | None = None
        bar = tqdm(
            total=len(sentences), desc=f"SentEval {task}", unit="sent", disable=not self.params.get("progress", True)
        )
        with bar:
            for start in range(0, len(order), batch_size):
                ids = order[start : start + batch_size]
                batch = [list(sentences[i]) for i in ids]  # copies: a batcher may mutate its input
                matrix = _as_matrix(self.batcher(self.params, batch), len(batch))
                if embeddings is None:
                    embeddings = np.empty((len(sentences), matrix.shape[1]), dtype=matrix.dtype)
                elif matrix.shape[1] != embeddings.shape[1]:
                    got, before = matrix.shape[1], embeddings.shape[1]
                    raise ValueError(f"batcher returned embeddings of dim {got}, earlier batches had {before}")
                embeddings[ids] = matrix
                bar.update(len(batch))
        if embeddings is None:  # no sentences at all
            embeddings = np.zeros((0, 1), dtype=np.float32)
        return embeddings
