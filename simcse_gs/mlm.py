"""The optional masked-language-modelling auxiliary loss (SimCSE's ``--do_mlm``): heads and token masking."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedTokenizerBase


def build_mlm_head(config: PretrainedConfig) -> nn.Module:
    """The architecture's own LM head (new weights: checkpoints such as all-MiniLM-L6-v2 ship none).

    The decoder is not tied to the input embeddings, which keeps the checkpoint a plain set of tensors.
    """
    if config.model_type == "bert":
        from transformers.models.bert.modeling_bert import BertOnlyMLMHead

        return BertOnlyMLMHead(config)
    if config.model_type == "roberta":
        from transformers.models.roberta.modeling_roberta import RobertaLMHead

        return RobertaLMHead(config)
    raise ValueError(f"--do_mlm supports bert and roberta backbones, not '{config.model_type}'.")


def mask_tokens(
    input_ids: torch.Tensor, tokenizer: PreTrainedTokenizerBase, probability: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: pick ``probability`` of the non-special, non-pad tokens; of those 80% -> [MASK],
    10% -> a random token, 10% unchanged. Returns (masked ids, labels with -100 where nothing is predicted)."""
    if tokenizer.mask_token_id is None:
        raise ValueError("--do_mlm needs a tokenizer with a mask token.")
    labels = input_ids.clone()
    special = torch.isin(input_ids, torch.tensor(tokenizer.all_special_ids))
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & ~special
    labels[~chosen] = -100
    masked = input_ids.clone()
    to_mask = chosen & (torch.rand(input_ids.shape, generator=generator) < 0.8)
    masked[to_mask] = tokenizer.mask_token_id
    to_random = chosen & ~to_mask & (torch.rand(input_ids.shape, generator=generator) < 0.5)
    masked[to_random] = torch.randint(len(tokenizer), input_ids.shape, generator=generator)[to_random]
    return masked, labels
