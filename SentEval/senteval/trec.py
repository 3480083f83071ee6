"""TREC: question type (6 coarse classes), scored by k-fold model selection on train, then the test set.

``TREC/train_5500.label`` and ``TREC_10.label``, latin-1, one ``COARSE:fine question words`` per line. As in
SentEval the label is the part before the first ':', and the question is what follows the first space after it
(the fine label is dropped).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .tools import validation
from .transfer import (
    Embed,
    Sentence,
    TransferSettings,
    TransferTask,
    file_lines,
    read_text,
    sentence_split,
    stack_splits,
    task_result,
    tokens,
)

LABELS: dict[str, int] = {"ABBR": 0, "DESC": 1, "ENTY": 2, "HUM": 3, "LOC": 4, "NUM": 5}  # SentEval's ids


class TRECEval(TransferTask):
    name = folder = "TREC"
    files = ("train_5500.label", "TREC_10.label")
    nclasses = len(LABELS)

    def load(self) -> None:
        self.data = {split: self._read(name) for split, name in zip(("train", "test"), self.files)}

    def _read(self, name: str) -> tuple[list[Sentence], np.ndarray]:
        sentences: list[Sentence] = []
        labels: list[int] = []
        for lineno, line in enumerate(file_lines(read_text(self.file(name), "latin-1", self.fetch)), start=1):
            target, colon, rest = line.strip().partition(":")
            if not colon:
                raise self.malformed(name, lineno, "expected 'LABEL:fine question', found no ':'")
            if target not in LABELS:
                raise self.malformed(name, lineno, f"label {target!r} is not one of {', '.join(LABELS)}")
            fine, space, question = rest.partition(" ")
            if not space:
                raise self.malformed(name, lineno, f"expected a space after the fine label {fine!r}")
            sentences.append(tokens(question))
            labels.append(LABELS[target])
        return sentences, np.asarray(labels, dtype=np.int64)

    def sentences(self) -> list[Sentence]:
        return [s for sentences, _ in self.data.values() for s in sentences]

    def run(self, embed: Embed, settings: TransferSettings) -> dict[str, Any]:
        parts = {split: sentence_split(sentences, y, embed) for split, (sentences, y) in self.data.items()}
        features, labels, rows = stack_splits(parts)
        clf = settings.classifier_for(features, labels, self.nclasses)
        result = validation.kfold(clf, rows["train"], rows["test"], settings.kfold)
        return task_result(result, ndev=len(rows["train"]), ntest=len(rows["test"]))
