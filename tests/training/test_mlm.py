"""The MLM auxiliary task's masking: BERT's recipe (15 % of the real, non-special tokens chosen; of those 80 %
[MASK], 10 % a random token, 10 % unchanged), whoever implements it. These statistics, the special-token and
padding handling and the labels are what must not change; the random stream itself may."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoTokenizer

from simcse_gs.training.data import SimCSECollator
from simcse_gs.training.mlm import mask_tokens
from tests.conftest import SENTENCES


def within(observed: int, total: int, p: float, sigmas: float = 5.0) -> bool:
    """``observed / total`` is within ``sigmas`` binomial standard errors of ``p``."""
    return abs(observed / total - p) <= sigmas * math.sqrt(p * (1 - p) / total)


@pytest.fixture(scope="module")
def batch(tiny_bert_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    enc = tokenizer(SENTENCES * 400, padding=True, return_tensors="pt")  # 2400 sentences, ~25k real tokens
    return tokenizer, enc["input_ids"], enc["attention_mask"]


def test_masking_follows_berts_recipe(batch):
    tokenizer, ids, attention = batch
    torch.manual_seed(0)
    masked, labels = mask_tokens(ids.clone(), tokenizer, 0.15, None)
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))  # [CLS], [SEP] and [PAD]
    assert special[attention == 0].all()
    assert (labels[special] == -100).all() and torch.equal(masked[special], ids[special])  # never chosen
    chosen = labels != -100
    assert torch.equal(labels[chosen], ids[chosen])  # the label is the original token
    assert torch.equal(masked[~chosen], ids[~chosen])  # nothing else changes
    n_real, n_chosen = int((~special).sum()), int(chosen.sum())
    assert within(n_chosen, n_real, 0.15)
    to_mask = masked[chosen] == tokenizer.mask_token_id
    unchanged = masked[chosen] == ids[chosen]
    to_random = ~to_mask & ~unchanged
    assert within(int(to_mask.sum()), n_chosen, 0.8)
    assert within(int(unchanged.sum()), n_chosen, 0.1)  # (+ a random draw equal to the original: 1/V)
    assert within(int(to_random.sum()), n_chosen, 0.1)
    random_ids = masked[chosen][to_random]
    assert random_ids.min() >= 0 and random_ids.max() < len(tokenizer)
    # spread over the vocabulary, not a few ids: uniform draws of n ids out of V hit V (1 - (1 - 1/V)^n) distinct ones
    vocab, n = len(tokenizer), len(random_ids)
    assert len(random_ids.unique()) > 0.9 * vocab * (1 - (1 - 1 / vocab) ** n)


def test_masking_is_reproducible_with_a_generator_and_keeps_the_shape(batch):
    tokenizer, ids, _ = batch
    three_d = ids[:12].view(4, 3, -1)  # the collator's [batch, views, length]
    first = mask_tokens(three_d.clone(), tokenizer, 0.3, torch.Generator().manual_seed(1))
    second = mask_tokens(three_d.clone(), tokenizer, 0.3, torch.Generator().manual_seed(1))
    assert first[0].shape == first[1].shape == three_d.shape
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert (first[1] != -100).any()


def test_collator_adds_mlm_inputs_without_touching_padding(batch):
    tokenizer, _, _ = batch
    features = [{"input_ids": [tokenizer(s)["input_ids"]], "attention_mask": [[1] * len(tokenizer(s)["input_ids"])]}
                for s in SENTENCES * 20]
    torch.manual_seed(0)
    out = SimCSECollator(tokenizer, do_mlm=True, mlm_probability=0.15)(features)
    assert out["mlm_input_ids"].shape == out["input_ids"].shape == out["mlm_labels"].shape
    padding = out["attention_mask"] == 0
    assert padding.any() and (out["mlm_labels"][padding] == -100).all()
    assert torch.equal(out["mlm_input_ids"][padding], out["input_ids"][padding])
    assert (out["mlm_labels"] != -100).any()
    with pytest.raises(ValueError, match="mask token"):
        mask_tokens(out["input_ids"], _NoMask(tokenizer), 0.15, None)


class _NoMask:
    """A tokenizer without a mask token (e.g. GPT-2's)."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self.mask_token_id = None
        self.mask_token = None

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)
