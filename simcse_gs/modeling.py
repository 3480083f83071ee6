"""SimCSEGSModel: backbone encoder + optional token-keep proxy + pooler + MLP head, in one checkpoint.

The forward pass reads top to bottom like the method:

1. the proxy scores each unique sentence once (logits keep/drop per token);
2. each view draws its own sample of the keep weights p (training; Gumbel-Softmax by default, see
   ``gs_estimator`` and :mod:`simcse_gs.estimators`), or takes the hard keep rule (inference); padding is never
   kept, special tokens always are (unless ``gs_drop_special_tokens``);
3. the backbone runs with ``token_keep=p``, which the registered attention function applies in every layer
   and head (see :mod:`simcse_gs.attention`);
4. the pooler (keep-weighted ``avg`` under GS) and the head (``head_type``: SimCSE's MLP for ``cls`` by default,
   or the original GS repo's dropout-MLP on any pooler) give the sentence vectors;
5. the contrastive loss (+ optional MLM and keep-rate terms, and the REINFORCE surrogate).

``use_gs=False`` and ``token_drop_rate=0`` give plain SimCSE from the same code, with the stock attention.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from .attention import check_supported, enable_token_keep
from .encoding import check_extra_encode_kwargs, encode_in_length_order, finish_embeddings, sentence_list
from .estimators import (
    check_estimator,
    estimator_keep_probability,
    keep_log_odds,
    keep_log_prob,
    reinforce_surrogate,
    resolve_estimator,
    sample_estimator_keep,
    update_baseline,
)
from .gumbel import check_tau_unit
from .keep import KeepStatsAccumulator, apply_forced, decided_mask, inference_keep, keep_statistic_tensors
from .loss import ContrastiveLoss, contrastive_logits, gather_with_grad, sum_across_processes
from .mlm import build_mlm_head
from .model_folder import looks_local, max_input_length
from .pooling import MLPHead, check_pooler_type, pool, resolve_head_type
from .precision import autocast as precision_autocast
from .precision import check_precision
from .proxy import TokenKeepProxy, check_same_vocabulary, load_proxy_tokenizer, without_pooler
from .pruning import original_position_ids, prune_batch
from .selection import budget_keep, sentence_hash_uniform


class SimCSEGSConfig(PretrainedConfig):
    """Everything needed to rebuild the model and its training behaviour from a checkpoint folder."""

    model_type = "simcse_gs"

    def __init__(
        self,
        backbone_config: dict | None = None,
        proxy_config: dict | None = None,
        special_token_ids: list[int] | None = None,
        pooler_type: str = "cls",
        head_type: str = "auto",
        head_dropout: float | None = None,
        mlp_only_train: bool = False,
        temp: float = 0.05,
        hard_negative_weight: float = 0.0,
        do_mlm: bool = False,
        mlm_weight: float = 0.1,
        use_gs: bool = False,
        init_tau: float = 1.0,
        min_tau: float = 0.5,
        tau_decay_rate: float = 6.4e-4,
        tau_schedule_unit: str = "optimizer_step",
        proxy_head: str = "linear",
        gs_hard: bool = False,
        gs_estimator: str = "soft",
        gs_reinforce_reward: str = "sentence",
        gs_reinforce_baseline_momentum: float = 0.9,
        gs_shared_sample: bool = False,
        gs_drop_special_tokens: bool = False,
        gs_attn_impl: str = "sdpa",
        gs_attn_renorm: bool = False,
        gs_target_keep_rate: float = 1.0,
        gs_keep_rate_weight: float = 0.0,
        keep_budget: float | None = None,
        token_drop_rate: float = 0.0,
        token_drop_heuristic: str = "random",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.backbone_config = backbone_config
        self.proxy_config = proxy_config
        self.special_token_ids = list(special_token_ids or [])
        self.pooler_type = pooler_type
        self.head_type = head_type
        self.head_dropout = head_dropout
        self.mlp_only_train = mlp_only_train
        self.temp = temp
        self.hard_negative_weight = hard_negative_weight
        self.do_mlm = do_mlm
        self.mlm_weight = mlm_weight
        self.use_gs = use_gs
        self.init_tau = init_tau
        self.min_tau = min_tau
        self.tau_decay_rate = tau_decay_rate
        self.tau_schedule_unit = tau_schedule_unit
        self.proxy_head = proxy_head
        # gs_hard is the deprecated alias of gs_estimator="st"; kept in the config (derived) for older readers.
        self.gs_estimator = resolve_estimator(gs_estimator, gs_hard)
        self.gs_hard = self.gs_estimator == "st"
        self.gs_reinforce_reward = gs_reinforce_reward
        self.gs_reinforce_baseline_momentum = gs_reinforce_baseline_momentum
        check_estimator(self.gs_estimator, gs_reinforce_reward, gs_reinforce_baseline_momentum)
        self.gs_shared_sample = gs_shared_sample
        self.gs_drop_special_tokens = gs_drop_special_tokens
        self.gs_attn_impl = gs_attn_impl
        self.gs_attn_renorm = gs_attn_renorm
        self.gs_target_keep_rate = gs_target_keep_rate
        self.gs_keep_rate_weight = gs_keep_rate_weight
        self.keep_budget = keep_budget
        self.token_drop_rate = token_drop_rate
        self.token_drop_heuristic = token_drop_heuristic

    @property
    def resolved_head_type(self) -> str:
        """The head on the pooled vector: ``none``, ``mlp`` or ``dropout_mlp`` (``auto`` resolved by the pooler)."""
        return resolve_head_type(self.head_type, self.pooler_type)

    @property
    def uses_token_keep(self) -> bool:
        """Whether the backbone runs with the token-keep attention (GS, or the random/IDF-drop control)."""
        return self.use_gs or self.token_drop_rate > 0

    @property
    def inference_budget(self) -> float | None:
        """Keep rate of the inference rule: ``keep_budget``, else the ``topk`` estimator's own budget, else None
        (the per-token rule p >= 0.5 for GS, keep everything otherwise)."""
        if self.keep_budget is not None:
            return self.keep_budget
        return self.gs_target_keep_rate if self.use_gs and self.gs_estimator == "topk" else None


def _encoder_config(config_dict: dict) -> PretrainedConfig:
    config_dict = dict(config_dict)
    return AutoConfig.for_model(config_dict.pop("model_type"), **config_dict)


@dataclass
class SimCSEGSOutput(ModelOutput):
    """Loss, the first view's sentence vectors, and (GS) keep statistics of the batch as 0-d tensors."""

    loss: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    contrastive_loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    keep_rate_loss: torch.Tensor | None = None
    keep_prob: torch.Tensor | None = None
    keep_rate: torch.Tensor | None = None
    keep_entropy: torch.Tensor | None = None


class SimCSEGSModel(PreTrainedModel):
    config_class = SimCSEGSConfig
    base_model_prefix = "simcse_gs"
    main_input_name = "input_ids"

    def __init__(self, config: SimCSEGSConfig):
        super().__init__(config)
        if config.backbone_config is None:
            raise ValueError("SimCSEGSConfig.backbone_config is empty: build the model with from_backbone().")
        check_pooler_type(config.pooler_type)
        check_tau_unit(config.tau_schedule_unit)
        self.backbone = without_pooler(AutoModel.from_config(_encoder_config(config.backbone_config)))
        if config.uses_token_keep:
            check_supported(self.backbone.config.model_type)
            enable_token_keep(self.backbone, config.gs_attn_impl)
        self.proxy = None
        if config.use_gs:
            self.proxy = TokenKeepProxy.from_config(_encoder_config(config.proxy_config), config.proxy_head)
        self.mlp = self._build_head(config)
        self.mlm_head = build_mlm_head(self.backbone.config) if config.do_mlm else None
        self.loss_fn = ContrastiveLoss(config.temp, config.hard_negative_weight)
        if config.token_drop_heuristic == "idf":  # the IDF heuristic's table travels with the checkpoint
            self.register_buffer("idf", torch.ones(self.backbone.config.vocab_size), persistent=True)
        if config.use_gs and config.gs_estimator == "reinforce":
            # EMA of the contrastive loss (NaN = not set yet). Persistent, so checkpoints and resumes keep it.
            self.register_buffer("reinforce_baseline", torch.tensor(float("nan")), persistent=True)
        self.tokenizer = None
        self.post_init()

    def _build_head(self, config: SimCSEGSConfig) -> MLPHead | None:
        """The head on the pooled vector (kept under the name ``mlp`` for every head type: see :class:`MLPHead`)."""
        head = config.resolved_head_type
        if head == "none":
            return None
        dropout = 0.0
        if head == "dropout_mlp":
            dropout = self.backbone.config.hidden_dropout_prob if config.head_dropout is None else config.head_dropout
        return MLPHead(self.backbone.config.hidden_size, dropout)

    def _init_weights(self, module: nn.Module) -> None:
        # Only our own heads: the encoders come initialised (and are then overwritten by pretrained weights).
        if self.proxy is not None and module is self.proxy.head:
            self.proxy.reset_head()
        elif module is self and hasattr(self, "reinforce_baseline"):
            self.reinforce_baseline.fill_(float("nan"))
        elif self.mlp is not None and module is self.mlp.dense:
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_backbone(
        cls,
        model_name_or_path: str,
        proxy_model_name_or_path: str | None = None,
        proxy_num_layers: int | None = None,
        load_kwargs: dict | None = None,
        **settings,
    ) -> SimCSEGSModel:
        """A fresh model for training: pretrained backbone (and proxy) weights, new heads.

        The default proxy is the backbone checkpoint's first ``proxy_num_layers`` (default 2) layers; a separate
        ``proxy_model_name_or_path`` keeps all its layers unless ``proxy_num_layers`` says otherwise, and must
        share the backbone's tokenizer. ``settings`` are :class:`SimCSEGSConfig` fields.
        """
        load_kwargs = load_kwargs or {}
        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, **load_kwargs)
        backbone = without_pooler(AutoModel.from_pretrained(model_name_or_path, **load_kwargs))
        if settings.get("use_gs") or settings.get("token_drop_rate", 0) > 0:
            check_supported(backbone.config.model_type)
        proxy = None
        if settings.get("use_gs"):
            if proxy_model_name_or_path:
                check_same_vocabulary(tokenizer, load_proxy_tokenizer(proxy_model_name_or_path, **load_kwargs),
                                      proxy_model_name_or_path)
                proxy = TokenKeepProxy.from_pretrained(proxy_model_name_or_path, proxy_num_layers, **load_kwargs)
            else:
                proxy = TokenKeepProxy.from_pretrained(model_name_or_path, proxy_num_layers or 2, **load_kwargs)
        unchosen = {tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.mask_token_id}
        config = SimCSEGSConfig(
            backbone_config=backbone.config.to_dict(),
            proxy_config=proxy.encoder.config.to_dict() if proxy is not None else None,
            special_token_ids=sorted(set(tokenizer.all_special_ids) - unchosen),
            **settings,
        )
        model = cls(config)
        model.backbone.load_state_dict(backbone.state_dict())
        if proxy is not None:
            model.proxy.encoder.load_state_dict(proxy.encoder.state_dict())
        model.tokenizer = tokenizer
        return model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs) -> SimCSEGSModel:
        """Load a checkpoint written by :meth:`save_pretrained` (weights, config, and the tokenizer beside them).

        Weights are read from safetensors only. A local folder is checked first (config type, weight files,
        safetensors headers), so a missing or damaged file gives a :class:`~simcse_gs.checkpoint.CheckpointError`
        naming it and what to do instead of a loader traceback.
        """
        from safetensors import SafetensorError

        from .checkpoint import CheckpointError, check_model_folder

        path = os.fspath(pretrained_model_name_or_path)
        if looks_local(path):  # a local path is checked (and never sent to the hub); see simcse_gs.model_folder
            check_model_folder(path)
        kwargs.setdefault("use_safetensors", True)  # never fall back to a pickled pytorch_model.bin
        try:
            model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except SafetensorError as err:
            raise CheckpointError(f"{path}: damaged safetensors weights ({err}). Copy or download it again.") from err
        try:  # local folder or hub repo: the tokenizer is saved beside the weights
            # config= : AutoTokenizer would read config.json again, and where simcse_gs is not imported (loading
            # through auto_map) it would ask whether to trust the folder's code a second time.
            model.tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, config=model.config)
        except (OSError, ValueError):
            model.tokenizer = None  # encode() then says how to fix it
        return model

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """Write weights (safetensors), config, and the tokenizer, so the folder is self-contained."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.tokenizer is not None and kwargs.get("is_main_process", True):
            self.tokenizer.save_pretrained(save_directory)

    # ------------------------------------------------------------------ keep weights

    def special_tokens_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        # From the config, not a buffer: non-persistent buffers come back uninitialised from from_pretrained.
        # Compared with Python ints, not a tensor built from the list: that would be a host-to-device copy, which
        # waits for the GPU, in every training step.
        special = torch.zeros_like(input_ids, dtype=torch.bool)
        for token_id in self.config.special_token_ids:
            special |= input_ids == token_id
        return special

    def score_tokens(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, budget: float | None = None, **enc_kwargs
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the proxy once: (logits, keep probability with forced values, hard keep, decided-token mask).

        The hard keep is the inference rule: p >= 0.5 per token, or with a ``budget`` r the ``ceil(r * n)`` decided
        tokens of highest keep score in every sentence (:func:`~simcse_gs.selection.budget_keep`).
        """
        cfg = self.config
        special = self.special_tokens_mask(input_ids)
        decided = decided_mask(attention_mask, special, cfg.gs_drop_special_tokens)
        logits = self.proxy(input_ids, attention_mask, **enc_kwargs)
        prob = apply_forced(estimator_keep_probability(logits, cfg.gs_estimator), attention_mask, special,
                            cfg.gs_drop_special_tokens)
        if budget is None:
            hard = inference_keep(prob, attention_mask, decided)
        else:
            hard = apply_forced(budget_keep(keep_log_odds(logits), decided, budget), attention_mask, special,
                                cfg.gs_drop_special_tokens)
        return logits, prob, hard, decided

    def _control_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Keep scores of the controls without a proxy at inference: a token's IDF, or a pseudo-random number that
        depends only on the sentence and the position (:func:`~simcse_gs.selection.sentence_hash_uniform`), so a
        sentence loses the same tokens whatever it is batched with, in ``encode`` and in an export alike."""
        if self.config.token_drop_heuristic == "idf":
            return self.idf.to(input_ids.device)[input_ids]
        return sentence_hash_uniform(input_ids, attention_mask)

    def inference_keep_weights(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        budget: float | None = None,
        **enc_kwargs,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """(keep probability, hard keep, decided mask) of a batch at inference; all None when every token is kept.

        GS: the proxy with the inference rule (or the ``budget``). Without a proxy a ``budget`` keeps the best
        decided tokens by the control's scores (IDF, or pseudo-random); without one, everything.
        """
        if self.config.use_gs:
            _, prob, hard, decided = self.score_tokens(input_ids, attention_mask, budget, **enc_kwargs)
            return prob, hard, decided
        if budget is None:
            return None, None, None
        keep, decided = self._control_keep(input_ids, attention_mask, budget)
        return keep, keep, decided

    def _control_keep(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rate: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(hard keep with the forced tokens, decided mask) of a control without a proxy at keep rate ``rate``: the
        ``ceil(rate * n)`` best decided tokens by :meth:`_control_scores` (the IDF heuristic in training, any
        control under an inference budget)."""
        special = self.special_tokens_mask(input_ids)
        drop_special = self.config.gs_drop_special_tokens
        decided = decided_mask(attention_mask, special, drop_special)
        keep = budget_keep(self._control_scores(input_ids, attention_mask), decided, rate)
        return apply_forced(keep, attention_mask, special, drop_special), decided

    def _keep_weights(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_samples: int, tau: float | None, **enc_kwargs
    ) -> tuple[list[torch.Tensor | None], dict[str, torch.Tensor]]:
        """Keep weights for ``n_samples`` views of the same sentences, and the batch's keep statistics.

        The proxy runs once; each view draws its own sample (or one shared sample with ``gs_shared_sample``)
        under ``gs_estimator``. With ``reinforce``, ``extras["keep_log_prob"]`` [draws, N] holds each draw's
        ``sum_j log P(b_j)`` over the decided tokens of each sentence, for the surrogate term in :meth:`forward`.
        """
        cfg = self.config
        if not cfg.use_gs:
            if not self.training:
                keep = self.inference_keep_weights(input_ids, attention_mask, cfg.inference_budget)[1]
                return [keep] * n_samples, {}
            if cfg.token_drop_heuristic == "idf":  # the same frequency-ranked drop in every view
                return [self._control_keep(input_ids, attention_mask, 1 - cfg.token_drop_rate)[0]] * n_samples, {}
            special = self.special_tokens_mask(input_ids)
            keeps = []  # random-drop control: Bernoulli keep per decided token and view
            for _ in range(n_samples):
                rand = (torch.rand(input_ids.shape, device=input_ids.device) >= cfg.token_drop_rate).float()
                keeps.append(apply_forced(rand, attention_mask, special, cfg.gs_drop_special_tokens))
            return keeps, {}
        logits, prob, hard, decided = self.score_tokens(input_ids, attention_mask, cfg.inference_budget, **enc_kwargs)
        extras = keep_statistic_tensors(prob.detach(), hard, decided)  # on the device: no host sync per step
        if cfg.gs_keep_rate_weight > 0:  # the global batch's mean p under DDP (training), as on one process;
            # for hard_concrete p = P(gate != 0): the expected-L0 budget
            total, count = (prob * decided).sum(), decided.sum().float()
            if self.training:
                total, count = sum_across_processes(total), sum_across_processes(count)
            mean_p = total / count.clamp(min=1)
            extras["keep_rate_loss"] = cfg.gs_keep_rate_weight * (mean_p - cfg.gs_target_keep_rate) ** 2
        if not self.training:
            return [hard] * n_samples, extras
        special = self.special_tokens_mask(input_ids)
        draws = 1 if cfg.gs_shared_sample else n_samples
        raw = [sample_estimator_keep(logits, cfg.gs_estimator, tau, decided, cfg.gs_target_keep_rate)
               for _ in range(draws)]
        samples = [apply_forced(k, attention_mask, special, cfg.gs_drop_special_tokens) for k in raw]
        if cfg.gs_estimator == "reinforce":
            extras["keep_log_prob"] = torch.stack([(keep_log_prob(logits, k) * decided).sum(-1) for k in raw])
        return samples * n_samples if draws == 1 else samples, extras

    def _reinforce_term(self, keep_log_prob: torch.Tensor, z: torch.Tensor, contrastive: torch.Tensor) -> torch.Tensor:
        """The zero-valued REINFORCE surrogate (gradient only), then the baseline update.

        ``gs_reinforce_reward="sentence"``: ``mean_i (loss_i - baseline) * sum_{views, decided j of i} log P(b)``
        with ``loss_i`` example i's own cross-entropy row of the contrastive loss (the row-wise terms whose mean
        is the loss). ``"batch"``: ``(loss - baseline) * sum_{all views, sentences, decided j} log P(b)``, the
        exact score-function estimator of the batch loss. The baseline is the EMA of the batch contrastive loss
        before this step (the first step uses its own loss).
        """
        cfg = self.config
        n_views, batch = z.shape[:2]
        baseline = self.reinforce_baseline.detach()
        baseline = torch.where(torch.isnan(baseline), contrastive.detach(), baseline)  # no branch: no host sync
        distributed = dist.is_available() and dist.is_initialized()
        if cfg.gs_reinforce_reward == "sentence":
            with torch.no_grad():  # per-example rows of the (global) contrastive loss, this process's examples
                zs = [gather_with_grad(z[v].detach()) for v in range(n_views)]
                logits = contrastive_logits(zs[0], zs[1], zs[2] if n_views == 3 else None, self.loss_fn.temp,
                                            self.loss_fn.hard_negative_weight)
                rows = F.cross_entropy(logits, torch.arange(len(zs[0]), device=logits.device), reduction="none")
                offset = dist.get_rank() * batch if distributed else 0
                reward = rows[offset : offset + batch]
            score = keep_log_prob.reshape(-1, batch).sum(0)  # [batch]: every view (draw) of example i
        else:
            # Every process computes the same global loss and DDP averages gradients: scale by the world size
            # so the summed score over all processes' sentences is what the average gives back.
            world = dist.get_world_size() if distributed else 1
            reward, score = contrastive.detach(), keep_log_prob.sum() * world
        term = reinforce_surrogate(reward, score, baseline)
        update_baseline(self.reinforce_baseline, contrastive.detach(), cfg.gs_reinforce_baseline_momentum)
        return term

    # ------------------------------------------------------------------ forward

    def embed(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        token_keep: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sentence vectors of a flat batch [N, L] under the given keep weights (None = keep all).

        ``position_ids`` are only given for a pruned batch (its tokens keep their original positions).
        """
        needs_all_layers = self.config.pooler_type in ("avg_top2", "avg_first_last")
        kwargs = {}
        if token_keep is not None:
            kwargs["token_keep"] = token_keep
            if self.config.gs_attn_renorm:
                kwargs["token_keep_renorm"] = True
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=needs_all_layers,
            **kwargs,
        )
        hidden = out.hidden_states if needs_all_layers else (out.last_hidden_state,)
        weights = token_keep if self.config.uses_token_keep else None  # the random-drop control weighs alike
        z = pool(self.config.pooler_type, hidden, attention_mask, weights)
        if self.mlp is not None and (self.training or not self.config.mlp_only_train):
            z = self.mlp(z)
        return z

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        mlm_input_ids: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        tau: float | None = None,
    ) -> SimCSEGSOutput:
        """``input_ids`` [B, V, L]: V=1 unsupervised (each sentence twice), 2 pairs, 3 with a hard negative."""
        if input_ids.dim() != 3:
            raise ValueError(f"input_ids must be [batch, sentences_per_example, length], got {tuple(input_ids.shape)}")
        batch, n_sent, length = input_ids.shape

        def views(t: torch.Tensor | None) -> torch.Tensor | None:  # [B, V, L] -> [V * B, L], view-major
            return None if t is None else t.transpose(0, 1).reshape(n_sent * batch, length)

        ids, mask, types = views(input_ids), views(attention_mask), views(token_type_ids)
        n_views = 2 if n_sent == 1 else n_sent
        if self.config.uses_token_keep:
            enc_kwargs = {"token_type_ids": types} if types is not None else {}
            if n_sent == 1:
                keeps, extras = self._keep_weights(ids, mask, 2, tau, **enc_kwargs)
                keep = torch.cat(keeps) if keeps[0] is not None else None
            else:
                keeps, extras = self._keep_weights(ids, mask, 1, tau, **enc_kwargs)
                keep = keeps[0]
        else:
            keep, extras = None, {}
        if n_sent == 1:
            ids, mask = ids.repeat(2, 1), mask.repeat(2, 1)
            types = types.repeat(2, 1) if types is not None else None

        z = self.embed(ids, mask, types, keep).view(n_views, batch, -1)
        contrastive = self.loss_fn(z[0], z[1], z[2] if n_views == 3 else None)
        loss = contrastive
        if "keep_log_prob" in extras:  # REINFORCE: adds gradient to the proxy, not value to the loss
            loss = loss + self._reinforce_term(extras.pop("keep_log_prob"), z, contrastive)
        mlm_loss = None
        if mlm_input_ids is not None and self.mlm_head is not None:
            flat_ids, flat_labels = views(mlm_input_ids), views(mlm_labels)
            hidden = self.backbone(input_ids=flat_ids, attention_mask=views(attention_mask)).last_hidden_state
            logits = self.mlm_head(hidden)
            mlm_loss = nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), flat_labels.view(-1))
            loss = loss + self.config.mlm_weight * mlm_loss
        if "keep_rate_loss" in extras:
            loss = loss + extras["keep_rate_loss"]
        return SimCSEGSOutput(
            loss=loss,
            embeddings=z[0],
            contrastive_loss=contrastive.detach(),
            mlm_loss=None if mlm_loss is None else mlm_loss.detach(),
            keep_rate_loss=extras.get("keep_rate_loss"),
            keep_prob=extras.get("keep_prob"),
            keep_rate=extras.get("keep_rate"),
            keep_entropy=extras.get("keep_entropy"),
        )

    # ------------------------------------------------------------------ inference

    def check_inference_options(self, keep_budget: float | None = None, prune: bool = False) -> float | None:
        """Refuse an inference keep budget or pruning this model cannot apply exactly; returns the budget in force."""
        cfg = self.config
        if keep_budget is not None and not 0 < keep_budget <= 1:
            raise ValueError(f"keep_budget must be in (0, 1], got {keep_budget}.")
        budget = cfg.inference_budget if keep_budget is None else keep_budget
        if prune and cfg.uses_token_keep and not cfg.gs_attn_renorm:
            raise ValueError(
                "prune=True removes the dropped tokens, which equals masking them only under the renormalised "
                "attention (train with --gs_attn_renorm): under the original scaling a dropped key still takes "
                "softmax mass. Encode without prune."
            )
        if budget is not None and not prune and not cfg.uses_token_keep:
            raise ValueError("This model runs the stock attention, which cannot mask tokens: a keep budget needs "
                             "prune=True (dropped tokens removed from the input).")
        return budget

    def encode_batch(
        self,
        batch: dict[str, torch.Tensor],
        keep_stats: KeepStatsAccumulator | None = None,
        keep_budget: float | None = None,
        prune: bool = False,
    ) -> torch.Tensor:
        """Sentence vectors of one tokenised batch as :meth:`encode` gives them (call in eval mode): the inference
        keep rule under GS (or ``keep_budget``), dropped tokens masked or, with ``prune``, removed; the head only
        where SimCSE evaluates with it. The sentence-transformers module of an export (:mod:`simcse_gs.st_module`)
        calls this too, so both encode alike. Check the options with :meth:`check_inference_options` first."""
        budget = self.config.inference_budget if keep_budget is None else keep_budget
        ids, mask, types = batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")
        type_kwargs = {"token_type_ids": types} if types is not None else {}
        prob, keep, decided = self.inference_keep_weights(ids, mask, budget, **type_kwargs)
        if keep is None:
            return self.embed(ids, mask, types)
        if keep_stats is not None:
            keep_stats.update(prob, keep, decided)
        if not prune:
            return self.embed(ids, mask, types, keep)
        pad = self.tokenizer.pad_token_id if self.tokenizer is not None and self.tokenizer.pad_token_id else 0
        kept = prune_batch(keep, ids, mask, original_position_ids(self.backbone, ids), types, pad)
        return self.embed(kept["input_ids"], kept["attention_mask"], kept.get("token_type_ids"),
                          position_ids=kept["position_ids"])

    @torch.inference_mode()
    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int = 64,
        max_length: int | None = None,
        show_progress_bar: bool = False,
        keep_stats: KeepStatsAccumulator | None = None,
        convert_to_numpy: bool = False,
        convert_to_tensor: bool = False,
        normalize_embeddings: bool = False,
        prompt: str | None = None,
        keep_budget: float | None = None,
        prune: bool = False,
        precision: str = "fp32",
        **kwargs: Any,
    ) -> torch.Tensor | np.ndarray:
        """Sentence embeddings [N, H] (float32, CPU tensor) in input order, with the inference keep rule under GS.

        Sentences are tokenised once and encoded in length-sorted batches (less padding); the head on the pooled
        vector is applied unless ``mlp_only_train`` (SimCSE's unsupervised evaluation drops it). ``keep_stats``, if
        given, accumulates the keep statistics of the encoded tokens.

        sentence-transformers' calling convention also works (what MTEB and similar tools call): a single string
        gives one vector [H]; ``convert_to_numpy=True`` a numpy array (``convert_to_tensor=True`` keeps the
        tensor); ``normalize_embeddings=True`` L2-normalises; ``prompt`` is prepended to every sentence; other
        keyword arguments (``prompt_name``, ``task_name``, ...) are accepted and ignored.

        ``keep_budget`` r keeps the ``ceil(r * n)`` best decided tokens of every sentence (GS: by the proxy; without
        a proxy: by IDF or at random, per ``token_drop_heuristic``), overriding the model's own rule. ``prune``
        removes the dropped tokens from the input instead of masking them: the same embeddings under the
        renormalised attention (``gs_attn_renorm``), and fewer tokens to encode (:mod:`simcse_gs.pruning`).
        ``precision``: ``fp32``, or ``bf16`` / ``fp16`` autocast (see :mod:`simcse_gs.precision`).
        """
        check_extra_encode_kwargs(kwargs)
        sentences, single = sentence_list(sentences, prompt)
        if self.tokenizer is None:
            raise ValueError("This model has no tokenizer attached: load it with from_pretrained(checkpoint_dir).")
        budget = self.check_inference_options(keep_budget, prune)
        check_precision(precision)
        limit = max_input_length(self.tokenizer, self.backbone.config)
        device = next(self.parameters()).device

        @precision_autocast(precision, device)
        def embed_batch(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.encode_batch(batch, keep_stats, budget, prune)

        was_training = self.training
        self.eval()
        out = encode_in_length_order(
            self.tokenizer, sentences, embed_batch,
            self.backbone.config.hidden_size, device,
            batch_size, min(max_length, limit) if max_length else limit, show_progress_bar,
        )
        self.train(was_training)
        return finish_embeddings(out, single, convert_to_numpy, convert_to_tensor, normalize_embeddings)


# Let AutoConfig / AutoModel (and AutoTokenizer's config lookup) recognise our checkpoints. The copy of this file
# that a checkpoint carries (below) is imported as ``transformers_modules.*`` and leaves the registry alone, so
# loading a checkpoint's code never replaces the installed package's classes.
if not __name__.startswith("transformers_modules."):
    AutoConfig.register(SimCSEGSConfig.model_type, SimCSEGSConfig, exist_ok=True)
    AutoModel.register(SimCSEGSConfig, SimCSEGSModel, exist_ok=True)


# Checkpoints carry this file and the modules it imports (``auto_map`` in config.json), so that
# ``AutoModel.from_pretrained(folder, trust_remote_code=True)`` loads them where simcse_gs is not installed.
SimCSEGSConfig.register_for_auto_class()
SimCSEGSModel.register_for_auto_class("AutoModel")
