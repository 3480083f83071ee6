"""The frequency heuristic for token dropping: inverse document frequency of every vocabulary id.

The baseline a learned selection has to beat: drop the most frequent tokens first (function words, punctuation),
the oldest trick of retrieval. A "document" is one training sentence, so the table is computed from the training
file itself (``--token_drop_heuristic idf``) and stored in the checkpoint with the model.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def idf_table(token_ids: Iterable[list[int]], vocab_size: int) -> torch.Tensor:
    """Smoothed IDF per vocabulary id, ``log((1 + N) / (1 + df)) + 1`` over ``N`` sentences (ids never seen get
    the highest value: they are the rarest)."""
    df = torch.zeros(vocab_size, dtype=torch.float64)
    n = 0
    for ids in token_ids:
        df[torch.as_tensor(sorted(set(ids)), dtype=torch.long)] += 1
        n += 1
    if n == 0:
        raise ValueError("Cannot compute IDF from an empty training set.")
    return (torch.log((1 + n) / (1 + df)) + 1).float()


def idf_from_dataset(dataset, vocab_size: int) -> torch.Tensor:
    """IDF of a tokenised training set (``load_train_dataset``'s output: one id list per sentence of an example)."""
    return idf_table((ids for example in dataset["input_ids"] for ids in example), vocab_size)


def idf_scores(idf: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Keep scores of a batch: a token's IDF (rarer = higher = kept first)."""
    return idf.to(input_ids.device)[input_ids]


