"""MR, CR, SUBJ, MPQA: binary sentence classification, scored by SentEval's inner k-fold protocol.

Each task is two files of one sentence per line, read as SentEval reads them: latin-1, split with
``str.splitlines()`` (so blank lines are kept, as empty sentences, and count as samples), tokens by whitespace.
The first file's sentences get label 1, the second's 0. For SUBJ SentEval passes ``subj.objective`` first, so
*objective* is 1; the label names do not change the accuracy, but they are part of the sort key that orders rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .tools import validation
from .transfer import Embed, Sentence, TransferSettings, TransferTask, read_text, senteval_order, task_result, tokens


class BinaryClassifierEval(TransferTask):
    """``files``: the label-1 file, then the label-0 file; ``ndev`` = ``ntest`` = all samples (cross-validation)."""

    nclasses = 2

    def load(self) -> None:
        ones, zeros = (self._read(name) for name in self.files)
        self.samples: list[Sentence] = ones + zeros
        self.labels = np.array([1] * len(ones) + [0] * len(zeros), dtype=np.int64)

    def _read(self, name: str) -> list[Sentence]:
        return [tokens(line) for line in read_text(self.file(name), "latin-1", self.fetch).splitlines()]

    def sentences(self) -> list[Sentence]:
        return self.samples

    def run(self, embed: Embed, settings: TransferSettings) -> dict[str, Any]:
        order = senteval_order([(len(s), int(y)) for s, y in zip(self.samples, self.labels)])
        features = embed([self.samples[i] for i in order])
        clf = settings.classifier_for(features, self.labels[order], self.nclasses)
        result = validation.inner_kfold(clf, settings.kfold)
        return task_result(result, ndev=len(self.samples), ntest=len(self.samples))


class MREval(BinaryClassifierEval):
    name = folder = "MR"
    files = ("rt-polarity.pos", "rt-polarity.neg")


class CREval(BinaryClassifierEval):
    name = folder = "CR"
    files = ("custrev.pos", "custrev.neg")


class SUBJEval(BinaryClassifierEval):
    name = folder = "SUBJ"
    files = ("subj.objective", "subj.subjective")  # SentEval's order: objective = 1


class MPQAEval(BinaryClassifierEval):
    name = folder = "MPQA"
    files = ("mpqa.pos", "mpqa.neg")
