"""Training data: one file, three shapes, tokenised once with ``datasets`` and padded per batch.

* ``.txt``: one sentence per line -> unsupervised SimCSE (each sentence is encoded twice).
* ``.csv`` with header ``sent0,sent1`` -> positive pairs.
* ``.csv`` with header ``sent0,sent1,hard_neg`` -> pairs with a hard negative (SimCSE's NLI format).

Examples with an empty sentence are dropped, with a warning that counts them (one blank line in a million
should not stop a run; a file with nothing left is an error).
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass

import torch
from datasets import Dataset, load_dataset
from transformers import PreTrainedTokenizerBase

from .mlm import mask_tokens

logger = logging.getLogger(__name__)

CSV_LAYOUTS = {("sent0", "sent1"): "pairs", ("sent0", "sent1", "hard_neg"): "triples"}


class TrainFileError(ValueError):
    """A training file that cannot be used as it is; the message says why and what to do."""


def _check_utf8(path: str) -> None:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise TrainFileError(
                    f"{path}:{lineno}: not valid UTF-8 ({err.reason} at byte {err.start} of the line). Convert the "
                    "file, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`."
                ) from None


def inspect_train_file(path: str | None) -> tuple[str, list[str]]:
    """Check the file and return its kind (unsup / pairs / triples) and the sentence columns, or fail clearly."""
    if not path:
        raise TrainFileError("No training file: pass --train_file (a .txt with one sentence per line, or a .csv).")
    if not os.path.isfile(path):
        raise TrainFileError(f"Training file not found: {path}. Check --train_file.")
    if os.path.getsize(path) == 0:
        raise TrainFileError(f"Training file is empty: {path}.")
    _check_utf8(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".txt":
        return "unsup", ["text"]
    if ext != ".csv":
        raise TrainFileError(f"{path}: --train_file must end in .txt (one sentence per line) or .csv, not '{ext}'.")
    with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: a spreadsheet's byte-order mark is fine
        header = next(csv.reader(f), [])
    layout = CSV_LAYOUTS.get(tuple(h.strip() for h in header))
    if layout is None:
        raise TrainFileError(
            f"{path}: the first line must be the header 'sent0,sent1' (pairs) or 'sent0,sent1,hard_neg' "
            f"(pairs with a hard negative); found {len(header)} column(s): {header[:5]}. "
            "Add or fix the header line (a file without one would lose its first example)."
        )
    return layout, [h.strip() for h in header]


def _raise_csv_problem(path: str, n_columns: int, err: Exception) -> None:
    """Turn a csv loader failure into a TrainFileError naming the first bad row; re-raise ``err`` if none found."""
    n_rows = 0
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, strict=True)
        next(reader, None)
        start = reader.line_num + 1
        advice = ('Quote sentences that contain a comma ("a, b"), double the quotes inside a quoted sentence (""), '
                  "and close every quote.")
        try:
            for row in reader:
                if len(row) > n_columns:
                    raise TrainFileError(
                        f"{path}:{start}: {len(row)} fields, but the header has {n_columns}. {advice}"
                    ) from None
                n_rows += 1
                start = reader.line_num + 1
        except csv.Error as csv_err:
            raise TrainFileError(f"{path}:{start}: malformed csv ({csv_err}). {advice}") from None
    if n_rows == 0:
        raise TrainFileError(f"{path}: the header is there but no example follows it.") from None
    raise err


def load_train_dataset(
    path: str,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int = 32,
    num_proc: int | None = None,
    cache_dir: str | None = None,
) -> Dataset:
    """Load, drop empty examples, and tokenise (cached by ``datasets``): columns input_ids, attention_mask, ...

    Each example holds one list per sentence (1 for unsup, 2 or 3 for csv), left unpadded.
    """
    kind, columns = inspect_train_file(path)
    if kind == "unsup":
        raw = load_dataset("text", data_files=path, split="train", cache_dir=cache_dir)
    else:
        try:
            raw = load_dataset("csv", data_files=path, split="train", cache_dir=cache_dir, keep_default_na=False,
                               encoding="utf-8-sig")
        except Exception as err:  # pandas/datasets errors say little; find the row ourselves
            _raise_csv_problem(path, len(columns), err)
    for col in columns:
        raw = raw.map(lambda b, c=col: {c: [str(s or "").strip() for s in b[c]]}, batched=True, num_proc=num_proc)
    before = len(raw)
    raw = raw.filter(lambda b: [all(b[c][i] for c in columns) for i in range(len(b[columns[0]]))], batched=True)
    if len(raw) < before:
        logger.warning("Dropped %d of %d examples of %s with an empty sentence.", before - len(raw), before, path)
    if len(raw) == 0:
        raise TrainFileError(f"{path}: no example is left after dropping empty sentences.")

    def tokenize(batch: dict) -> dict:
        n = len(batch[columns[0]])
        flat = [batch[c][i] for i in range(n) for c in columns]  # example-major: s0, s1, (s2), s0, ...
        enc = tokenizer(flat, truncation=True, max_length=max_seq_length)
        k = len(columns)
        return {key: [vals[i * k : (i + 1) * k] for i in range(n)] for key, vals in enc.items()}

    return raw.map(tokenize, batched=True, remove_columns=raw.column_names, num_proc=num_proc,
                   desc="Tokenizing")


@dataclass
class SimCSECollator:
    """Pad every sentence of the batch to the batch's longest, or to ``pad_to_length`` (the original GS repo padded
    to ``max_seq_length``), as [B, V, L] tensors; add MLM inputs if asked."""

    tokenizer: PreTrainedTokenizerBase
    do_mlm: bool = False
    mlm_probability: float = 0.15
    pad_to_length: int | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch_size, n_sent = len(features), len(features[0]["input_ids"])
        keys = [k for k in features[0] if k in ("input_ids", "attention_mask", "token_type_ids")]
        flat = [{k: f[k][j] for k in keys} for f in features for j in range(n_sent)]
        fixed = {"padding": "max_length", "max_length": self.pad_to_length} if self.pad_to_length else {}
        padded = self.tokenizer.pad(flat, return_tensors="pt", **fixed)
        batch = {k: v.view(batch_size, n_sent, -1) for k, v in padded.items() if k in keys}
        if self.do_mlm:
            ids, labels = mask_tokens(batch["input_ids"], self.tokenizer, self.mlm_probability, None)
            labels[batch["attention_mask"] == 0] = -100
            batch["mlm_input_ids"], batch["mlm_labels"] = ids, labels
        return batch
