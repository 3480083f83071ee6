"""Token pruning inside the encoder: after chosen layers, keep the best ``ceil(r * n)`` tokens of every sentence, or
merge the most similar ones, and run the later layers on what is left.

Scoring from the encoder's own hidden states costs one small head instead of a proxy encoder (PoWER-BERT, Goyal et
al. 2020, "PoWER-BERT: Accelerating BERT Inference via Progressive Word-vector Elimination"; LTP, Kim et al. 2022,
"Learned Token Pruning for Transformers"). A :class:`PruneSchedule` names the prune points (``layers``: after layer
k, 1-based, so layers k+1..L see fewer tokens) and the share of each sentence's decided tokens kept after each
(``rates``, non-increasing: a progressive schedule such as 0.8 after layer 2 and 0.5 after layer 4). Special tokens
([CLS]/[SEP], <s>/</s>) are always kept; padding never is.

Scorers (:data:`SCORERS`):

* ``learned``: a small head per prune point on the hidden states (:class:`LayerScorer`), plus a prior: the
  ``attention`` score (default) or the ``idf`` table (the best training-free dropping scorer for mean pooling,
  docs/RESULTS.md); its last layer starts at zero, so an untrained model prunes as its prior does and training
  learns the correction. Trained through a Gumbel-perturbed relaxed top-k (:mod:`.policy_topk`): the
  forward pass keeps exactly the hard top-k, and each kept token's hidden state is multiplied by its straight-through
  weight (1 in the forward pass), whose gradient reaches the head (also for the dropped tokens, through the
  relaxation's normalisation).
* ``attention``: PoWER-BERT's significance, the attention a token receives at the prune layer, summed over heads and
  real queries (from that layer's own query/key projections).
* ``first``: the first ``ceil(r * n)`` decided tokens. ``idf``: the rarest tokens first (an IDF table). ``random``:
  pseudo-random per sentence and position (:func:`~.policy_random_drop.sentence_hash_uniform`).
* ``merge``: token merging instead of dropping (ToMe, Bolya et al. 2023, "Token Merging: Your ViT But Faster"):
  bipartite soft matching between alternate decided tokens by the cosine of their hidden states (ToMe matches on
  the attention keys; we use the layer's output), each merged pair averaged by size, and proportional attention
  (log size added to the keys' logits) in the later layers. One matching merges at most half of a sentence's decided
  tokens, so a rate below 0.5 takes several rounds at the same layer.

``prune=True`` removes the dropped tokens (each sentence repacked to the longest kept count of the batch);
``prune=False`` keeps them and masks them out of every later layer's attention and out of the pooled mean: the same
result (a kept token's state never depends on a dropped one after the prune point), which the tests check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .budget import budget_size, topk_mask
from .policy_idf_drop import idf_scores
from .policy_random_drop import sentence_hash_uniform
from .policy_topk import relaxed_topk

SCORERS = ("learned", "attention", "first", "idf", "random", "merge")
SCORER_PRIORS = ("attention", "idf", "none")
PRUNABLE_POOLERS = ("cls", "cls_before_pooler", "avg")
_EPS = 1e-6


@dataclass(frozen=True)
class PruneSchedule:
    """Prune after each of ``layers`` (1-based), keeping ``rates[i]`` of every sentence's decided tokens."""

    layers: tuple[int, ...]
    rates: tuple[float, ...]
    scorer: str = "attention"
    prior: str = "attention"

    @classmethod
    def parse(cls, layers: Sequence[int] | None, rates: Sequence[float] | None, scorer: str = "attention",
              prior: str = "attention") -> PruneSchedule | None:
        """The schedule of the ``prune_*`` settings (None without prune layers), checked for what it can be
        checked without the encoder (see :meth:`check` for the layer range)."""
        if not layers:
            if rates:
                raise ValueError("--prune_keep_rates needs --prune_layers (after which layers to prune).")
            return None
        layers, rates = tuple(int(x) for x in layers), tuple(float(r) for r in rates or ())
        if len(rates) != len(layers):
            raise ValueError(f"--prune_keep_rates needs one rate per prune layer: {len(layers)} layer(s) "
                             f"{list(layers)} but {len(rates)} rate(s) {list(rates)}.")
        if any(b <= a for a, b in zip(layers, layers[1:])):
            raise ValueError(f"--prune_layers must be increasing, got {list(layers)}.")
        if any(not 0 < r <= 1 for r in rates):
            raise ValueError(f"--prune_keep_rates must each be in (0, 1], got {list(rates)}.")
        if any(b > a for a, b in zip(rates, rates[1:])):
            raise ValueError(f"--prune_keep_rates must not grow from one prune point to the next (a dropped token "
                             f"cannot come back), got {list(rates)}.")
        if scorer not in SCORERS:
            raise ValueError(f"--prune_scorer must be one of {', '.join(SCORERS)}, got '{scorer}'.")
        if prior not in SCORER_PRIORS:
            raise ValueError(f"--prune_scorer_prior must be one of {', '.join(SCORER_PRIORS)}, got '{prior}'.")
        return cls(layers, rates, scorer, prior)

    def check(self, num_layers: int, pooler_type: str | None = None) -> None:
        """Refuse prune points outside 1..L-1 (pruning after the last layer saves nothing) and poolers that need
        the states of tokens that are gone."""
        bad = [k for k in self.layers if not 1 <= k <= num_layers - 1]
        if bad:
            raise ValueError(f"--prune_layers {list(self.layers)}: each prune layer must be in 1..{num_layers - 1} "
                             f"(the encoder has {num_layers} layers; after layer k, layers k+1..{num_layers} run on "
                             "the kept tokens).")
        if pooler_type is not None and pooler_type not in PRUNABLE_POOLERS:
            what = "merged tokens" if self.scorer == "merge" else "pruned tokens"
            raise ValueError(f"The '{pooler_type}' pooler averages hidden states of two layers, which do not exist for "
                             f"{what} (the layers before the prune point saw other tokens): prune with one of "
                             f"{', '.join(PRUNABLE_POOLERS)}.")

    @property
    def learned(self) -> bool:
        return self.scorer == "learned"

    @property
    def uses_idf(self) -> bool:
        """Whether the scores read an IDF table (the model then carries one, filled from the training file)."""
        return self.scorer == "idf" or (self.learned and self.prior == "idf")


class LayerScorer(nn.Module):
    """The learned scorer: one small head per prune point, Linear(h, h/4) -> Tanh -> Linear(h/4, 1), the last layer
    zero-initialised (an untrained head adds nothing to its prior)."""

    def __init__(self, hidden_size: int, n_points: int):
        super().__init__()
        inner = max(hidden_size // 4, 1)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden_size, inner), nn.Tanh(), nn.Linear(inner, 1)) for _ in range(n_points))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for head in self.heads:
            nn.init.normal_(head[0].weight, std=0.02)
            nn.init.zeros_(head[0].bias)
            nn.init.zeros_(head[2].weight)
            nn.init.zeros_(head[2].bias)

    def forward(self, point: int, hidden: torch.Tensor) -> torch.Tensor:
        return self.heads[point](hidden).squeeze(-1).float()


@dataclass
class TokenState:
    """The tokens a batch still has: ``hidden`` [B, T, H], ``real`` [B, T] (present), ``index`` [B, T] (position in
    the input), ``sizes`` [B, T] (how many input tokens each stands for: 1, more after merging)."""

    hidden: torch.Tensor
    real: torch.Tensor
    index: torch.Tensor
    sizes: torch.Tensor

    def gather(self, order: torch.Tensor, real: torch.Tensor) -> TokenState:
        """The tokens at ``order`` [B, T'] (``real`` [B, T']: which of them are tokens, not padding)."""
        hidden = self.hidden.gather(1, order[..., None].expand(-1, -1, self.hidden.size(-1)))
        return TokenState(hidden, real, self.index.gather(1, order), self.sizes.gather(1, order) * real)


@dataclass
class PrunedEncoding:
    """The last layer's states of what is left, and the tokens kept after each prune point (for statistics)."""

    state: TokenState
    kept_tokens: list[torch.Tensor]  # [B] per prune point: tokens left (special ones included)
    input_tokens: torch.Tensor  # [B]: real tokens of the input

    def input_keep(self, attention_mask: torch.Tensor, special: torch.Tensor,
                   drop_special: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(keep, keep, decided) over the input positions, for keep statistics: which input tokens are still there
        after the last prune point (merged-away ones count as dropped)."""
        keep = torch.zeros(attention_mask.shape, dtype=torch.float32, device=attention_mask.device)
        keep.scatter_(1, self.state.index, self.state.real.float())
        keep = keep * attention_mask.float()
        real = attention_mask.bool()
        decided = real if drop_special else real & ~special.bool()
        return keep, keep, decided

    def pooled(self, pooler_type: str) -> torch.Tensor:
        """SimCSE's ``cls`` / ``cls_before_pooler`` (the first token, always kept) or ``avg`` (the size-weighted
        mean of what is left: the mean over the kept input tokens, or over all of them after merging)."""
        if pooler_type in ("cls", "cls_before_pooler"):
            return self.state.hidden[:, 0]
        weights = (self.state.sizes * self.state.real).to(self.state.hidden.dtype)
        return (self.state.hidden * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp(min=1e-9)


def attention_bias(real: torch.Tensor, sizes: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """The additive key mask [B, 1, 1, T] the attention functions take: 0 for a present key (log size under
    proportional attention), a large negative number for an absent one."""
    bias = torch.zeros(real.shape, dtype=dtype, device=real.device)
    if sizes is not None:
        bias = torch.log(sizes.clamp(min=1).to(dtype))
    bias = bias.masked_fill(~real, torch.finfo(dtype).min)
    return bias[:, None, None, :]


def attention_significance(layer: nn.Module, hidden_in: torch.Tensor, bias: torch.Tensor,
                           real: torch.Tensor) -> torch.Tensor:
    """PoWER-BERT's significance of every key at ``layer``: its attention probability summed over heads and real
    queries, recomputed from the layer's own query and key projections on its input ``hidden_in``."""
    attention = layer.attention.self
    shape = (*hidden_in.shape[:-1], attention.num_attention_heads, attention.attention_head_size)
    query = attention.query(hidden_in).view(shape).transpose(1, 2)
    key = attention.key(hidden_in).view(shape).transpose(1, 2)
    scores = (query @ key.transpose(-1, -2)).float() * attention.attention_head_size ** -0.5 + bias.float()
    probs = scores.softmax(dim=-1) * real[:, None, :, None].float()  # only real queries vote
    return probs.sum(dim=(1, 2))


def _scores(schedule: PruneSchedule, point: int, state: TokenState, hidden_in: torch.Tensor, layer: nn.Module,
            bias: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, scorer: LayerScorer | None,
            idf: torch.Tensor | None) -> torch.Tensor:
    name = schedule.scorer
    if name == "first":
        return -state.index.float()
    if schedule.uses_idf:
        if idf is None:
            raise ValueError(f"--prune_scorer {name} with an IDF {'prior' if name == 'learned' else 'score'} needs an "
                             "IDF table (a checkpoint's own, or evaluation.py --idf_file).")
        table = idf_scores(idf, input_ids.gather(1, state.index)).float()
        if name == "idf":
            return table
    if name == "random":
        return sentence_hash_uniform(input_ids, attention_mask).gather(1, state.index)
    prior = torch.zeros(state.real.shape, device=state.hidden.device)
    if name == "attention" or schedule.prior == "attention":
        prior = torch.log(attention_significance(layer, hidden_in, bias, state.real) + _EPS)
    elif schedule.prior == "idf":
        prior = table
    if name == "attention":
        return prior
    if scorer is None:
        raise ValueError("--prune_scorer learned needs the model's trained scorer heads (a checkpoint trained with "
                         "it).")
    return prior + scorer(point, state.hidden)


def _drop(state: TokenState, scores: torch.Tensor, decided: torch.Tensor, k: torch.Tensor, special: torch.Tensor,
          prune: bool, soft: torch.Tensor | None) -> TokenState:
    """Keep the ``k[b]`` best decided tokens of each row (and the special ones); remove or mask the others."""
    keep = (topk_mask(scores, decided, k) | (special & state.real))
    hidden = state.hidden
    if soft is not None:  # straight-through: 1 in the forward pass, the relaxation's gradient
        weight = torch.where(decided, keep.to(soft.dtype) + soft - soft.detach(), torch.ones_like(soft))
        hidden = hidden * weight[..., None].to(hidden.dtype)
    state = TokenState(hidden, state.real, state.index, state.sizes)
    if not prune:
        return TokenState(state.hidden, keep, state.index, state.sizes * keep)
    counts = keep.sum(dim=1)
    length = max(int(counts.max()), 1)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :length]  # kept tokens first, in order
    real = torch.arange(length, device=keep.device)[None, :] < counts[:, None]
    return state.gather(order, real)


def _merge_round(state: TokenState, decided: torch.Tensor, n_merge: torch.Tensor) -> TokenState:
    """One round of bipartite soft matching: each decided token of the even half (by position among the decided)
    is matched to its most similar decided token of the odd half; the ``n_merge[b]`` best pairs are merged (sizes
    added, states averaged by size) and the merged-away tokens removed."""
    rank = decided.long().cumsum(dim=1) - 1
    source = decided & (rank % 2 == 0)
    target = decided & (rank % 2 == 1)
    normed = nn.functional.normalize(state.hidden.float(), dim=-1)
    similarity = normed @ normed.transpose(1, 2)
    similarity = similarity.masked_fill(~target[:, None, :], -math.inf)
    best, match = similarity.max(dim=-1)  # [B, T]: each token's best target
    best = best.masked_fill(~source | ~target.any(dim=1, keepdim=True), -math.inf)
    n_merge = torch.minimum(n_merge, source.sum(1)) * target.any(dim=1)
    merged = topk_mask(best, source & torch.isfinite(best), n_merge)  # the sources merged away
    sizes = state.sizes.float()
    weight = (sizes * merged)[..., None]
    total = (state.hidden.float() * sizes[..., None]).scatter_add(
        1, match[..., None].expand_as(state.hidden), (state.hidden.float() * weight).to(torch.float32))
    new_sizes = sizes.scatter_add(1, match, sizes * merged)
    hidden = torch.where(merged[..., None], state.hidden.float(), total / new_sizes.clamp(min=1)[..., None])
    stay = state.real & ~merged
    counts = stay.sum(dim=1)
    length = max(int(counts.max()), 1)
    order = torch.argsort((~stay).to(torch.int8), dim=1, stable=True)[:, :length]
    real = torch.arange(length, device=stay.device)[None, :] < counts[:, None]
    merged_state = TokenState(hidden.to(state.hidden.dtype), state.real, state.index, new_sizes * stay)
    return merged_state.gather(order, real)


def encode_pruned(
    encoder: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special: torch.Tensor,
    schedule: PruneSchedule,
    token_type_ids: torch.Tensor | None = None,
    scorer: LayerScorer | None = None,
    idf: torch.Tensor | None = None,
    prune: bool = True,
    tau: float | None = None,
    drop_special: bool = False,
) -> PrunedEncoding:
    """Run a BERT/RoBERTa ``encoder`` layer by layer, pruning (or merging) after the schedule's layers.

    ``special`` [B, L] marks the always-kept tokens. With a ``tau`` (training a ``learned`` scorer) the kept set is a
    Gumbel-top-k sample of the scores and the relaxation's gradient reaches the scorer; without one the best scores
    are kept. Layers run exactly as in the encoder's own forward (its attention implementation, dropout in training).
    """
    embeddings = encoder.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
    batch, length = input_ids.shape
    real = attention_mask.bool()
    index = torch.arange(length, device=input_ids.device).expand(batch, -1)
    state = TokenState(embeddings, real, index, real.float())
    special = special.bool() & real
    decided_in = real if drop_special else real & ~special
    points = {layer: i for i, layer in enumerate(schedule.layers)}
    kept: list[torch.Tensor] = []
    merging = schedule.scorer == "merge"
    dtype = embeddings.dtype
    for depth, layer in enumerate(encoder.encoder.layer, start=1):
        bias = attention_bias(state.real, state.sizes if merging else None, dtype)
        hidden_in = state.hidden
        state = TokenState(layer(hidden_in, bias), state.real, state.index, state.sizes)
        if depth not in points:
            continue
        point = points[depth]
        is_special = special.gather(1, state.index) & state.real
        decided = state.real & (~is_special if not drop_special else torch.ones_like(is_special))
        k = torch.minimum(budget_size(decided_in, schedule.rates[point]), decided.sum(1))
        if merging:
            for _ in range(8):  # each round merges at most half of the decided tokens
                decided = state.real & ~(special.gather(1, state.index) & state.real)
                excess = decided.sum(1) - k
                if not bool((excess > 0).any()):
                    break
                state = _merge_round(state, decided, excess.clamp(min=0))
            kept.append(state.real.sum(1))
            continue
        scores = _scores(schedule, point, state, hidden_in, layer, bias, input_ids, attention_mask, scorer, idf)
        soft = None
        if tau is not None and schedule.learned:
            gumbel = -torch.log(-torch.log(torch.rand_like(scores).clamp(_EPS, 1 - _EPS)))
            scores = scores + gumbel
            soft = relaxed_topk(scores, decided, k, tau, steps=int(k.max()) if k.numel() else 0)
        state = _drop(state, scores, decided, k, is_special, prune, soft)
        kept.append(state.real.sum(1))
    return PrunedEncoding(state, kept, real.sum(1))


def pruned_flops_ratio(n_tokens: torch.Tensor, kept: Sequence[torch.Tensor], schedule: PruneSchedule,
                       num_layers: int, hidden_size: int, intermediate_size: int) -> float:
    """Encoder FLOPs with pruning over FLOPs without, for sentences of ``n_tokens`` real tokens that have ``kept[i]``
    tokens left after prune point i (:attr:`PrunedEncoding.kept_tokens`): per layer ``n (8 h^2 + 4 h i) + 4 n^2 h``
    (projections, feed-forward, attention scores and mix; padding not counted, the scorer ignored)."""
    def layer_cost(n: torch.Tensor) -> torch.Tensor:
        n = n.double()
        return n * (8 * hidden_size**2 + 4 * hidden_size * intermediate_size) + 4 * n**2 * hidden_size

    full = layer_cost(n_tokens) * num_layers
    pruned = torch.zeros_like(full)
    current = n_tokens
    boundaries = {layer: i for i, layer in enumerate(schedule.layers)}
    for depth in range(1, num_layers + 1):
        pruned = pruned + layer_cost(current)
        if depth in boundaries:
            current = kept[boundaries[depth]]
    return float(pruned.sum() / full.sum())
