"""Token masking for the optional masked-language-modelling auxiliary loss (SimCSE's ``--do_mlm``): transformers'
own, see :func:`mask_tokens`. The head the masked tokens are predicted with is part of the model
(:mod:`simcse_gs.model.mlm_head`)."""

from __future__ import annotations

import torch
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase


def mask_tokens(
    input_ids: torch.Tensor, tokenizer: PreTrainedTokenizerBase, probability: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking, by transformers' ``DataCollatorForLanguageModeling``: pick ``probability`` of the tokens that
    are not special tokens ([PAD] is one), of those 80% -> [MASK], 10% -> a random token, 10% unchanged.
    Returns (masked ids, labels with -100 where nothing is predicted), shaped like ``input_ids`` (any leading dims).
    """
    if tokenizer.mask_token_id is None:
        raise ValueError("--do_mlm needs a tokenizer with a mask token.")
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=probability, mask_replace_prob=0.8,
                                              random_replace_prob=0.1)
    collator.generator = generator  # None: torch's global generator, seeded by --seed
    flat = input_ids.reshape(-1, input_ids.shape[-1]).clone()  # it masks in place, one row per sentence
    special = torch.isin(flat, torch.tensor(tokenizer.all_special_ids))
    masked, labels = collator.torch_mask_tokens(flat, special_tokens_mask=special)
    return masked.view_as(input_ids), labels.view_as(input_ids)
