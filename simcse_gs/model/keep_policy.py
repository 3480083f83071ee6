"""The keep-policy interface: per-token scores -> keep weights, in training and at inference.

A policy answers three questions for a batch of sentences:

* **scores** -- how much each token deserves to be kept (the proxy's keep/drop logits, a token's IDF, a
  pseudo-random number, ...);
* **inference** -- the hard 0/1 keep the encoder runs with (:meth:`KeepPolicy.infer`): a rule on the scores, or the
  keep budget's ``ceil(r * n)`` best tokens (:mod:`.budget`);
* **training** -- the keep weight of each view (:meth:`KeepPolicy.train_keep`), and what the loss gets from the
  decision (keep statistics, the keep-rate penalty, a REINFORCE surrogate).

Two token groups never reach a decision: padding is always dropped and special tokens always kept (unless
``gs_drop_special_tokens``), see :mod:`.keep`. Policies are stateless objects built from the config; the weights
and buffers they use (the proxy, an IDF table, a REINFORCE baseline) live on the model under fixed names, so a
checkpoint's state dict does not depend on how the policy code is organised. :mod:`.registry` chooses the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch

from .budget import budget_keep
from .gumbel import keep_log_odds, keep_probability
from .keep import apply_forced, decided_mask, inference_keep, keep_statistic_tensors
from .loss import sum_across_processes


class PolicyHost(Protocol):
    """What a policy needs of the model it decides for (:class:`~.modeling.SimCSEGSModel` is one): the special-token
    mask, the proxy (proxy policies), whether it trains, and the buffers its policy registered on it."""

    training: bool
    proxy: Any

    def special_tokens_mask(self, input_ids: torch.Tensor) -> torch.Tensor: ...


@dataclass
class KeepDecision:
    """What a policy decided for ``n_views`` views of a batch of sentences.

    ``weights``: one [N, L] keep weight per view (None where every token is kept: the stock attention runs);
    ``statistics``: keep_prob / keep_rate / keep_entropy of the batch as detached 0-d tensors (proxy policies);
    ``keep_prob_sum`` / ``decided_count``: the sum of p over the decided tokens (with its gradient) and their number,
    from which :meth:`KeepPolicy.keep_rate_loss` makes the penalty (kept as sums so that the decisions of several
    chunks of one batch give the batch's penalty); ``keep_log_prob``: [draws, N] log-probability of each training
    draw over the decided tokens (REINFORCE's surrogate needs it).
    """

    weights: list[torch.Tensor | None]
    statistics: dict[str, torch.Tensor] = field(default_factory=dict)
    keep_prob_sum: torch.Tensor | None = None
    decided_count: torch.Tensor | None = None
    keep_log_prob: torch.Tensor | None = None
    decided_tokens: torch.Tensor | None = None  # how many tokens the statistics are over (detached)

    def stacked(self) -> torch.Tensor | None:
        """The views' weights concatenated view-major, as the encoder gets them (None: keep everything)."""
        return None if self.weights[0] is None else torch.cat(self.weights)


def merge_decisions(decisions: list[KeepDecision]) -> KeepDecision:
    """One decision for a batch embedded in chunks: each view's weights and the REINFORCE log-probabilities
    concatenated in order, the statistics averaged over the chunks' decided tokens (one decision: itself)."""
    if len(decisions) == 1:
        return decisions[0]
    first = decisions[0]
    weights = [None if first.weights[0] is None else torch.cat([d.weights[v] for d in decisions])
               for v in range(len(first.weights))]
    log_prob = None if first.keep_log_prob is None else torch.cat([d.keep_log_prob for d in decisions], dim=1)
    statistics = {}
    if first.statistics:
        counts = torch.stack([d.decided_tokens for d in decisions]).float()
        for key in first.statistics:
            values = torch.stack([d.statistics[key] for d in decisions])
            statistics[key] = (values * counts).sum() / counts.sum().clamp(min=1)
    return KeepDecision(weights, statistics, keep_log_prob=log_prob, decided_tokens=counts.sum())


@dataclass
class InferenceKeep:
    """The hard keep at inference: ``keep`` [N, L] 0/1 (forced tokens applied), the keep probability behind it (for
    statistics) and the decided-token mask; all None where every token is kept."""

    prob: torch.Tensor | None
    keep: torch.Tensor | None
    decided: torch.Tensor | None


class KeepPolicy:
    """Base of every keep policy; subclasses set :attr:`name` and fill in :meth:`scores` and the training draw."""

    name: ClassVar[str] = ""
    uses_proxy: ClassVar[bool] = False  # scores come from the model's trained proxy
    uses_tau: ClassVar[bool] = False  # the training draw depends on the Gumbel temperature (the Trainer logs it)

    def __init__(self, config: Any):
        self.config = config

    # ------------------------------------------------------------------ what the policy requires and implies

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        """Refuse settings this policy cannot honour (called with every setting, before a model is built)."""

    def register_state(self, model: torch.nn.Module) -> None:
        """Register the buffers the policy keeps on the model (they travel with the checkpoint)."""

    def init_state(self, model: torch.nn.Module) -> None:
        """Initialise those buffers (a new model; loading then overwrites them)."""

    @property
    def drops_in_training(self) -> bool:
        """Whether training runs the token-keep attention (False: the stock attention, every token kept)."""
        return True

    @property
    def inference_budget(self) -> float | None:
        """The keep rate of the inference rule: ``keep_budget``, or None for the policy's own rule."""
        return self.config.keep_budget

    # ------------------------------------------------------------------ shared pieces

    def decided(self, model: PolicyHost, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(special-token mask, decided-token mask) of a batch."""
        special = model.special_tokens_mask(input_ids)
        return special, decided_mask(attention_mask, special, self.config.gs_drop_special_tokens)

    def forced(self, keep: torch.Tensor, attention_mask: torch.Tensor, special: torch.Tensor) -> torch.Tensor:
        """``keep`` with padding at 0 and special tokens at 1 (unless ``gs_drop_special_tokens``)."""
        return apply_forced(keep, attention_mask, special, self.config.gs_drop_special_tokens)

    # ------------------------------------------------------------------ the interface

    def scores(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               **encoder_kwargs: Any) -> torch.Tensor:
        """Per-token scores of a batch: [N, L] (or the proxy's [N, L, 2] logits)."""
        raise NotImplementedError

    def infer(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              budget: float | None = None, **encoder_kwargs: Any) -> InferenceKeep:
        """The hard keep at inference; ``budget`` r keeps the ``ceil(r * n)`` best decided tokens."""
        raise NotImplementedError

    def train_keep(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   n_views: int, tau: float | None, **encoder_kwargs: Any) -> KeepDecision:
        """Keep weights for ``n_views`` views of the same sentences (training; in eval mode, the inference keep)."""
        raise NotImplementedError

    def keep_rate_loss(self, decisions: list[KeepDecision], training: bool) -> torch.Tensor | None:
        """The keep-rate penalty ``gs_keep_rate_weight * (mean p - gs_target_keep_rate)^2`` over every decided token
        of the decisions (the chunks of one batch), and in training of every process (so DDP gives one process's
        gradient); for hard_concrete p = P(gate != 0): the expected-L0 budget. None when the weight is 0."""
        if not decisions or decisions[0].keep_prob_sum is None:
            return None
        total = torch.stack([d.keep_prob_sum for d in decisions]).sum()
        count = torch.stack([d.decided_count for d in decisions]).sum()
        if training:
            total, count = sum_across_processes(total), sum_across_processes(count)
        mean_p = total / count.clamp(min=1)
        return self.config.gs_keep_rate_weight * (mean_p - self.config.gs_target_keep_rate) ** 2

    def surrogate(self, model: PolicyHost, decision: KeepDecision, z: torch.Tensor,
                  contrastive: torch.Tensor) -> torch.Tensor | None:
        """A zero-valued loss term whose gradient trains the scorer where the keep weights cannot (REINFORCE);
        None for the relaxed policies, whose weights carry the gradient themselves."""
        return None


class ProxyPolicy(KeepPolicy):
    """A policy on the proxy's two logits per token (class 0 = keep): the Gumbel-Softmax family.

    Subclasses define the training draw (:meth:`draw`) and, where it is not ``softmax(logits)[keep]``, the keep
    probability (:meth:`probability`) that statistics, the keep-rate penalty and the rule p >= 0.5 read.
    """

    uses_proxy = True

    def probability(self, logits: torch.Tensor) -> torch.Tensor:
        return keep_probability(logits)

    def draw(self, logits: torch.Tensor, tau: float | None, decided: torch.Tensor) -> torch.Tensor:
        """One training keep weight per token (forced tokens are applied by the caller)."""
        raise NotImplementedError

    def training_terms(self, logits: torch.Tensor, draws: list[torch.Tensor], decided: torch.Tensor,
                       decision: KeepDecision) -> None:
        """Add what the loss needs from the raw draws to ``decision`` (REINFORCE: their log-probability)."""

    @staticmethod
    def _require_tau(tau: float | None) -> float:
        if tau is None:
            raise ValueError("Training a GS model needs the Gumbel temperature: pass tau= (the Trainer does).")
        return tau

    def scores(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               **encoder_kwargs: Any) -> torch.Tensor:
        return model.proxy(input_ids, attention_mask, **encoder_kwargs)

    def score(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              budget: float | None = None, **encoder_kwargs: Any
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the proxy once: (logits, keep probability with forced values, hard keep, decided-token mask).

        The hard keep is the inference rule: p >= 0.5 per token (a sentence that keeps none of its decided tokens
        keeps its most probable one), or with a ``budget`` r the ``ceil(r * n)`` decided tokens of highest log-odds.
        """
        special, decided = self.decided(model, input_ids, attention_mask)
        logits = self.scores(model, input_ids, attention_mask, **encoder_kwargs)
        prob = self.forced(self.probability(logits), attention_mask, special)
        if budget is None:
            hard = inference_keep(prob, attention_mask, decided)
        else:
            hard = self.forced(budget_keep(keep_log_odds(logits), decided, budget), attention_mask, special)
        return logits, prob, hard, decided

    def infer(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              budget: float | None = None, **encoder_kwargs: Any) -> InferenceKeep:
        _, prob, hard, decided = self.score(model, input_ids, attention_mask, budget, **encoder_kwargs)
        return InferenceKeep(prob, hard, decided)

    def train_keep(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   n_views: int, tau: float | None, **encoder_kwargs: Any) -> KeepDecision:
        """The proxy runs once; each view draws its own sample (one shared sample with ``gs_shared_sample``)."""
        cfg = self.config
        logits, prob, hard, decided = self.score(model, input_ids, attention_mask, self.inference_budget,
                                                 **encoder_kwargs)
        decision = KeepDecision([hard] * n_views, keep_statistic_tensors(prob.detach(), hard, decided),
                                decided_tokens=decided.sum().detach())
        if cfg.gs_keep_rate_weight > 0:  # the penalty's sums (see keep_rate_loss)
            decision.keep_prob_sum, decision.decided_count = (prob * decided).sum(), decided.sum().float()
        if not model.training:
            return decision
        special = model.special_tokens_mask(input_ids)
        n_draws = 1 if cfg.gs_shared_sample else n_views
        draws = [self.draw(logits, tau, decided) for _ in range(n_draws)]
        weights = [self.forced(draw, attention_mask, special) for draw in draws]
        decision.weights = weights * n_views if n_draws == 1 else weights
        self.training_terms(logits, draws, decided, decision)
        return decision


class ControlPolicy(KeepPolicy):
    """A control without a proxy: a fixed score per token (IDF, pseudo-random), the same path as GS otherwise.

    Training drops ``token_drop_rate`` of the decided tokens (0: nothing, the stock attention; plain SimCSE is this
    policy at rate 0); at inference the model keeps every token unless a keep budget asks for the best ``ceil(r n)``
    by these scores.
    """

    @property
    def drops_in_training(self) -> bool:
        return self.config.token_drop_rate > 0

    def budgeted_keep(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      rate: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(hard keep with the forced tokens, decided mask) at keep rate ``rate``: the ``ceil(rate * n)`` best
        decided tokens by :meth:`scores`."""
        special, decided = self.decided(model, input_ids, attention_mask)
        keep = budget_keep(self.scores(model, input_ids, attention_mask), decided, rate)
        return self.forced(keep, attention_mask, special), decided

    def infer(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              budget: float | None = None, **encoder_kwargs: Any) -> InferenceKeep:
        if budget is None:
            return InferenceKeep(None, None, None)
        keep, decided = self.budgeted_keep(model, input_ids, attention_mask, budget)
        return InferenceKeep(keep, keep, decided)

    def train_keep(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   n_views: int, tau: float | None, **encoder_kwargs: Any) -> KeepDecision:
        if not model.training:
            return KeepDecision([self.infer(model, input_ids, attention_mask, self.inference_budget).keep] * n_views)
        return KeepDecision(self.training_draws(model, input_ids, attention_mask, n_views))

    def training_draws(self, model: PolicyHost, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       n_views: int) -> list[torch.Tensor]:
        """The training keep of each view at rate ``1 - token_drop_rate``."""
        raise NotImplementedError
