"""The IDF control's table from the training file: a "document" is one training sentence, so the table is computed
from the training set itself (``--token_drop_heuristic idf``) and stored in the checkpoint with the model
(:mod:`simcse_gs.model.policy_idf_drop`)."""

from __future__ import annotations

import torch

from ..model.policy_idf_drop import idf_table


def idf_from_dataset(dataset, vocab_size: int) -> torch.Tensor:
    """IDF of a tokenised training set (``load_train_dataset``'s output: one id list per sentence of an example)."""
    return idf_table((ids for example in dataset["input_ids"] for ids in example), vocab_size)
