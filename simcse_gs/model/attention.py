"""The attention patch: scale every self-attention layer's and head's attention probabilities by p over the keys.

    attention_probs = dropout(softmax(Q K^T / sqrt(d) + mask))
    attention_probs = attention_probs * p[:, None, None, :]      # no renormalisation: a continuous token dropout
    output = attention_probs @ V

The scaling comes *after* attention dropout, as in the original GS repo (dropout and a per-key scale commute, so
the order does not change the result for one dropout mask).

Two registered implementations, chosen with ``--gs_attn_impl``:

* ``gs_sdpa`` (fast path): ``(A * p_j) V == A (p * V)``, so scale the value vectors and call transformers' stock
  SDPA attention. Fused GPU kernels stay usable.
* ``gs_eager`` (reference): computes the probabilities and scales them explicitly, as written above.

Both are plugged in through transformers' attention interface; p travels as the ``token_keep`` keyword argument
that ``BertModel.forward`` / ``RobertaModel.forward`` pass down to every layer's attention function. With
``token_keep=None`` both are the plain attention. Each comes with its mask function: without one, transformers
silently drops the padding mask (see ``shared/docs/DESIGN-NOTES.md``).

The renormalised variant (``token_keep_renorm=True``, ``--gs_attn_renorm``) divides by the kept mass instead:

    attention_probs = attention_probs * p[:, None, None, :] / (attention_probs @ p)[..., None]

so with hard 0/1 keeps a dropped key takes no softmax mass at all, and every kept token computes exactly what it
would compute in the sentence with the dropped tokens removed (same position ids): the model can then be *pruned*
at inference (:mod:`.pruning`). On the SDPA path the denominator comes from the same kernel call: p is
appended to V as one more channel, ``A [pV, p] = [A(pV), Ap]``.

Gradients of the keep weights under renormalisation: the exact derivative of a kept query's output with respect to
a dropped key's weight is ``A_ij (v_j - out_i) / (A p)_i``, which explodes when the query's kept mass ``(A p)_i`` is
small, as it is for heads that look mostly at tokens a hard selection (straight-through top-k) has just dropped:
proxy gradient norms of 1e6 on MiniLM, against 5 for the plain scaling (measured, one batch of 32 sentences).
So the forward pass is renormalised, and p learns from the derivative of the unrenormalised scaling
``A_ij v_j`` (the original's continuous token dropout), a straight-through estimator in the same spirit as
``--gs_estimator st``: the encoder's own weights get their exact gradients.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

# Model types whose self-attention calls the attention interface with the forward kwargs (checked in tests).
SUPPORTED_MODEL_TYPES = ("bert", "roberta")
ATTN_IMPLEMENTATIONS = {"sdpa": "gs_sdpa", "eager": "gs_eager"}


# Smallest kept attention mass divided by: a query row whose every kept key was zeroed by dropout gives 0, not NaN.
_RENORM_EPS = 1e-12


def gs_sdpa_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    token_keep: torch.Tensor | None = None,
    token_keep_renorm: bool = False,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Fast path: scale V by p (shape [batch, keys]) and run the stock SDPA attention (renormalised: see above)."""
    if token_keep is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    keep = token_keep[:, None, :, None].to(value.dtype)
    if not token_keep_renorm:
        return sdpa_attention_forward(module, query, key, value * keep, attention_mask, **kwargs)
    fixed = keep.detach()
    extended = torch.cat([value * fixed, fixed.expand(*value.shape[:-1], 1)], dim=-1)
    out, _ = sdpa_attention_forward(module, query, key, extended, attention_mask, **kwargs)  # [B, L, H, D + 1]
    out = out[..., :-1] / out[..., -1:].clamp(min=_RENORM_EPS)
    if token_keep.requires_grad:  # the keep weights learn through the unrenormalised scaling (module docstring)
        scaled, _ = sdpa_attention_forward(module, query.detach(), key.detach(), value.detach() * keep,
                                           attention_mask, **kwargs)
        out = out + (scaled - scaled.detach())
    return out, None


def gs_eager_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    token_keep: torch.Tensor | None = None,
    token_keep_renorm: bool = False,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: explicit probabilities, dropout, then ``probs * p[:, None, None, :]`` (and the renormalisation)."""
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    if token_keep is not None and token_keep_renorm:
        keep = token_keep[:, None, None, :].to(probs.dtype)
        scaled = probs * keep.detach()
        renormed = scaled / scaled.sum(dim=-1, keepdim=True).clamp(min=_RENORM_EPS)
        # the keep weights learn through the unrenormalised scaling (module docstring)
        probs = renormed + (probs.detach() * keep - probs.detach() * keep.detach())
    elif token_keep is not None:
        probs = probs * token_keep[:, None, None, :].to(probs.dtype)
    output = torch.matmul(probs, value).transpose(1, 2).contiguous()
    return output, probs


def register_token_keep_attention() -> None:
    """Register both implementations and their mask functions with transformers (idempotent)."""
    AttentionInterface.register("gs_sdpa", gs_sdpa_attention)
    AttentionMaskInterface.register("gs_sdpa", sdpa_mask)
    AttentionInterface.register("gs_eager", gs_eager_attention)
    AttentionMaskInterface.register("gs_eager", eager_mask)


def check_supported(model_type: str) -> None:
    """Fail early, naming the supported architectures, if the patch has not been checked for ``model_type``."""
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"The token-keep attention patch supports model types {', '.join(SUPPORTED_MODEL_TYPES)}; "
            f"this checkpoint is '{model_type}'. Use a BERT or RoBERTa checkpoint, or train without GS "
            "(--use_gs false and --token_drop_rate 0)."
        )


def enable_token_keep(encoder: PreTrainedModel, impl: str = "sdpa") -> None:
    """Switch a BERT/RoBERTa encoder to the token-keep attention (``impl``: 'sdpa' fast path or 'eager')."""
    check_supported(encoder.config.model_type)
    if impl not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"--gs_attn_impl must be one of {sorted(ATTN_IMPLEMENTATIONS)}, got '{impl}'.")
    register_token_keep_attention()
    encoder.set_attn_implementation(ATTN_IMPLEMENTATIONS[impl])
