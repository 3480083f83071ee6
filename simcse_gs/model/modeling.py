"""SimCSEGSModel: backbone encoder + keep policy (with its proxy) + pooler + head, in one checkpoint.

The forward pass reads top to bottom like the method:

1. **score and keep**: the keep policy (:mod:`.registry`; the Gumbel-Softmax proxy by default) scores each unique
   sentence once and gives each view its keep weights p (training: a sample; inference: the hard keep rule);
   padding is never kept, special tokens always are (unless ``gs_drop_special_tokens``);
2. **attend**: the backbone runs with ``token_keep=p``, which the registered attention function applies in every
   layer and head (:mod:`.attention`);
3. **pool**: the pooler (keep-weighted ``avg`` under token keep) and the head (``head_type``: SimCSE's MLP for
   ``cls`` by default, or the original GS repo's dropout-MLP on any pooler) give the sentence vectors;
4. **loss**: the contrastive loss, plus what the policy adds (the keep-rate penalty, REINFORCE's surrogate) and the
   optional MLM term.

``use_gs=False`` and ``token_drop_rate=0`` give plain SimCSE from the same code, with the stock attention.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel
from transformers.utils import ModelOutput

from .attention import check_supported, enable_token_keep
from .configuration import SimCSEGSConfig, check_keep_budget
from .encoding import (
    check_extra_encode_kwargs,
    encode_in_length_order,
    finish_embeddings,
    max_input_length,
    sentence_list,
)
from .folder_checks import ModelFolderError, check_model_folder, looks_local
from .keep import KeepStatsAccumulator
from .keep_policy import InferenceKeep, KeepDecision, merge_decisions
from .layer_pruning import LayerScorer, PrunedEncoding, PruneSchedule, encode_pruned
from .loss import ContrastiveLoss
from .mlm_head import build_mlm_head
from .pooling import MLPHead, pool
from .precision import autocast as precision_autocast
from .precision import check_precision
from .proxy import TokenKeepProxy, check_same_vocabulary, load_proxy_tokenizer, without_pooler
from .pruning import original_position_ids, prune_batch
from .registry import policy_for

__all__ = ["SimCSEGSConfig", "SimCSEGSModel", "SimCSEGSOutput", "ViewEmbeddings"]

# The code a checkpoint carries: every module of this folder (simcse_gs/model), the model's only dependencies.
CODE_DIR = Path(__file__).resolve().parent


@dataclass
class ViewEmbeddings:
    """What :meth:`SimCSEGSModel.embed_views` gives for a batch (or a chunk of one): ``z`` [V, B, H] the views'
    sentence vectors, the keep ``decision``, and the MLM loss as a sum over its ``mlm_count`` predicted tokens."""

    z: torch.Tensor
    decision: KeepDecision
    mlm_loss_sum: torch.Tensor | None = None
    mlm_count: torch.Tensor | None = None
    teacher: torch.Tensor | None = None  # [V, B, H] the full-token embeddings (self-distillation), no gradient
    student: torch.Tensor | None = None  # [V, B, H] ``z`` as inference gives it (no training-only MLP): distilled


def join_views(parts: Sequence[ViewEmbeddings], field: str) -> torch.Tensor | None:
    """One [V, B, H] field of a batch's parts (its chunks, in order) joined along the batch; None where it has none."""
    values = [getattr(part, field) for part in parts]
    if values[0] is None:
        return None
    return torch.cat(values, dim=1) if len(values) > 1 else values[0]


@dataclass
class SimCSEGSOutput(ModelOutput):
    """Loss, the first view's sentence vectors, and (GS) keep statistics of the batch as 0-d tensors."""

    loss: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    contrastive_loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    keep_rate_loss: torch.Tensor | None = None
    distill_loss: torch.Tensor | None = None
    keep_prob: torch.Tensor | None = None
    keep_rate: torch.Tensor | None = None
    keep_entropy: torch.Tensor | None = None


def self_distillation_loss(z: torch.Tensor, teacher: torch.Tensor, kind: str, temp: float) -> torch.Tensor:
    """Pull the token-dropping embeddings ``z`` [V, B, H] towards the full-token ``teacher`` [V, B, H].

    ``cosine``: mean ``1 - cos(z, teacher)`` over every sentence, the embedding-matching objective of distillation
    for sentence encoders (Reimers & Gurevych, 2020, "Making Monolingual Sentence Embeddings Multilingual using
    Knowledge Distillation", there as MSE). ``similarity``: the KL divergence from the teacher's to the student's
    in-batch similarity distribution (row i of ``cos(view 1, view 2) / temp``), matching relations rather than
    points (Park et al., 2019, "Relational Knowledge Distillation"; Hinton et al., 2015, for the soft targets).
    """
    z, teacher = z.float(), teacher.float().detach()
    if kind == "cosine":
        return (1 - nn.functional.cosine_similarity(z, teacher, dim=-1)).mean()
    def logits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(a, dim=-1) @ nn.functional.normalize(b, dim=-1).T / temp
    student_log_p = logits(z[0], z[1]).log_softmax(dim=-1)
    teacher_log_p = logits(teacher[0], teacher[1]).log_softmax(dim=-1)
    return nn.functional.kl_div(student_log_p, teacher_log_p, log_target=True, reduction="batchmean")


def pruned_statistics(encoding: PrunedEncoding, attention_mask: torch.Tensor, special: torch.Tensor,
                      drop_special: bool) -> dict[str, torch.Tensor]:
    """keep_rate (decided tokens left after the last prune point / decided tokens of the input) as a detached
    0-d tensor, and the decided-token count it is over."""
    real = attention_mask.bool()
    decided = real if drop_special else real & ~special.bool()
    n_special = (real & special.bool()).sum(1) if not drop_special else torch.zeros_like(decided.sum(1))
    left = (encoding.kept_tokens[-1] - n_special).clamp(min=0).sum().float()
    n = decided.sum().float()
    return {"keep_rate": (left / n.clamp(min=1)).detach(), "decided_tokens": n.detach()}


class SimCSEGSModel(PreTrainedModel):
    config_class = SimCSEGSConfig
    base_model_prefix = "simcse_gs"
    main_input_name = "input_ids"

    def __init__(self, config: SimCSEGSConfig):
        super().__init__(config)
        if config.backbone_config is None:
            raise ValueError("SimCSEGSConfig.backbone_config is empty: build the model with from_backbone().")
        self.keep_policy = policy_for(config)
        self.backbone = without_pooler(AutoModel.from_config(config.encoder_config("backbone")))
        if self.keep_policy.drops_in_training:
            check_supported(self.backbone.config.model_type)
            enable_token_keep(self.backbone, config.gs_attn_impl)
        self.proxy = None
        if self.keep_policy.uses_proxy:
            self.proxy = TokenKeepProxy.from_config(config.encoder_config("proxy"), config.proxy_head)
        self.mlp = self._build_head(config)
        self.mlm_head = build_mlm_head(self.backbone.config) if config.do_mlm else None
        self.loss_fn = ContrastiveLoss(config.temp, config.hard_negative_weight)
        self.keep_policy.register_state(self)  # its buffers (IDF table, REINFORCE baseline) travel with the weights
        self.prune_schedule = config.prune_schedule  # in-encoder pruning (None: off)
        self.layer_scorer = None
        if self.prune_schedule is not None:
            self.prune_schedule.check(self.backbone.config.num_hidden_layers, config.pooler_type)
            if self.prune_schedule.learned:
                self.layer_scorer = LayerScorer(self.backbone.config.hidden_size, len(self.prune_schedule.layers))
            if self.prune_schedule.uses_idf and not hasattr(self, "idf"):  # train.py fills it from the training file
                self.register_buffer("idf", torch.ones(self.backbone.config.vocab_size), persistent=True)
        self.tokenizer = None
        self.post_init()

    @property
    def uses_tau(self) -> bool:
        """Whether a training forward needs the annealed temperature ``tau``: the Gumbel policies, and the learned
        in-encoder prune scorer (its relaxed top-k)."""
        return self.keep_policy.uses_tau or (self.prune_schedule is not None and self.prune_schedule.learned)

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
        elif self.layer_scorer is not None and module is self.layer_scorer:
            self.layer_scorer.reset_parameters()
        elif module is self:
            self.keep_policy.init_state(self)
        elif self.mlp is not None and module is self.mlp.dense:
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ construction, saving, loading

    @classmethod
    def from_backbone(
        cls,
        model_name_or_path: str,
        proxy_model_name_or_path: str | None = None,
        proxy_num_layers: int | None = None,
        load_kwargs: dict | None = None,
        **settings: Any,
    ) -> SimCSEGSModel:
        """A fresh model for training: pretrained backbone (and proxy) weights, new heads.

        The default proxy is the backbone checkpoint's first ``proxy_num_layers`` (default 2) layers; a separate
        ``proxy_model_name_or_path`` keeps all its layers unless ``proxy_num_layers`` says otherwise, and must
        share the backbone's tokenizer. ``settings`` are :data:`~.configuration.MODEL_SETTINGS` entries.
        """
        load_kwargs = load_kwargs or {}
        policy = policy_for(SimCSEGSConfig(**settings))  # checks the settings before anything is loaded
        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, **load_kwargs)
        backbone = without_pooler(AutoModel.from_pretrained(model_name_or_path, **load_kwargs))
        if policy.drops_in_training:
            check_supported(backbone.config.model_type)
        proxy = None
        if policy.uses_proxy:
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
        safetensors headers), so a missing or damaged file gives a :class:`~.folder_checks.ModelFolderError`
        naming it and what to do instead of a loader traceback.
        """
        from safetensors import SafetensorError

        path = os.fspath(pretrained_model_name_or_path)
        if looks_local(path):  # a local path is checked (and never sent to the hub)
            check_model_folder(path)
        kwargs.setdefault("use_safetensors", True)  # never fall back to a pickled pytorch_model.bin
        try:
            model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except SafetensorError as err:
            raise ModelFolderError(f"{path}: damaged safetensors weights ({err}). Copy or download it again.") from err
        try:  # local folder or hub repo: the tokenizer is saved beside the weights
            # config= : AutoTokenizer would read config.json again, and where simcse_gs is not imported (loading
            # through auto_map) it would ask whether to trust the folder's code a second time.
            model.tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, config=model.config)
        except (OSError, ValueError):
            model.tokenizer = None  # encode() then says how to fix it
        return model

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """Write weights (safetensors), config, the tokenizer and the modelling code, so the folder is
        self-contained (``AutoModel.from_pretrained(folder, trust_remote_code=True)`` needs no simcse_gs)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            self.save_code(save_directory)
            if self.tokenizer is not None:
                self.tokenizer.save_pretrained(save_directory)

    @staticmethod
    def save_code(folder: str | os.PathLike) -> list[Path]:
        """Copy the modelling code (every module of this folder, which imports nothing else of simcse_gs) into
        ``folder``: what ``config.json``'s ``auto_map`` names. Returns the files written."""
        os.makedirs(folder, exist_ok=True)
        written = []
        for source in sorted(CODE_DIR.glob("*.py")):
            target = Path(folder) / source.name
            shutil.copyfile(source, target)
            written.append(target)
        return written

    # ------------------------------------------------------------------ score and keep

    def special_tokens_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Where the special tokens the keep rule always keeps ([CLS]/[SEP], <s>/</s>) are."""
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
        tokens of highest keep score in every sentence. Only for models with a proxy (GS).
        """
        if not self.keep_policy.uses_proxy:
            raise ValueError(f"This model has no proxy (keep policy '{self.keep_policy.name}'): nothing to score.")
        return self.keep_policy.score(self, input_ids, attention_mask, budget, **enc_kwargs)

    def inference_keep_weights(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, budget: float | None = None, **enc_kwargs
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """(keep probability, hard keep, decided mask) of a batch at inference; all None when every token is kept.

        GS: the proxy with the inference rule (or the ``budget``). Without a proxy a ``budget`` keeps the best
        decided tokens by the control's scores (IDF, or pseudo-random); without one, everything.
        """
        keep: InferenceKeep = self.keep_policy.infer(self, input_ids, attention_mask, budget, **enc_kwargs)
        return keep.prob, keep.keep, keep.decided

    def keep_weights(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_views: int = 1, tau: float | None = None,
        **enc_kwargs,
    ) -> KeepDecision:
        """The keep policy's decision for ``n_views`` views of a flat batch [N, L] (training: a sample per view;
        in eval mode the inference keep), with the batch's keep statistics and loss terms."""
        return self.keep_policy.train_keep(self, input_ids, attention_mask, n_views, tau, **enc_kwargs)

    # ------------------------------------------------------------------ attend and pool

    def embed(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        token_keep: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        with_mlp: bool = True,
    ) -> torch.Tensor:
        """Sentence vectors of a flat batch [N, L] under the given keep weights (None = keep all), every token
        through every layer (in-encoder pruning: :meth:`embed_pruned`).

        ``position_ids`` are only given for a pruned batch (its tokens keep their original positions);
        ``with_mlp=False`` gives the pooled vectors before SimCSE's MLP (:meth:`apply_mlp`).
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
        weights = token_keep if self.keep_policy.drops_in_training else None  # the drop controls weigh alike
        z = pool(self.config.pooler_type, hidden, attention_mask, weights)
        return self.apply_mlp(z) if with_mlp else z

    def apply_mlp(self, z: torch.Tensor, training: bool | None = None) -> torch.Tensor:
        """SimCSE's MLP over pooled vectors where it applies: always, or in training only under
        ``mlp_only_train`` (``training`` defaults to the module's mode)."""
        training = self.training if training is None else training
        if self.mlp is not None and (training or not self.config.mlp_only_train):
            z = self.mlp(z)
        return z

    def embed_pruned(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        schedule: PruneSchedule | None = None,
        tau: float | None = None,
        prune: bool = True,
        idf: torch.Tensor | None = None,
        with_mlp: bool = True,
    ) -> tuple[torch.Tensor, PrunedEncoding]:
        """Sentence vectors of a flat batch [N, L] with tokens pruned (or merged) inside the encoder after the
        ``schedule``'s layers (default: the model's own), and what was kept (:mod:`.layer_pruning`).

        ``tau`` (training a ``learned`` scorer): the kept set is a Gumbel-top-k sample whose relaxation trains the
        scorer. ``prune=False`` masks the dropped tokens instead of removing them (the same vectors). ``idf``: the
        table of the ``idf`` scorer (default: the model's own, where it has one).
        """
        schedule = schedule or self.prune_schedule
        if schedule is None:
            raise ValueError("No pruning schedule: pass one, or train with --prune_layers / --prune_keep_rates.")
        schedule.check(self.backbone.config.num_hidden_layers, self.config.pooler_type)
        if idf is None and hasattr(self, "idf"):
            idf = self.idf
        encoding = encode_pruned(self.backbone, input_ids, attention_mask, self.special_tokens_mask(input_ids),
                                 schedule, token_type_ids, self.layer_scorer, idf, prune, tau,
                                 self.config.gs_drop_special_tokens)
        z = encoding.pooled(self.config.pooler_type)
        return (self.apply_mlp(z) if with_mlp else z), encoding

    def keep_initial_teacher(self) -> None:
        """Freeze a copy of the model as it is now as the distillation teacher (``--distill_teacher initial``).

        A target that moves with the student can drift with it (both ends of ``1 - cos`` move); a frozen copy of the
        starting checkpoint cannot. It is held outside the module tree, so it is not trained, not saved and not in
        the state dict; ``train.py`` takes it right after loading, so a resumed run gets the same teacher.
        """
        self._initial_teacher = ()
        teacher = copy.deepcopy(self).eval().requires_grad_(False)
        self._initial_teacher = (teacher,)

    def teacher_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                           token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The self-distillation target: every token through every layer, dropout off, no gradient; from the
        training encoder itself, or from the frozen copy of :meth:`keep_initial_teacher`."""
        if self.config.distill_teacher == "initial":
            held = getattr(self, "_initial_teacher", ())
            if not held:
                raise ValueError("--distill_teacher initial needs the frozen teacher: call keep_initial_teacher() "
                                 "after loading the starting weights (train.py does).")
            teacher = held[0].to(input_ids.device)
            with torch.no_grad():
                return teacher.embed(input_ids, attention_mask, token_type_ids)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.embed(input_ids, attention_mask, token_type_ids)
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ forward

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
        views = self.embed_views(input_ids, attention_mask, token_type_ids, mlm_input_ids, mlm_labels, tau)
        return self.loss_from_views([views])

    def embed_views(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        mlm_input_ids: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        tau: float | None = None,
    ) -> ViewEmbeddings:
        """Score -> keep -> attend -> pool for a batch [B, V, L]: the sentence vectors of every view, the keep
        decision, and the MLM loss's sum; everything the loss needs, with its graph. Examples are independent here
        (the negatives meet only in :meth:`loss_from_views`), so a batch can be embedded in chunks."""
        if input_ids.dim() != 3:
            raise ValueError(f"input_ids must be [batch, sentences_per_example, length], got {tuple(input_ids.shape)}")
        batch, n_sent, length = input_ids.shape

        def views(t: torch.Tensor | None) -> torch.Tensor | None:  # [B, V, L] -> [V * B, L], view-major
            return None if t is None else t.transpose(0, 1).reshape(n_sent * batch, length)

        ids, mask, types = views(input_ids), views(attention_mask), views(token_type_ids)
        n_views = 2 if n_sent == 1 else n_sent
        teacher = None
        if self.config.distill_weight > 0:  # the full-token target of every view's sentence (unsup: one per pair)
            teacher = self.teacher_embeddings(ids, mask, types).view(n_sent, batch, -1)
            teacher = teacher.repeat(2, 1, 1) if n_sent == 1 else teacher
        # score -> keep (each unique sentence is scored once; unsup: two views of it)
        decision = KeepDecision([None])
        if self.keep_policy.drops_in_training:
            enc_kwargs = {"token_type_ids": types} if types is not None else {}
            decision = self.keep_weights(ids, mask, 2 if n_sent == 1 else 1, tau, **enc_kwargs)
        if n_sent == 1:
            ids, mask = ids.repeat(2, 1), mask.repeat(2, 1)
            types = types.repeat(2, 1) if types is not None else None
        # attend -> pool (in-encoder pruning: the keep decision is made inside the encoder)
        if self.prune_schedule is not None:
            if self.training and self.prune_schedule.learned and tau is None:
                raise ValueError("Training the learned prune scorer needs the relaxed top-k's temperature: pass tau= "
                                 "(the Trainer does, annealed as --init_tau/--min_tau/--tau_decay_rate).")
            pooled, encoding = self.embed_pruned(ids, mask, types, tau=tau if self.training else None,
                                              with_mlp=False)
            decision = KeepDecision([None], pruned_statistics(encoding, mask, self.special_tokens_mask(ids),
                                                              self.config.gs_drop_special_tokens))
            decision.decided_tokens = decision.statistics.pop("decided_tokens")
        else:
            pooled = self.embed(ids, mask, types, decision.stacked(), with_mlp=False)
        z = self.apply_mlp(pooled)
        out = ViewEmbeddings(z.view(n_views, batch, -1), decision, teacher=teacher)
        if teacher is not None:  # distil the vectors inference gives (the teacher's space), not the training MLP's
            out.student = self.apply_mlp(pooled, training=False).view(n_views, batch, -1)
        if mlm_input_ids is not None and self.mlm_head is not None:
            flat_labels = views(mlm_labels)
            hidden = self.backbone(input_ids=views(mlm_input_ids), attention_mask=views(attention_mask))
            logits = self.mlm_head(hidden.last_hidden_state)
            out.mlm_loss_sum = nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), flat_labels.view(-1),
                                                           reduction="sum")
            out.mlm_count = (flat_labels != -100).sum()
        return out

    def loss_from_views(self, parts: Sequence[ViewEmbeddings]) -> SimCSEGSOutput:
        """The loss of a batch from its views' embeddings (one part, or the chunks it was embedded in, in order):
        the contrastive loss over the whole (and, under DDP, global) batch, plus what the keep policy adds (the
        keep-rate penalty, REINFORCE's surrogate) and the optional MLM term."""
        z = join_views(parts, "z")
        decision = merge_decisions([part.decision for part in parts])
        contrastive = self.loss_fn(z[0], z[1], z[2] if z.shape[0] == 3 else None)
        loss = contrastive
        surrogate = self.keep_policy.surrogate(self, decision, z, contrastive)
        if surrogate is not None:  # REINFORCE: adds gradient to the proxy, not value to the loss
            loss = loss + surrogate
        mlm_loss = None
        if parts[0].mlm_loss_sum is not None:
            mlm_loss = torch.stack([p.mlm_loss_sum for p in parts]).sum() / torch.stack(
                [p.mlm_count for p in parts]).sum().clamp(min=1)
            loss = loss + self.config.mlm_weight * mlm_loss
        keep_rate_loss = self.keep_policy.keep_rate_loss([part.decision for part in parts], self.training)
        if keep_rate_loss is not None:
            loss = loss + keep_rate_loss
        distill_loss = None
        if parts[0].teacher is not None:
            distill_loss = self_distillation_loss(join_views(parts, "student"), join_views(parts, "teacher"),
                                                  self.config.distill_loss, self.loss_fn.temp)
            loss = loss + self.config.distill_weight * distill_loss
        return SimCSEGSOutput(
            loss=loss,
            embeddings=z[0],
            contrastive_loss=contrastive.detach(),
            mlm_loss=None if mlm_loss is None else mlm_loss.detach(),
            keep_rate_loss=keep_rate_loss,
            distill_loss=None if distill_loss is None else distill_loss.detach(),
            **decision.statistics,
        )

    # ------------------------------------------------------------------ inference

    def check_inference_options(self, keep_budget: float | None = None, prune: bool = False,
                                prune_schedule: PruneSchedule | None = None) -> float | None:
        """Refuse an inference keep budget or pruning this model cannot apply exactly; returns the budget in force."""
        check_keep_budget(keep_budget)
        if prune_schedule is not None:
            prune_schedule.check(self.backbone.config.num_hidden_layers, self.config.pooler_type)
            if prune_schedule.learned and self.layer_scorer is None:
                raise ValueError("--prune_scorer learned needs a checkpoint trained with it (its scorer heads); this "
                                 "one has none: use a training-free scorer (attention, first, idf, random, merge).")
            if self.keep_policy.uses_proxy or keep_budget is not None or prune:
                raise ValueError("In-encoder pruning (--prune_layers) selects the tokens itself: it does not combine "
                                 "with the proxy of a GS checkpoint, --keep_budget or --prune.")
            if self.layer_scorer is not None and len(prune_schedule.layers) != len(self.prune_schedule.layers):
                raise ValueError(f"This checkpoint's learned scorer has {len(self.prune_schedule.layers)} prune "
                                 f"point(s), the schedule asks for {len(prune_schedule.layers)}.")
            return None
        budget = self.config.inference_budget if keep_budget is None else keep_budget
        token_keep = self.keep_policy.drops_in_training
        if prune and token_keep and not self.config.gs_attn_renorm:
            raise ValueError(
                "prune=True removes the dropped tokens, which equals masking them only under the renormalised "
                "attention (train with --gs_attn_renorm): under the original scaling a dropped key still takes "
                "softmax mass. Encode without prune."
            )
        if budget is not None and not prune and not token_keep:
            raise ValueError("This model runs the stock attention, which cannot mask tokens: a keep budget needs "
                             "prune=True (dropped tokens removed from the input).")
        return budget

    def encode_batch(
        self,
        batch: dict[str, torch.Tensor],
        keep_stats: KeepStatsAccumulator | None = None,
        keep_budget: float | None = None,
        prune: bool = False,
        prune_schedule: PruneSchedule | None = None,
    ) -> torch.Tensor:
        """Sentence vectors of one tokenised batch as :meth:`encode` gives them (call in eval mode): the inference
        keep rule under GS (or ``keep_budget``), dropped tokens masked or, with ``prune``, removed; the head only
        where SimCSE evaluates with it. The sentence-transformers module of an export (:mod:`.st_module`) calls
        this too, so both encode alike. Check the options with :meth:`check_inference_options` first."""
        ids, mask, types = batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")
        schedule = prune_schedule or self.prune_schedule
        if schedule is not None:  # in-encoder pruning
            z, encoding = self.embed_pruned(ids, mask, types, schedule)
            if keep_stats is not None:
                keep_stats.update(*encoding.input_keep(mask, self.special_tokens_mask(ids),
                                                       self.config.gs_drop_special_tokens))
            return z
        budget = self.config.inference_budget if keep_budget is None else keep_budget
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
        prune_schedule: PruneSchedule | None = None,
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
        renormalised attention (``gs_attn_renorm``), and fewer tokens to encode (:mod:`.pruning`).
        ``precision``: ``fp32``, or ``bf16`` / ``fp16`` autocast (see :mod:`.precision`). ``prune_schedule``
        prunes (or merges) tokens inside the encoder (:mod:`.layer_pruning`; default: the model's own schedule).
        """
        check_extra_encode_kwargs(kwargs)
        sentences, single = sentence_list(sentences, prompt)
        if self.tokenizer is None:
            raise ValueError("This model has no tokenizer attached: load it with from_pretrained(checkpoint_dir).")
        budget = self.check_inference_options(keep_budget, prune, prune_schedule)
        check_precision(precision)
        limit = max_input_length(self.tokenizer, self.backbone.config)
        device = next(self.parameters()).device

        @precision_autocast(precision, device)
        def embed_batch(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.encode_batch(batch, keep_stats, budget, prune, prune_schedule)

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
# that a checkpoint carries is imported as ``transformers_modules.*`` and leaves the registry alone, so loading a
# checkpoint's code never replaces the installed package's classes.
if not __name__.startswith("transformers_modules."):
    AutoConfig.register(SimCSEGSConfig.model_type, SimCSEGSConfig, exist_ok=True)
    AutoModel.register(SimCSEGSConfig, SimCSEGSModel, exist_ok=True)
