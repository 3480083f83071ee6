"""What the transfer tasks share: reading files as SentEval reads them, its row order, features, and settings.

A task (``binary.py``, ``sst.py``, ``trec.py``, ``mrpc.py``, ``sick_entailment.py``) loads its files, lists the
sentences to embed, and, given their embeddings, builds the feature rows *in SentEval's order* (each split sorted by
sentence length, then label: the order SentEval embeds in, which its fold assignment and permutations index) and runs
its validation protocol (``tools/validation.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .errors import TRANSFER_FETCH, SentEvalDataError, SentEvalFormatError, missing_task_data_message
from .tools.classifier import ClassifierConfig, LogisticRegression
from .tools.validation import ProtocolResult

Sentence = tuple[str, ...]  # whitespace tokens; hashable, so each distinct sentence is embedded once
Embed = Callable[[Sequence[Sentence]], np.ndarray]  # sentences -> their embeddings, one row each
# MRPC / SICK-E features of a pair (u, v): SentEval's [|u - v|, u * v], or InferSent's [u, v, |u - v|, u * v].
PAIR_FEATURES: tuple[str, ...] = ("senteval", "infersent")


@dataclass(frozen=True)
class TransferSettings:
    """The engine's params that the transfer tasks use, validated once."""

    classifier: ClassifierConfig
    kfold: int = 5
    seed: int = 1111
    pair_features: str = "senteval"
    device: str = "cpu"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TransferSettings:
        """Read SentEval's ``classifier``, ``kfold``, ``seed`` (and this package's ``pair_features``,
        ``classifier_device``), raising ``ValueError`` for a value SentEval's code could not run with."""
        if params.get("usepytorch", True) is not True:
            raise ValueError("params['usepytorch'] = False (scikit-learn's LogisticRegression) is not implemented; "
                             "only SentEval's PyTorch logistic regression is")
        kfold, seed = params.get("kfold", 5), params.get("seed", 1111)
        for name, value, minimum in (("kfold", kfold, 2), ("seed", seed, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"params['{name}'] must be an int >= {minimum}, got {value!r}")
        features = params.get("pair_features", "senteval")
        if features not in PAIR_FEATURES:
            raise ValueError(f"params['pair_features'] must be one of {list(PAIR_FEATURES)}, got {features!r}")
        return cls(ClassifierConfig.from_params(params.get("classifier")), kfold, seed, features,
                   str(params.get("classifier_device", "cpu")))

    def classifier_for(self, features: np.ndarray, labels: np.ndarray, nclasses: int) -> LogisticRegression:
        return LogisticRegression(features, labels, nclasses, self.classifier, self.seed, self.device)


# ---------------------------------------------------------------------------------------------- reading files


def read_text(path: Path, encoding: str, fetch: str = TRANSFER_FETCH) -> str:
    """The whole file decoded as SentEval opens it (``io.open(path, encoding=...)``: a UTF-8 BOM is kept)."""
    if not path.is_file():
        raise SentEvalDataError(missing_task_data_message(path, "file is missing", fetch))
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SentEvalFormatError(f"{path}:{line}: not valid {encoding} ({exc.reason})") from None


def file_lines(text: str) -> list[str]:
    """The lines of ``for line in f`` on a text file: ``\\n``, ``\\r\\n`` and ``\\r`` end a line (universal
    newlines), nothing else does; the line ends are dropped (SentEval strips every line)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def tokens(text: str) -> Sentence:
    return tuple(text.split())


def senteval_order(keys: Sequence[tuple[int, ...]]) -> np.ndarray:
    """Indices that sort rows by ``keys`` (length(s), then label), stably: SentEval's ``sorted(zip(...), key=...)``."""
    return np.asarray(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def stack_splits(
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One feature matrix for a task's splits (``{split: (features, labels)}``) and each split's rows in it."""
    rows: dict[str, np.ndarray] = {}
    start = 0
    for split, (_, labels) in splits.items():
        rows[split] = np.arange(start, start + len(labels))
        start += len(labels)
    features = np.concatenate([f for f, _ in splits.values()])
    return features, np.concatenate([y for _, y in splits.values()]), rows


def pair_features(u: np.ndarray, v: np.ndarray, kind: str) -> np.ndarray:
    """Features of sentence pairs from their embeddings (see :data:`PAIR_FEATURES`)."""
    parts = [np.abs(u - v), u * v]
    return np.concatenate([u, v, *parts] if kind == "infersent" else parts, axis=1)


def sentence_split(sentences: Sequence[Sentence], labels: np.ndarray, embed: Embed) -> tuple[np.ndarray, np.ndarray]:
    """A split's features and labels in SentEval's order: by sentence length, then label."""
    order = senteval_order([(len(s), int(y)) for s, y in zip(sentences, labels)])
    return embed([sentences[i] for i in order]), labels[order]


def pair_split(
    first: Sequence[Sentence], second: Sequence[Sentence], labels: np.ndarray, embed: Embed, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """A split of sentence pairs as features and labels in SentEval's order: by both lengths, then label."""
    order = senteval_order([(len(a), len(b), int(y)) for a, b, y in zip(first, second, labels)])
    u = embed([first[i] for i in order])
    v = embed([second[i] for i in order])
    return pair_features(u, v, kind), labels[order]


# ---------------------------------------------------------------------------------------------- tasks


class TransferTask(ABC):
    """One SentEval transfer task: its files under ``<task_path>/<folder>``, loaded at construction."""

    name: ClassVar[str]
    folder: ClassVar[str]
    files: ClassVar[tuple[str, ...]]
    nclasses: ClassVar[int]
    fetch: ClassVar[str] = TRANSFER_FETCH  # the command that downloads this task's files

    def __init__(self, task_path: str | Path) -> None:
        self.path = Path(task_path) / self.folder
        missing = self.missing_files(task_path)
        if missing:
            raise SentEvalDataError(missing_task_data_message(missing[0], f"{self.name} file is missing", self.fetch))
        self.load()

    @classmethod
    def missing_files(cls, task_path: str | Path) -> list[Path]:
        folder = Path(task_path) / cls.folder
        return [folder / name for name in cls.files if not (folder / name).is_file()]

    def file(self, name: str) -> Path:
        return self.path / name

    def malformed(self, name: str, lineno: int, problem: str) -> SentEvalFormatError:
        return SentEvalFormatError(f"{self.file(name)}:{lineno}: {problem}")

    @abstractmethod
    def load(self) -> None:
        """Read the files (raising SentEvalFormatError naming file and line for what SentEval could not read)."""

    @abstractmethod
    def sentences(self) -> Iterable[Sentence]:
        """Every sentence the task embeds (repeats allowed; the engine embeds each distinct one once)."""

    @abstractmethod
    def run(self, embed: Embed, settings: TransferSettings) -> dict[str, Any]:
        """Build the features in SentEval's order, run the protocol, return SentEval's result keys."""


def task_result(result: ProtocolResult, ndev: int, ntest: int, **extra: Any) -> dict[str, Any]:
    """SentEval's result dict (``devacc``, ``acc`` in percent; ``ndev``, ``ntest``) plus what the classifier did."""
    return {"devacc": result.devacc, "acc": result.acc, **extra, "ndev": int(ndev), "ntest": int(ntest),
            "classifier": {**result.details, "l2reg": result.l2reg}}


# ---------------------------------------------------------------------------------------------- protocols

# SimCSE's evaluation.py: ``--mode test`` (full) and ``--mode fasttest`` / ``dev`` (fast) SentEval settings.
TRANSFER_PROTOCOLS: dict[str, dict[str, Any]] = {
    "test": {"usepytorch": True, "kfold": 10,
             "classifier": {"nhid": 0, "optim": "adam", "batch_size": 64, "tenacity": 5, "epoch_size": 4}},
    "fasttest": {"usepytorch": True, "kfold": 5,
                 "classifier": {"nhid": 0, "optim": "rmsprop", "batch_size": 128, "tenacity": 3, "epoch_size": 2}},
}


def transfer_params(protocol: str, **params: Any) -> dict[str, Any]:
    """A fresh ``params`` dict for :class:`senteval.engine.SE`: the protocol's settings, then ``params`` on top
    (``task_path``, ``batch_size``, ``progress``, ...). ``protocol``: ``"test"`` or ``"fasttest"``."""
    if protocol not in TRANSFER_PROTOCOLS:
        raise ValueError(f"Unknown transfer protocol {protocol!r}; known: {', '.join(TRANSFER_PROTOCOLS)}")
    chosen = TRANSFER_PROTOCOLS[protocol]
    return {**chosen, "classifier": dict(chosen["classifier"]), **params}
