"""STS data loaders and scoring.

Every task here is scored the same way: cosine similarity of the two sentence embeddings, correlated
(Pearson and Spearman) with the gold scores. No regressor is trained, also not for STSBenchmark and
SICKRelatedness, which is the unsupervised protocol used by SimCSE.

Loaders return sentences as raw strings; the engine tokenises them with ``str.split()`` before calling
the batcher, so ``" ".join(tokens)`` gives the whitespace-normalised text back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr

from .errors import SentEvalDataError, SentEvalFormatError, missing_data_message

# Canonical subsets per year, in the order SentEval reports them.
STS_SUBSETS: dict[str, tuple[str, ...]] = {
    "STS12": ("MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"),
    "STS13": ("FNWN", "headlines", "OnWN"),
    "STS14": ("deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"),
    "STS15": ("answers-forums", "answers-students", "belief", "headlines", "images"),
    "STS16": ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
}
SPLITS: tuple[str, ...] = ("train", "dev", "test")
STSB_FILES: dict[str, str] = {split: f"sts-{split}.csv" for split in SPLITS}
SICK_FILES: dict[str, str] = {"train": "SICK_train.txt", "dev": "SICK_trial.txt", "test": "SICK_test_annotated.txt"}
MIN_SCORE, MAX_SCORE = 0.0, 5.0
STSB_MIN_COLUMNS = 7
SICK_COLUMNS = ("sentence_A", "sentence_B", "relatedness_score")


@dataclass
class STSPairs:
    """Sentence pairs with gold similarity scores (raw strings; ``source`` is the file they came from)."""

    sent1: list[str]
    sent2: list[str]
    scores: np.ndarray
    source: str = field(default="")

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if not (len(self.sent1) == len(self.sent2) == len(self.scores)):
            raise ValueError(
                f"STSPairs lengths differ: sent1={len(self.sent1)} sent2={len(self.sent2)} scores={len(self.scores)}"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def concat(parts: Sequence[STSPairs], source: str = "") -> STSPairs:
        """Concatenate several groups of pairs (used for ``train_and_dev``)."""
        return STSPairs(
            sent1=[s for p in parts for s in p.sent1],
            sent2=[s for p in parts for s in p.sent2],
            scores=np.concatenate([p.scores for p in parts]) if parts else np.zeros(0),
            source=source or " + ".join(p.source for p in parts),
        )


# ---------------------------------------------------------------------------------------------- file reading


def _read_lines(path: Path) -> list[str]:
    """Read a UTF-8 file as lines, tolerating CRLF and a missing final newline.

    Splits on ``\\n`` only (not ``str.splitlines``), so exotic separators such as U+2028 inside a sentence
    cannot shift line numbers between an input file and its gold file.
    """
    if not path.is_file():
        raise SentEvalDataError(missing_data_message(path, "file is missing"))
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SentEvalFormatError(f"{path}: not valid UTF-8 ({exc})") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _parse_score(text: str, path: Path, lineno: int) -> float:
    """Parse a gold score, insisting it is a finite number in [0, 5]."""
    try:
        value = float(text.strip())
    except ValueError:
        raise SentEvalFormatError(f"{path}:{lineno}: gold score {text.strip()!r} is not a number") from None
    if not (MIN_SCORE <= value <= MAX_SCORE):  # also rejects nan
        raise SentEvalFormatError(f"{path}:{lineno}: gold score {value} is outside [{MIN_SCORE:g}, {MAX_SCORE:g}]")
    return value


def _require_dir(folder: Path) -> None:
    if not folder.is_dir():
        raise SentEvalDataError(missing_data_message(folder, "folder is missing"))


def _check_splits(splits: Iterable[str]) -> list[str]:
    splits = list(splits)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"Unknown split(s) {unknown}; expected some of {list(SPLITS)}")
    return splits


# ---------------------------------------------------------------------------------------------- loaders


def sts_task_name(year: int | str) -> str:
    """Normalise 2012 / 12 / "12" / "STS12" to "STS12"."""
    text = str(year).strip()
    if text.upper().startswith("STS"):
        text = text[3:]
    if text.isdigit() and len(text) == 4 and text.startswith("20"):
        text = text[2:]
    name = f"STS{text}"
    if name not in STS_SUBSETS:
        raise ValueError(f"Unknown STS year {year!r}; expected one of {list(STS_SUBSETS)}")
    return name


def load_sts_subset(input_path: str | Path, gold_path: str | Path) -> STSPairs:
    """Load one ``STS.input.X.txt`` / ``STS.gs.X.txt`` pair; pairs with a blank gold line are skipped."""
    input_path, gold_path = Path(input_path), Path(gold_path)
    pair_lines = _read_lines(input_path)
    gold_lines = _read_lines(gold_path)
    if len(pair_lines) != len(gold_lines):
        raise SentEvalFormatError(
            f"{input_path} has {len(pair_lines)} lines but {gold_path} has {len(gold_lines)}; they must match"
        )
    sent1: list[str] = []
    sent2: list[str] = []
    scores: list[float] = []
    for lineno, (pair_line, gold_line) in enumerate(zip(pair_lines, gold_lines, strict=True), start=1):
        fields = pair_line.split("\t")
        if len(fields) != 2:
            raise SentEvalFormatError(
                f"{input_path}:{lineno}: expected 'sentence1<TAB>sentence2' (exactly one tab), "
                f"found {len(fields) - 1} tabs"
            )
        if gold_line.strip() == "":  # unannotated pair: SentEval drops it too
            continue
        scores.append(_parse_score(gold_line, gold_path, lineno))
        sent1.append(fields[0])
        sent2.append(fields[1])
    return STSPairs(sent1, sent2, np.asarray(scores, dtype=np.float64), source=str(input_path))


def load_sts_year(path: str | Path, year: int | str) -> dict[str, STSPairs]:
    """Load all canonical subsets of one STS year (12..16) from ``<path>/STS/STSxx-en-test``."""
    task = sts_task_name(year)
    folder = Path(path) / "STS" / f"{task}-en-test"
    _require_dir(folder)
    data: dict[str, STSPairs] = {}
    for subset in STS_SUBSETS[task]:
        input_path = folder / f"STS.input.{subset}.txt"
        gold_path = folder / f"STS.gs.{subset}.txt"
        for needed in (input_path, gold_path):
            if not needed.is_file():
                raise SentEvalDataError(missing_data_message(needed, f"{task} subset {subset!r} is missing"))
        data[subset] = load_sts_subset(input_path, gold_path)
    return data


def _load_stsb_file(path: Path) -> STSPairs:
    sent1: list[str] = []
    sent2: list[str] = []
    scores: list[float] = []
    for lineno, line in enumerate(_read_lines(path), start=1):
        if line.strip() == "":
            continue
        # No csv module: sentences contain unbalanced quotes. Columns beyond the 7th are ignored.
        fields = line.split("\t")
        if len(fields) < STSB_MIN_COLUMNS:
            raise SentEvalFormatError(
                f"{path}:{lineno}: expected at least {STSB_MIN_COLUMNS} tab-separated columns, found {len(fields)}"
            )
        scores.append(_parse_score(fields[4], path, lineno))
        sent1.append(fields[5])
        sent2.append(fields[6])
    return STSPairs(sent1, sent2, np.asarray(scores, dtype=np.float64), source=str(path))


def load_stsb(path: str | Path, splits: Iterable[str] = SPLITS) -> dict[str, STSPairs]:
    """Load STS Benchmark splits from ``<path>/STS/STSBenchmark/sts-{train,dev,test}.csv``."""
    folder = Path(path) / "STS" / "STSBenchmark"
    _require_dir(folder)
    return {split: _load_stsb_file(folder / STSB_FILES[split]) for split in _check_splits(splits)}


def _load_sick_file(path: Path) -> STSPairs:
    lines = _read_lines(path)
    if not lines:
        raise SentEvalFormatError(f"{path}:1: file is empty, expected a header line")
    header = lines[0].split("\t")
    if not all(col in header for col in SICK_COLUMNS):
        raise SentEvalFormatError(f"{path}:1: header must name the columns {', '.join(SICK_COLUMNS)}")
    ia, ib, iscore = (header.index(col) for col in SICK_COLUMNS)
    needed = max(ia, ib, iscore) + 1
    sent1: list[str] = []
    sent2: list[str] = []
    scores: list[float] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if line.strip() == "":
            continue
        fields = line.split("\t")
        if len(fields) < needed:
            raise SentEvalFormatError(
                f"{path}:{lineno}: expected at least {needed} tab-separated columns, found {len(fields)}"
            )
        scores.append(_parse_score(fields[iscore], path, lineno))
        sent1.append(fields[ia])
        sent2.append(fields[ib])
    return STSPairs(sent1, sent2, np.asarray(scores, dtype=np.float64), source=str(path))


def load_sick(path: str | Path, splits: Iterable[str] = SPLITS) -> dict[str, STSPairs]:
    """Load SICK relatedness splits (train / trial as dev / test_annotated as test) from ``<path>/SICK``."""
    folder = Path(path) / "SICK"
    _require_dir(folder)
    return {split: _load_sick_file(folder / SICK_FILES[split]) for split in _check_splits(splits)}


# ---------------------------------------------------------------------------------------------- scoring


def cosine_similarity(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Row-wise cosine similarity of two ``(n, d)`` arrays (or two ``(d,)`` vectors), in float64.

    Norms are clamped to ``eps`` so an all-zero embedding gives similarity 0 instead of nan.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cosine_similarity: shapes differ, {a.shape} vs {b.shape}")
    if a.ndim not in (1, 2):
        raise ValueError(f"cosine_similarity: expected 1-D or 2-D arrays, got shape {a.shape}")
    dots = np.einsum("...d,...d->...", a, b)
    norms = np.maximum(np.linalg.norm(a, axis=-1), eps) * np.maximum(np.linalg.norm(b, axis=-1), eps)
    return dots / norms


def correlations(system: np.ndarray, gold: np.ndarray) -> dict[str, float | int]:
    """Pearson and Spearman of system vs. gold scores as plain floats (nan when fewer than 2 pairs)."""
    system = np.asarray(system, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.float64)
    n = len(gold)
    if n < 2:
        return {"pearson": math.nan, "spearman": math.nan, "nsamples": n}
    return {
        "pearson": float(pearsonr(system, gold)[0]),
        "spearman": float(spearmanr(system, gold)[0]),
        "nsamples": int(n),
    }


def aggregate(
    per_subset: dict[str, dict[str, float | int]], system: dict[str, np.ndarray], gold: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """Combine subsets: ``all`` pools every pair (SimCSE), ``mean`` is unweighted, ``wmean`` weights by nsamples."""
    all_scores = correlations(np.concatenate(list(system.values())), np.concatenate(list(gold.values())))
    weights = np.asarray([r["nsamples"] for r in per_subset.values()], dtype=np.float64)
    out: dict[str, dict[str, float]] = {}
    for metric in ("pearson", "spearman"):
        values = np.asarray([r[metric] for r in per_subset.values()], dtype=np.float64)
        out[metric] = {
            "all": float(all_scores[metric]),
            "mean": float(values.mean()),
            "wmean": float((values * weights).sum() / weights.sum()) if weights.sum() > 0 else math.nan,
        }
    return out
