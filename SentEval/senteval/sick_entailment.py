"""SICK-E: entailment (contradiction / neutral / entailment) of SICK sentence pairs, train/dev/test protocol.

``SICK/SICK_{train,trial,test_annotated}.txt`` (trial is the dev set): a header line, then tab-separated
``pair_ID sentence_A sentence_B relatedness_score entailment_judgment``; the test file has CRLF line ends. The
columns are read by position, as SentEval does. SICK comes with the STS sets (``sts --fetch``), not with the
transfer download. Pair features: :func:`senteval.transfer.pair_features`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import STS_FETCH
from .tools import validation
from .transfer import (
    Embed,
    Sentence,
    TransferSettings,
    TransferTask,
    file_lines,
    pair_split,
    read_text,
    stack_splits,
    task_result,
    tokens,
)

LABELS: dict[str, int] = {"CONTRADICTION": 0, "NEUTRAL": 1, "ENTAILMENT": 2}  # SentEval's ids
HEADER = {1: "sentence_A", 2: "sentence_B", 4: "entailment_judgment"}  # the columns read, by position
SPLITS = ("train", "dev", "test")


class SICKEntailmentEval(TransferTask):
    name = "SICKEntailment"
    folder = "SICK"
    files = ("SICK_train.txt", "SICK_trial.txt", "SICK_test_annotated.txt")
    nclasses = len(LABELS)
    fetch = STS_FETCH

    def load(self) -> None:
        self.data = {split: self._read(name) for split, name in zip(SPLITS, self.files)}

    def _read(self, name: str) -> tuple[list[Sentence], list[Sentence], np.ndarray]:
        lines = file_lines(read_text(self.file(name), "utf-8", self.fetch))
        header = lines[0].strip().split("\t") if lines else []
        if any(len(header) <= i or header[i] != column for i, column in HEADER.items()):
            expected = ", ".join(f"column {i + 1} {column!r}" for i, column in HEADER.items())
            raise self.malformed(name, 1, f"expected SICK's header line ({expected})")
        first: list[Sentence] = []
        second: list[Sentence] = []
        labels: list[int] = []
        for lineno, line in enumerate(lines[1:], start=2):
            fields = line.strip().split("\t")
            if len(fields) <= max(HEADER):
                raise self.malformed(name, lineno, f"expected {max(HEADER) + 1} tab-separated columns, "
                                                   f"found {len(fields)}")
            if fields[4] not in LABELS:
                raise self.malformed(name, lineno, f"entailment label {fields[4]!r} is not one of {', '.join(LABELS)}")
            first.append(tokens(fields[1]))
            second.append(tokens(fields[2]))
            labels.append(LABELS[fields[4]])
        return first, second, np.asarray(labels, dtype=np.int64)

    def sentences(self) -> list[Sentence]:
        return [s for first, second, _ in self.data.values() for s in (*first, *second)]

    def run(self, embed: Embed, settings: TransferSettings) -> dict[str, Any]:
        parts = {split: pair_split(a, b, y, embed, settings.pair_features) for split, (a, b, y) in self.data.items()}
        features, labels, rows = stack_splits(parts)
        clf = settings.classifier_for(features, labels, self.nclasses)
        result = validation.split(clf, rows["train"], rows["dev"], rows["test"])
        return task_result(result, ndev=len(rows["dev"]), ntest=len(rows["test"]))
