"""Turning keep probabilities into keep weights, and measuring what the proxy keeps.

Two token groups never reach the proxy's decision: padding is always dropped (weight 0) and special tokens
([CLS]/[SEP], <s>/</s>) are always kept (weight 1) unless ``gs_drop_special_tokens``. Everything else is a
*decided* token, and the statistics below are taken over decided tokens only, so a sentence's keep rate is
not inflated by the tokens nobody chose.
"""

from __future__ import annotations

import torch


def decided_mask(attention_mask: torch.Tensor, special_mask: torch.Tensor, drop_special: bool) -> torch.Tensor:
    """Boolean mask of the tokens whose keep weight the proxy decides."""
    real = attention_mask.bool()
    return real if drop_special else real & ~special_mask.bool()


def apply_forced(
    keep: torch.Tensor, attention_mask: torch.Tensor, special_mask: torch.Tensor, drop_special: bool
) -> torch.Tensor:
    """Force padding to 0 and (unless ``drop_special``) special tokens to 1, keeping gradients elsewhere."""
    keep = torch.where(attention_mask.bool(), keep, torch.zeros_like(keep))
    if not drop_special:
        keep = torch.where(special_mask.bool() & attention_mask.bool(), torch.ones_like(keep), keep)
    return keep


def inference_keep(
    keep_prob: torch.Tensor, attention_mask: torch.Tensor, decided: torch.Tensor | None = None
) -> torch.Tensor:
    """Hard keep at inference: keep where p >= 0.5; a sentence whose proxy keeps none of its decided tokens keeps
    its most probable decided token.

    ``keep_prob`` must already carry the forced values (see :func:`apply_forced`). The fallback looks at the
    ``decided`` tokens (default: every real token): the forced [CLS]/[SEP] are always kept, so "nothing kept" among
    all tokens would never happen, and a sentence could shrink to its special tokens alone.
    """
    real = attention_mask.bool()
    decided = real if decided is None else decided.bool() & real
    keep = (keep_prob >= 0.5) & real
    # Without a data-dependent branch (``if empty.any()`` would wait for the GPU): the fallback token is
    # or-ed into the rows that kept none of their decided tokens (and have some).
    best = keep_prob.masked_fill(~decided, -1.0).argmax(dim=-1)
    position = torch.arange(keep.shape[-1], device=keep.device)  # (not one_hot: on a CPU it checks on the host)
    nothing_kept = ~(keep & decided).any(dim=-1, keepdim=True) & decided.any(dim=-1, keepdim=True)
    fallback = (position == best.unsqueeze(-1)) & nothing_kept
    return (keep | fallback).to(keep_prob.dtype)


def keep_statistic_tensors(
    keep_prob: torch.Tensor, hard_keep: torch.Tensor, decided: torch.Tensor
) -> dict[str, torch.Tensor]:
    """:func:`keep_statistics` as detached 0-d float32 tensors on the inputs' device: no host sync, so the training
    step logs them without waiting for the GPU (the Trainer averages them at logging time)."""
    n = decided.sum().clamp(min=1)
    p = keep_prob.detach().float().clamp(1e-7, 1 - 1e-7)
    entropy = -(p * p.log() + (1 - p) * (1 - p).log())
    sel = decided.float()
    return {
        "keep_prob": (keep_prob.detach().float() * sel).sum() / n,
        "keep_rate": (hard_keep.detach().float() * sel).sum() / n,
        "keep_entropy": (entropy * sel).sum() / n,
    }


def keep_statistics(keep_prob: torch.Tensor, hard_keep: torch.Tensor, decided: torch.Tensor) -> dict[str, float]:
    """Mean keep probability, fraction kept under the hard rule, and mean binary keep entropy (nats).

    All three are means over decided tokens; an entropy near 0 with a keep fraction near 1 is the "proxy keeps
    everything" collapse the original study reported.
    """
    return {key: float(value) for key, value in keep_statistic_tensors(keep_prob, hard_keep, decided).items()}


class KeepStatsAccumulator:
    """Token-weighted running means of :func:`keep_statistics` over many batches (evaluation, logging).

    With ``sample_size > 0`` it also keeps a uniform random sample (without replacement) of at most
    ``sample_size`` keep probabilities of the decided tokens seen, for a histogram (:attr:`prob_sample`): every
    token gets a random key and the ``sample_size`` smallest keys are kept, so memory stays bounded.
    """

    def __init__(self, sample_size: int = 0, seed: int = 20_240_517) -> None:
        self.sums: dict[str, float] = {}
        self.tokens = 0
        self.sample_size = sample_size
        self._generator = torch.Generator().manual_seed(seed)
        self._sample = torch.empty(0)
        self._keys = torch.empty(0)

    def update(self, keep_prob: torch.Tensor, hard_keep: torch.Tensor, decided: torch.Tensor) -> None:
        n = int(decided.sum())
        if n == 0:
            return
        for key, value in keep_statistics(keep_prob, hard_keep, decided).items():
            self.sums[key] = self.sums.get(key, 0.0) + value * n
        self.tokens += n
        if self.sample_size > 0:
            values = keep_prob.detach()[decided.bool()].float().cpu()
            keys = torch.rand(len(values), generator=self._generator)
            self._sample, self._keys = torch.cat([self._sample, values]), torch.cat([self._keys, keys])
            if len(self._sample) > self.sample_size:
                keep = self._keys.topk(self.sample_size, largest=False).indices
                self._sample, self._keys = self._sample[keep], self._keys[keep]

    @property
    def prob_sample(self) -> torch.Tensor:
        """The sampled keep probabilities (float32, CPU; empty without ``sample_size`` or decided tokens)."""
        return self._sample

    def compute(self) -> dict[str, float]:
        """The means so far (empty dict if no decided token was seen)."""
        return {key: value / self.tokens for key, value in self.sums.items()} if self.tokens else {}

    def reset(self) -> None:
        self.sums, self.tokens = {}, 0
        self._sample, self._keys = torch.empty(0), torch.empty(0)
