"""MRPC: paraphrase detection on sentence pairs, scored by k-fold model selection on train, then the test set.

``MRPC/msr_paraphrase_{train,test}.txt`` as Microsoft ships them: UTF-8 with a BOM, CRLF line ends, a header line
(``Quality  #1 ID  #2 ID  #1 String  #2 String``, tab-separated) that SentEval drops, then ``label id id s1 s2``.
The features of a pair are :func:`senteval.transfer.pair_features`. Besides accuracy, the F1 of the
paraphrase class on the test set (``f1``, percent), as SentEval reports it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import f1_score

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

COLUMNS = 5
HEADER_FIRST = "Quality"


class MRPCEval(TransferTask):
    name = folder = "MRPC"
    files = ("msr_paraphrase_train.txt", "msr_paraphrase_test.txt")
    nclasses = 2

    def load(self) -> None:
        self.data = {split: self._read(name) for split, name in zip(("train", "test"), self.files)}

    def _read(self, name: str) -> tuple[list[Sentence], list[Sentence], np.ndarray]:
        lines = file_lines(read_text(self.file(name), "utf-8", self.fetch))
        header = lines[0].strip().split("\t") if lines else [""]
        if header[0].lstrip("\ufeff") != HEADER_FIRST:  # SentEval drops line 1 unread: it must be the header
            raise self.malformed(name, 1, f"expected the header line starting with {HEADER_FIRST!r}")
        first: list[Sentence] = []
        second: list[Sentence] = []
        labels: list[int] = []
        for lineno, line in enumerate(lines[1:], start=2):
            fields = line.strip().split("\t")
            if len(fields) < COLUMNS:
                raise self.malformed(name, lineno, f"expected {COLUMNS} tab-separated columns, found {len(fields)}")
            if fields[0] not in ("0", "1"):
                raise self.malformed(name, lineno, f"label {fields[0]!r} is not 0 or 1")
            first.append(tokens(fields[3]))
            second.append(tokens(fields[4]))
            labels.append(int(fields[0]))
        return first, second, np.asarray(labels, dtype=np.int64)

    def sentences(self) -> list[Sentence]:
        return [s for first, second, _ in self.data.values() for s in (*first, *second)]

    def run(self, embed: Embed, settings: TransferSettings) -> dict[str, Any]:
        parts = {split: pair_split(a, b, y, embed, settings.pair_features) for split, (a, b, y) in self.data.items()}
        features, labels, rows = stack_splits(parts)
        clf = settings.classifier_for(features, labels, self.nclasses)
        result = validation.kfold(clf, rows["train"], rows["test"], settings.kfold)
        f1 = round(100 * float(f1_score(labels[rows["test"]], result.predictions)), 2)
        return task_result(result, ndev=len(rows["train"]), ntest=len(rows["test"]), f1=f1)
