"""The head of the optional masked-language-modelling auxiliary loss (SimCSE's ``--do_mlm``)."""

from __future__ import annotations

from torch import nn
from transformers import PretrainedConfig


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
