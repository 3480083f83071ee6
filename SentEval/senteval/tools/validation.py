"""SentEval's three validation protocols (``tools/validation.py``), with the PyTorch logistic regression.

* :func:`inner_kfold` (MR, CR, SUBJ, MPQA: one labelled set): k outer stratified folds; in each, the L2 value is
  chosen by an inner stratified k-fold on the outer training part, then a model trained on that part (5% held out
  for early stopping) is tested on the outer test fold. ``devacc``/``acc`` are means over the outer folds.
* :func:`kfold` (TREC, MRPC: train and test): the L2 value with the best mean accuracy over a stratified k-fold of
  train is retrained on all of train (5% held out for early stopping) and tested.
* :func:`split` (SST2, SICK-E: train, dev, test): the L2 value with the best dev accuracy is tested.

The L2 grid is SentEval's ``[1e-5, 1e-4, 1e-3, 1e-2]``. Fold assignment is scikit-learn's ``StratifiedKFold`` with
``shuffle=True``: ``random_state=1111`` for both levels of :func:`inner_kfold` (hard-coded in SentEval, whatever
``params['seed']``), the seed for :func:`kfold`. Accuracies are percentages rounded to 2 decimals at the same places
as SentEval, with the same rounding (numpy's for means of numpy values, Python's for single scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from .classifier import Fold, LogisticRegression

L2_GRID: tuple[float, ...] = tuple(10**t for t in range(-5, -1))
INNER_KFOLD_SEED = 1111  # SentEval's InnerKFoldClassifier fixes its folds' random_state
VALIDATION_SPLIT = 0.05  # share of train held out for early stopping when no dev set is given


@dataclass
class ProtocolResult:
    """What a protocol found: SentEval's ``devacc`` / ``acc`` (percent) and how it got there."""

    devacc: float
    acc: float
    l2reg: list[float]  # the chosen L2 value (one per outer fold for inner_kfold)
    predictions: np.ndarray | None = None  # test predictions (kfold: MRPC's F1 needs them)
    details: dict[str, Any] = field(default_factory=dict)


def _np_round(value: float) -> float:
    """``round(np.float64, 2)``: numpy's rounding, which SentEval gets when it rounds ``np.mean(...)``."""
    return float(round(np.float64(value), 2))


def _py_round(value: float) -> float:
    """``round(float, 2)``: Python's rounding, which SentEval gets when it rounds one ``clf.score(...)``."""
    return round(float(value), 2)


def _stratified(n_splits: int, seed: int, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """SentEval's folds: ``StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(X, y)`` (X unused)."""
    skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(labels)), labels))


def _best(scores: Sequence[float]) -> int:
    """``np.argmax``: the first of equal best scores (the smallest L2 value)."""
    return int(np.argmax(scores))


def _details(clf: LogisticRegression, protocol: str, **extra: Any) -> dict[str, Any]:
    """What the classifier was built with, so a caller (or a test) can see the protocol's parameters arrive."""
    return {"protocol": protocol, **clf.config.as_dict(), "seed": clf.seed, "l2_grid": list(L2_GRID),
            "fits": clf.fits, **extra}


def inner_kfold(clf: LogisticRegression, n_folds: int) -> ProtocolResult:
    """SentEval's ``InnerKFoldClassifier`` on every row of ``clf``."""
    labels = clf.y.cpu().numpy()
    outer = _stratified(n_folds, INNER_KFOLD_SEED, labels)
    inner = [
        Fold.with_validation(train[in_train], train[in_test], clf.seed)
        for train, _ in outer
        for in_train, in_test in _stratified(n_folds, INNER_KFOLD_SEED, labels[train])
    ]
    scan = clf.fit(inner, L2_GRID)  # every outer fold's inner scan at once: they are independent
    dev_results: list[float] = []
    chosen: list[float] = []
    for o in range(len(outer)):
        block = scan.devacc[o * n_folds : (o + 1) * n_folds]
        scores = [_np_round(100 * np.mean([float(a) for a in block[:, r]])) for r in range(len(L2_GRID))]
        best = _best(scores)
        chosen.append(L2_GRID[best])
        dev_results.append(scores[best])
    finals = clf.fit([Fold.split_off(train, clf.seed, VALIDATION_SPLIT) for train, _ in outer],
                     np.asarray(chosen)[:, None])
    test_results = [_py_round(100 * clf.accuracy(finals.weight[o, 0], test)) for o, (_, test) in enumerate(outer)]
    return ProtocolResult(
        devacc=_np_round(np.mean(dev_results)),
        acc=_np_round(np.mean(test_results)),
        l2reg=chosen,
        details=_details(clf, "inner_kfold", kfold=n_folds, fold_seed=INNER_KFOLD_SEED, outer_devacc=dev_results,
                         outer_acc=test_results),
    )


def kfold(clf: LogisticRegression, train: np.ndarray, test: np.ndarray, n_folds: int) -> ProtocolResult:
    """SentEval's ``KFoldClassifier``: choose L2 by k-fold on ``train`` rows, retrain, test on ``test`` rows."""
    train, test = np.asarray(train), np.asarray(test)
    labels = clf.y.cpu().numpy()
    folds = [Fold.with_validation(train[tr], train[te], clf.seed)
             for tr, te in _stratified(n_folds, clf.seed, labels[train])]
    scan = clf.fit(folds, L2_GRID)
    scores = [_np_round(100 * np.mean([float(a) for a in scan.devacc[:, r]])) for r in range(len(L2_GRID))]
    best = _best(scores)
    final = clf.fit([Fold.split_off(train, clf.seed, VALIDATION_SPLIT)], [L2_GRID[best]])
    predictions = clf.predict(final.weight[0, 0], test)
    acc = 1.0 * int((predictions == labels[test]).sum()) / len(test)
    return ProtocolResult(
        devacc=float(scores[best]),
        acc=_py_round(100 * acc),
        l2reg=[L2_GRID[best]],
        predictions=predictions,
        details=_details(clf, "kfold", kfold=n_folds, fold_seed=clf.seed, l2_scores=scores),
    )


def split(clf: LogisticRegression, train: np.ndarray, valid: np.ndarray, test: np.ndarray) -> ProtocolResult:
    """SentEval's ``SplitClassifier``: choose L2 by dev accuracy, test that model.

    SentEval retrains the chosen L2 value from the same seed, which gives the very model of the scan; it is reused.
    """
    scan = clf.fit([Fold.with_validation(train, valid, clf.seed)], L2_GRID)
    scores = [_py_round(100 * float(a)) for a in scan.devacc[0]]
    best = _best(scores)
    return ProtocolResult(
        devacc=float(scores[best]),
        acc=_py_round(100 * clf.accuracy(scan.weight[0, best], test)),
        l2reg=[L2_GRID[best]],
        details=_details(clf, "split", l2_scores=scores),
    )
