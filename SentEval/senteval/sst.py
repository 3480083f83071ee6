"""SST2: binary sentiment of Stanford Sentiment Treebank phrases (train) and sentences (dev, test).

``SST/binary/sentiment-{train,dev,test}``: ``sentence<TAB>label`` per line, UTF-8, read line by line and stripped
as SentEval does (fields after the second are ignored, as there). Scored by the train/dev/test protocol.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import SentEvalFormatError
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

SPLITS = ("train", "dev", "test")


class SSTEval(TransferTask):
    name = "SST2"
    folder = "SST/binary"
    files = tuple(f"sentiment-{split}" for split in SPLITS)
    nclasses = 2

    def load(self) -> None:
        self.data: dict[str, tuple[list[Sentence], np.ndarray]] = {
            split: self._read(name) for split, name in zip(SPLITS, self.files)
        }

    def _read(self, name: str) -> tuple[list[Sentence], np.ndarray]:
        sentences: list[Sentence] = []
        labels: list[int] = []
        for lineno, line in enumerate(file_lines(read_text(self.file(name), "utf-8", self.fetch)), start=1):
            fields = line.strip().split("\t")
            if len(fields) < 2:
                raise self.malformed(name, lineno, "expected 'sentence<TAB>label' (0 or 1), found no tab")
            if fields[1].strip() not in ("0", "1"):
                raise self.malformed(name, lineno, f"label {fields[1]!r} is not 0 or 1")
            sentences.append(tokens(fields[0]))
            labels.append(int(fields[1]))
        if 1 not in labels:  # SentEval asserts max(label) == 1
            raise SentEvalFormatError(f"{self.file(name)}: no line has label 1; SST2 needs labels 0 and 1")
        return sentences, np.asarray(labels, dtype=np.int64)

    def sentences(self) -> list[Sentence]:
        return [s for sentences, _ in self.data.values() for s in sentences]

    def run(self, embed: Embed, settings: TransferSettings) -> dict[str, Any]:
        parts = {split: sentence_split(sentences, y, embed) for split, (sentences, y) in self.data.items()}
        features, labels, rows = stack_splits(parts)
        clf = settings.classifier_for(features, labels, self.nclasses)
        result = validation.split(clf, rows["train"], rows["dev"], rows["test"])
        return task_result(result, ndev=len(rows["dev"]), ntest=len(rows["test"]))
