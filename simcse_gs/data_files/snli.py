"""The CPU configs' supervised training file, rebuilt from SentEval-format SNLI."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .download import DataError
from .locations import data_dir, say

SNLI_TRIPLES = "snli_dev_test_triples_for_simcse.csv"
SNLI_TRIPLES_SHA256 = "fa4808b55fb75ca3adedf67adb31eb65c85773f0e70c3e773c4e0b843bfad4e5"


def build_snli_triples(snli_dir: str | os.PathLike, dest_dir: str | os.PathLike | None = None) -> Path:
    """``data/snli_dev_test_triples_for_simcse.csv`` (the CPU configs' supervised data) from SNLI dev + test in
    SentEval's format (``s1.dev``, ``s2.dev``, ``labels.dev``, and the same for ``test``; SentEval's
    ``data/downstream/get_transfer_data.bash`` writes them).

    Per split, pairs are grouped by identical premise in first-seen order; the i-th entailment hypothesis of a
    premise is paired with its i-th contradiction (the shorter list decides how many), whitespace stripped, written
    with Python's csv (minimal quoting) under the header ``sent0,sent1,hard_neg``. From SNLI 1.0 that gives 5,883
    triples whose SHA-256 is :data:`SNLI_TRIPLES_SHA256` (said when it matches). Training on SNLI dev/test means
    SNLI cannot be used to evaluate the same model.
    """
    import csv
    import io

    snli = Path(snli_dir)
    rows: list[tuple[str, str, str]] = []
    for split in ("dev", "test"):
        try:
            columns = [(snli / f"{kind}.{split}").read_text(encoding="utf-8").splitlines()
                       for kind in ("s1", "s2", "labels")]
        except OSError as err:
            raise DataError(f"{snli} is not SNLI in SentEval's format ({err})") from None
        by_premise: dict[str, dict[str, list[str]]] = {}
        for premise, hypothesis, label in zip(*columns):
            groups = by_premise.setdefault(premise.strip(), {"entailment": [], "contradiction": []})
            if label.strip() in groups:
                groups[label.strip()].append(hypothesis.strip())
        for premise, groups in by_premise.items():
            rows += [(premise, e, c) for e, c in zip(groups["entailment"], groups["contradiction"])]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["sent0", "sent1", "hard_neg"])
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8")
    target = (Path(dest_dir) if dest_dir else data_dir()) / SNLI_TRIPLES
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    same = hashlib.sha256(data).hexdigest() == SNLI_TRIPLES_SHA256
    say(f"{target}: {len(rows)} triples" + (", identical to the project's copy (SHA-256)" if same else
                                             "; its SHA-256 differs from the project's copy (another SNLI version?)"))
    return target
