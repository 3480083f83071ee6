"""The proxy: a small encoder with a per-token 2-way head (class 0 = keep, 1 = drop) that scores every token.

By default it is the first ``proxy_num_layers`` layers of the backbone checkpoint itself, so it starts from the
same pretrained weights and shares the tokenizer by construction. Any encoder can be the proxy
(``--proxy_model_name_or_path``) as long as it uses exactly the backbone's vocabulary: the keep decisions are
made per token position, so both models must split a sentence into the same tokens.
"""

from __future__ import annotations

import inspect
import logging

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

logger = logging.getLogger(__name__)


PROXY_HEADS = ("linear", "two_layer")


class TokenKeepProxy(nn.Module):
    """Encoder + per-token head giving keep/drop logits of shape [batch, length, 2].

    ``head="linear"`` (default): one zero-initialised Linear(h, 2), so every p starts at exactly 0.5 and no token is
    favoured before training says so. ``head="two_layer"``: the original GS repo's randomly initialised
    token-classification head with dropout (see :func:`build_two_layer_head`).
    """

    def __init__(self, encoder: nn.Module, head: str = "linear"):
        super().__init__()
        if head not in PROXY_HEADS:
            raise ValueError(f"--proxy_head must be one of {', '.join(PROXY_HEADS)}, got '{head}'.")
        self.encoder = without_pooler(encoder)
        self.head_type = head
        config = encoder.config
        self.head = nn.Linear(config.hidden_size, 2) if head == "linear" else build_two_layer_head(config)
        self.reset_head()

    def reset_head(self) -> None:
        """Initialise the head: zeros for ``linear``; N(0, initializer_range) weights, zero biases for ``two_layer``
        (what transformers' ``_init_weights`` gives the original's new classification heads)."""
        for module in self.head.modules():
            if isinstance(module, nn.Linear):
                if self.head_type == "linear":
                    nn.init.zeros_(module.weight)
                else:
                    nn.init.normal_(module.weight, std=getattr(self.encoder.config, "initializer_range", 0.02))
                nn.init.zeros_(module.bias)

    @classmethod
    def from_config(cls, config: PretrainedConfig, head: str = "linear") -> TokenKeepProxy:
        """Random-weight proxy with this encoder config (weights are then loaded from a checkpoint)."""
        return cls(AutoModel.from_config(config), head)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, num_layers: int | None = None, head: str = "linear", **kwargs
    ) -> TokenKeepProxy:
        """Proxy from a pretrained encoder, truncated to its first ``num_layers`` layers when given.

        Truncating leaves the checkpoint's later layers (and its pooler) unused on purpose, which transformers
        would report as a table of UNEXPECTED keys on every GS run. That report is silenced here and only what
        does matter is warned about: proxy weights the checkpoint lacks (they would be random).
        """
        overrides = {"num_hidden_layers": num_layers} if num_layers else {}
        previous = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            encoder, info = AutoModel.from_pretrained(name_or_path, output_loading_info=True, **overrides, **kwargs)
        finally:
            hf_logging.set_verbosity(previous)
        missing = [k for k in info.get("missing_keys", ()) if not k.split(".")[0] == "pooler"]
        if missing:
            logger.warning("The proxy checkpoint %s lacks %d weights, which start random: %s", name_or_path,
                           len(missing), ", ".join(sorted(missing)[:8]) + (" ..." if len(missing) > 8 else ""))
        return cls(encoder, head)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        # DistilBERT/DistilRoBERTa (the original repo's proxies) take no token_type_ids.
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None and self._takes_types else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return self.head(hidden)

    @property
    def _takes_types(self) -> bool:
        return "token_type_ids" in inspect.signature(self.encoder.forward).parameters


def build_two_layer_head(config: PretrainedConfig) -> nn.Sequential:
    """The original GS repo's per-token head (``models/modeling_proxy.py``), chosen by the proxy's family.

    RoBERTa family (its ``RobertaClassificationHead`` applied per token): Dropout -> Linear(h, h) -> Tanh ->
    Dropout -> Linear(h, 2), dropout ``classifier_dropout`` or ``hidden_dropout_prob``. Others (DistilBERT's
    ``pre_classifier``/``classifier``, used for the BERT rows): Linear(h, h) -> ReLU -> Dropout -> Linear(h, 2),
    dropout ``seq_classif_dropout`` (DistilBERT: 0.2) or ``hidden_dropout_prob``.
    """
    hidden = config.hidden_size
    if "roberta" in config.model_type:
        p = getattr(config, "classifier_dropout", None)
        p = config.hidden_dropout_prob if p is None else p
        return nn.Sequential(nn.Dropout(p), nn.Linear(hidden, hidden), nn.Tanh(), nn.Dropout(p), nn.Linear(hidden, 2))
    p = getattr(config, "seq_classif_dropout", None)
    if p is None:
        p = getattr(config, "classifier_dropout", None)
    if p is None:
        p = getattr(config, "hidden_dropout_prob", getattr(config, "dropout", 0.1))
    return nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(p), nn.Linear(hidden, 2))


def without_pooler(encoder: nn.Module) -> nn.Module:
    """Drop BERT/RoBERTa's [CLS] pooler: nothing here uses it, and parameters without gradients break DDP."""
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


def check_same_vocabulary(backbone: PreTrainedTokenizerBase, proxy: PreTrainedTokenizerBase, proxy_name: str) -> None:
    """Refuse a proxy whose tokenizer maps any token to a different id than the backbone's."""
    vb, vp = backbone.get_vocab(), proxy.get_vocab()
    if vb == vp:
        return
    only_b = len(vb.keys() - vp.keys())
    only_p = len(vp.keys() - vb.keys())
    moved = sum(1 for t in vb.keys() & vp.keys() if vb[t] != vp[t])
    raise ValueError(
        f"The proxy '{proxy_name}' uses a different tokenizer than the backbone (backbone vocabulary {len(vb)}, "
        f"proxy {len(vp)}; {only_b} tokens only in the backbone's, {only_p} only in the proxy's, {moved} with "
        "different ids). The proxy scores the backbone's tokens position by position, so both must share one "
        "tokenizer: pick a proxy from the same family (e.g. distilbert-base-uncased for bert-base-uncased, "
        "distilroberta-base for roberta-base) or leave --proxy_model_name_or_path unset to use the backbone's "
        "first --proxy_num_layers layers."
    )


def load_proxy_tokenizer(name_or_path: str, **kwargs) -> PreTrainedTokenizerBase:
    """The tokenizer shipped with a proxy checkpoint (for the vocabulary check)."""
    return AutoTokenizer.from_pretrained(name_or_path, **kwargs)
