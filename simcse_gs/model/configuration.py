"""Every model setting, declared once: name, default, help and range check; and the config that carries them.

:data:`MODEL_SETTINGS` is the single source. :class:`SimCSEGSConfig` takes exactly these settings (plus the
backbone's and proxy's own configs) and checks them; the training command's ``ModelArguments``
(:mod:`simcse_gs.training.arguments`) is *built* from the same table, so a flag, its default and its help cannot
drift from what a checkpoint stores. A setting whose command-line default differs from the model class's (only
``use_gs``: ``train.py`` trains GS unless told otherwise, a bare ``SimCSEGSConfig()`` is plain SimCSE) says so in
its row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from transformers import PretrainedConfig

from .attention import ATTN_IMPLEMENTATIONS
from .gumbel import TAU_UNITS, TauSchedule
from .layer_pruning import SCORER_PRIORS, SCORERS, PruneSchedule
from .pooling import HEAD_TYPES, POOLER_TYPES, resolve_head_type
from .proxy import PROXY_HEADS
from .registry import CONTROL_POLICIES, GS_POLICIES, REINFORCE_REWARDS, policy_class, policy_for, resolve_estimator

_SAME = object()


@dataclass(frozen=True)
class Setting:
    """One model setting: what a checkpoint's config stores and ``train.py --<name>`` sets.

    ``check(value)`` raises ``ValueError`` naming the flag; ``choices`` are checked before it. ``cli_default`` is
    the command line's default where it differs from the model class's ``default``.
    """

    name: str
    type: Any  # what the command-line parser converts to: bool, int, float, str, or float | None
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], None] | None = None
    cli_default: Any = _SAME

    @property
    def command_line_default(self) -> Any:
        return self.default if self.cli_default is _SAME else self.cli_default

    def validate(self, value: Any) -> None:
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"--{self.name} must be one of {', '.join(self.choices)}, got '{value}'.")
        if self.check is not None:
            self.check(value)


def _in_range(flag: str, low: float, high: float, low_open: bool = False, high_open: bool = False,
              optional: bool = False) -> Callable[[Any], None]:
    """A check that ``value`` lies in the interval (brackets as the flags' messages print it)."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def check(value: Any) -> None:
        if optional and value is None:
            return
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):
            raise ValueError(f"--{flag} must be in {interval}, got {value}.")

    return check


def _positive(flag: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if not value > 0:
            raise ValueError(f"--{flag} must be > 0, got {value}.")

    return check


def _at_least_zero(flag: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value < 0:
            raise ValueError(f"--{flag} must be >= 0, got {value}.")

    return check


check_keep_budget = _in_range("keep_budget", 0, 1, low_open=True, optional=True)
"""The inference keep budget r: keep ``ceil(r n)`` tokens, r in (0, 1] (``train.py``, ``evaluation.py``, ``encode``)."""

GS_ESTIMATORS = tuple(GS_POLICIES)
DROP_HEURISTICS = tuple(CONTROL_POLICIES)
DISTILL_TEACHERS = ("self", "initial")

MODEL_SETTINGS: tuple[Setting, ...] = (
    Setting("pooler_type", str, "cls", f"One of {', '.join(POOLER_TYPES)}.", choices=POOLER_TYPES),
    Setting("head_type", str, "auto",
            f"Head on the pooled vector, one of {', '.join(HEAD_TYPES)}: auto = SimCSE's rule (mlp with the cls "
            "pooler, none otherwise); mlp = Linear + Tanh (SimCSE); dropout_mlp = Dropout + Linear + Tanh on any "
            "pooler (the original GS repo's SimpleHead). See docs/RECIPES.md.", choices=HEAD_TYPES),
    Setting("head_dropout", float | None, None,
            "Dropout of the dropout_mlp head (default: the backbone's hidden dropout).",
            check=_in_range("head_dropout", 0, 1, high_open=True, optional=True)),
    Setting("mlp_only_train", bool, False,
            "Use the head in training only (unsupervised SimCSE); off = also at inference."),
    Setting("temp", float, 0.05, "Softmax temperature of the contrastive loss.", check=_positive("temp")),
    Setting("hard_negative_weight", float, 0.0,
            "Added to each row's own hard-negative logit (log of a weight; 0 = none)."),
    Setting("do_mlm", bool, False, "Add a masked-language-modelling auxiliary loss."),
    Setting("mlm_weight", float, 0.1, "Weight of the MLM loss."),
    Setting("use_gs", bool, False, "Train the Gumbel-Softmax token-keep proxy (false = plain SimCSE).",
            cli_default=True),
    Setting("init_tau", float, 1.0, "Gumbel-Softmax temperature at step 0."),
    Setting("min_tau", float, 0.5, "Temperature floor (> 0)."),
    Setting("tau_decay_rate", float, 6.4e-4,
            "tau = max(min_tau, init_tau * exp(-rate * t)), t in --tau_schedule_unit. 6.4e-4 per optimizer step is "
            "the original's 1e-5 per example at batch 64."),
    Setting("tau_schedule_unit", str, "optimizer_step",
            f"What t counts, one of {', '.join(TAU_UNITS)}: optimizer_step, or example = the examples this process has "
            "trained on before the current forward (the original GS repo's count: tau moves between accumulated "
            "micro-batches; each DDP process counts its own).", choices=TAU_UNITS),
    Setting("proxy_head", str, "linear",
            f"Proxy's per-token head, one of {', '.join(PROXY_HEADS)}: linear = one zero-initialised Linear (every p "
            "starts at 0.5); two_layer = the original GS repo's randomly initialised two-layer head with dropout "
            "(DistilBERT's or RoBERTa's classification head, by the proxy's family).", choices=PROXY_HEADS),
    Setting("gs_hard", bool, False, "Deprecated alias of --gs_estimator st (straight-through hard 0/1 samples)."),
    Setting("gs_estimator", str, "soft",
            f"Gradient estimator of the keep decision: {', '.join(GS_ESTIMATORS)} (soft Gumbel-Softmax, "
            "straight-through Gumbel, REINFORCE with a moving-average baseline; topk: exactly ceil(r * n) tokens kept "
            "per sentence, r = --gs_target_keep_rate, through a relaxed top-k; hard_concrete: L0 gates, budgeted by "
            "--gs_keep_rate_weight on their expected L0). See docs/RESEARCH_TOOLS.md and simcse_gs/model/registry.py.",
            choices=GS_ESTIMATORS),
    Setting("gs_reinforce_reward", str, "sentence",
            f"REINFORCE credit: {' or '.join(REINFORCE_REWARDS)} (each example's own loss row for its own keeps, or "
            "the batch loss for every keep).", choices=REINFORCE_REWARDS),
    Setting("gs_reinforce_baseline_momentum", float, 0.9,
            "Momentum of the REINFORCE baseline (EMA of the contrastive loss).",
            check=_in_range("gs_reinforce_baseline_momentum", 0, 1, high_open=True)),
    Setting("gs_shared_sample", bool, False, "Unsup: one Gumbel sample for both views (the original's behaviour)."),
    Setting("gs_drop_special_tokens", bool, False,
            "Let the proxy drop [CLS]/[SEP] (<s>/</s>) too; they are kept otherwise."),
    Setting("gs_attn_impl", str, "sdpa", "sdpa: scale V and use SDPA (fast); eager: scale the probabilities.",
            choices=tuple(ATTN_IMPLEMENTATIONS)),
    Setting("gs_attn_renorm", bool, False,
            "Renormalise the attention over the kept keys (off: the original's plain scaling, where a dropped key "
            "still takes softmax mass). On, a dropped token can be removed from the input at inference with the same "
            "result (pruning: evaluation.py --prune)."),
    Setting("gs_target_keep_rate", float, 1.0,
            "Target keep rate r: of the mean keep probability (penalty), the expected L0 (hard_concrete), or the "
            "exact per-sentence budget (topk).", check=_in_range("gs_target_keep_rate", 0, 1)),
    Setting("gs_keep_rate_weight", float, 0.0, "λ of the penalty λ (mean_keep_prob - r)^2 (0 = off).",
            check=_at_least_zero("gs_keep_rate_weight")),
    Setting("keep_budget", float | None, None,
            "Inference keep rate r: keep the ceil(r * n) best tokens of every sentence (by the proxy; without one by "
            "--token_drop_heuristic) instead of the per-token rule p >= 0.5. Default: none (topk: its "
            "--gs_target_keep_rate).", check=check_keep_budget),
    Setting("token_drop_rate", float, 0.0,
            "Drop control (needs --use_gs false): in training drop this fraction of the non-special tokens through "
            "the same attention patch (random: each token with this probability per view; idf: the most frequent "
            "ones).", check=_in_range("token_drop_rate", 0, 1, high_open=True)),
    Setting("token_drop_heuristic", str, "random",
            f"Which tokens the drop control drops: {' or '.join(DROP_HEURISTICS)} (random; idf: the most frequent in "
            "the training file first, the same in every view).", choices=DROP_HEURISTICS),
    Setting("prune_layers", list[int] | None, None,
            "Token pruning inside the encoder: prune after these layers (1-based, each in 1..L-1; several = a "
            "progressive schedule, e.g. 2 4), so the later layers run on the kept tokens only, in training and at "
            "inference. See simcse_gs/model/layer_pruning.py."),
    Setting("prune_keep_rates", list[float] | None, None,
            "Share of each sentence's decided tokens kept after each --prune_layers point, in (0, 1], non-increasing "
            "(e.g. 0.8 0.5)."),
    Setting("prune_scorer", str, "attention",
            f"Which tokens the in-encoder pruning keeps, one of {', '.join(SCORERS)}: learned (a small head on the "
            "hidden states, trained through a relaxed top-k; with --prune_scorer_prior), attention (PoWER-BERT's "
            "attention received), first, idf, random, or merge (ToMe: merge similar tokens instead of dropping).",
            choices=SCORERS),
    Setting("prune_scorer_prior", str, "attention",
            f"The learned scorer's prior, one of {', '.join(SCORER_PRIORS)}: attention = the head learns a correction "
            "to the attention score (an untrained head prunes as --prune_scorer attention does); idf = a correction to "
            "the training file's IDF table (the model carries the table); none = the head alone.",
            choices=SCORER_PRIORS),
    Setting("distill_weight", float, 0.0,
            "Weight of the self-distillation term: the token-dropping model's sentence embedding is pulled towards the "
            "same encoder's full-token embedding (no gradient through that teacher). 0 = off.",
            check=_at_least_zero("distill_weight")),
    Setting("distill_loss", str, "cosine",
            "Self-distillation loss: cosine (1 - cos(student, teacher) per sentence, as embedding distillation "
            "does) or similarity (KL between the teacher's and the student's in-batch similarity distributions, "
            "as relational distillation does).", choices=("cosine", "similarity")),
    Setting("distill_teacher", str, "self",
            "Whose full-token embedding the distillation term pulls towards: self (the encoder being trained, dropout "
            "off, no gradient: the target moves with the student) or initial (a frozen copy of the model as training "
            "started, kept out of the checkpoint: a fixed target).", choices=DISTILL_TEACHERS),
)
SETTINGS_BY_NAME: dict[str, Setting] = {setting.name: setting for setting in MODEL_SETTINGS}


def check_model_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check every setting and how they combine; returns them with the deprecated ``gs_hard`` alias resolved.

    The one place a bad combination is refused, before any model is built (``train.py`` at start-up, and a
    config built in Python).
    """
    values = dict(values)
    for setting in MODEL_SETTINGS:
        setting.validate(values[setting.name])
    values["gs_estimator"] = resolve_estimator(values["gs_estimator"], values["gs_hard"])
    values["gs_hard"] = values["gs_estimator"] == "st"
    resolve_head_type(values["head_type"], values["pooler_type"])
    if values["head_dropout"] is not None and values["head_type"] != "dropout_mlp":
        raise ValueError("--head_dropout is the dropout of --head_type dropout_mlp: set that head, or drop the flag.")
    TauSchedule(values["init_tau"], values["min_tau"], values["tau_decay_rate"])  # raises on a bad schedule
    if values["token_drop_rate"] > 0 and values["use_gs"]:
        raise ValueError("--token_drop_rate is the random-drop control: use it with --use_gs false.")
    if values["token_drop_heuristic"] != "random" and values["use_gs"]:
        raise ValueError(f"--token_drop_heuristic {values['token_drop_heuristic']} is a control without a proxy: use "
                         "it with --use_gs false.")
    policy_class(values).check_settings(values)  # what the chosen keep policy itself requires
    schedule = PruneSchedule.parse(values["prune_layers"], values["prune_keep_rates"], values["prune_scorer"],
                                   values["prune_scorer_prior"])
    if schedule is not None and (values["use_gs"] or values["token_drop_rate"] > 0):
        raise ValueError("--prune_layers selects tokens inside the encoder; the proxy (--use_gs) and the drop controls "
                         "(--token_drop_rate) select them before it. Use one: --use_gs false --token_drop_rate 0 with "
                         "--prune_layers.")
    if values["distill_weight"] > 0 and schedule is None and not values["use_gs"] and not values["token_drop_rate"]:
        raise ValueError("--distill_weight pulls a token-dropping model towards its full-token self: it needs tokens "
                         "dropped in training (--prune_layers, --use_gs or --token_drop_rate).")
    if values["distill_teacher"] != "self" and values["distill_weight"] == 0:
        raise ValueError(f"--distill_teacher {values['distill_teacher']} is the teacher of the distillation term: set "
                         "--distill_weight > 0, or drop the flag.")
    return values


def _encoder_config(config_dict: dict) -> PretrainedConfig:
    from transformers import AutoConfig

    config_dict = dict(config_dict)
    return AutoConfig.for_model(config_dict.pop("model_type"), **config_dict)


# config.json names the classes as a checkpoint saved before the configuration had its own file did; ``modeling``
# imports this class, so ``modeling.SimCSEGSConfig`` resolves for AutoConfig in a checkpoint's copy of the code.
AUTO_MAP = {"AutoConfig": "modeling.SimCSEGSConfig", "AutoModel": "modeling.SimCSEGSModel"}


class SimCSEGSConfig(PretrainedConfig):
    """Everything needed to rebuild the model and its training behaviour from a checkpoint folder: the backbone's
    and proxy's configs, the special token ids, and every :data:`MODEL_SETTINGS` entry."""

    model_type = "simcse_gs"

    def __init__(
        self,
        backbone_config: dict | None = None,
        proxy_config: dict | None = None,
        special_token_ids: list[int] | None = None,
        **kwargs: Any,
    ):
        settings = {setting.name: kwargs.pop(setting.name, setting.default) for setting in MODEL_SETTINGS}
        kwargs.setdefault("auto_map", dict(AUTO_MAP))
        super().__init__(**kwargs)
        self.backbone_config = backbone_config
        self.proxy_config = proxy_config
        self.special_token_ids = list(special_token_ids or [])
        for name, value in check_model_settings(settings).items():
            setattr(self, name, value)

    def settings(self) -> dict[str, Any]:
        """The :data:`MODEL_SETTINGS` values of this config, by name."""
        return {setting.name: getattr(self, setting.name) for setting in MODEL_SETTINGS}

    @property
    def resolved_head_type(self) -> str:
        """The head on the pooled vector: ``none``, ``mlp`` or ``dropout_mlp`` (``auto`` resolved by the pooler)."""
        return resolve_head_type(self.head_type, self.pooler_type)

    @property
    def uses_token_keep(self) -> bool:
        """Whether the backbone runs with the token-keep attention (GS, or a drop control that drops in training)."""
        return policy_for(self).drops_in_training

    @property
    def inference_budget(self) -> float | None:
        """Keep rate of the inference rule: ``keep_budget``, else the keep policy's own budget (``topk``: its
        target rate), else None (the per-token rule p >= 0.5 for GS, keep everything otherwise)."""
        return policy_for(self).inference_budget

    @property
    def policy_name(self) -> str:
        """The registry name of the keep policy (:mod:`simcse_gs.model.registry`)."""
        return policy_for(self).name

    @property
    def prune_schedule(self) -> PruneSchedule | None:
        """The in-encoder pruning schedule (:mod:`.layer_pruning`), None without ``prune_layers``."""
        return PruneSchedule.parse(self.prune_layers, self.prune_keep_rates, self.prune_scorer,
                                   self.prune_scorer_prior)

    @property
    def selects_at_inference(self) -> bool:
        """Whether inference drops tokens (so an export must carry the whole model, not stock modules)."""
        return bool(self.use_gs or self.inference_budget is not None or self.prune_layers)

    def encoder_config(self, which: str = "backbone") -> PretrainedConfig:
        """The backbone's (or ``which="proxy"``: the proxy's) own transformers config."""
        config = self.backbone_config if which == "backbone" else self.proxy_config
        if config is None:
            raise ValueError(f"This config has no {which} config.")
        return _encoder_config(config)
