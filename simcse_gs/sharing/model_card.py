"""Model cards: the ``README.md`` of every model folder we write (train.py's output, each checkpoint-N, exports).

A card says what the model is (base model, proxy or in-encoder pruning schedule, pooler), how it was trained
(data, recipe, GS or pruning settings), what the proxy keeps, the STS numbers when it was evaluated, and how to
load it with each library. Its YAML header (the Hugging Face Hub's model-card metadata) also holds these facts
under ``simcse_gs``, so an export carries the training facts of the checkpoint it came from
(:func:`read_card_facts`).

The model and GS facts come from the config, so they are always right; training, keep statistics and STS
numbers come from the Trainer (its arguments and ``log_history``) and are only present where they are known.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

CARD_NAME = "README.md"
FACTS_KEY = "simcse_gs"
STS_KEYS = {"stsb_spearman": "STS-B", "sickr_spearman": "SICK-R", "avg_sts": "Avg"}
KEEP_KEYS = ("keep_prob", "keep_rate", "keep_entropy")
TRAINING_ARGS = ("max_steps", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
                 "learning_rate", "proxy_learning_rate", "scorer_learning_rate", "lr_scheduler_type", "warmup_steps",
                 "weight_decay", "max_grad_norm", "seed", "fp16", "bf16")

# ------------------------------------------------------------------------------------------------ facts


def looks_like_hub_id(name: str | None) -> bool:
    """``org/name`` or ``name`` that is not a local path: what the Hub accepts as ``base_model``."""
    if not name or os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1:
        return False
    return not os.path.exists(name)


def model_facts(config: Any) -> dict[str, Any]:
    """Architecture, proxy, pooler and GS settings, read from a :class:`SimCSEGSConfig`."""
    backbone = config.backbone_config or {}
    facts: dict[str, Any] = {
        "base_model": backbone.get("_name_or_path"),
        "architecture": backbone.get("model_type"),
        "layers": backbone.get("num_hidden_layers"),
        "hidden_size": backbone.get("hidden_size"),
        "pooler": config.pooler_type,
        "mlp_only_train": bool(config.mlp_only_train),
        "temp": config.temp,
        "use_gs": bool(config.use_gs),
    }
    if config.use_gs:
        proxy = config.proxy_config or {}
        facts["proxy"] = {"encoder": proxy.get("_name_or_path"), "layers": proxy.get("num_hidden_layers")}
        facts["gs"] = {
            "estimator": config.gs_estimator,
            "init_tau": config.init_tau,
            "min_tau": config.min_tau,
            "tau_decay_rate": config.tau_decay_rate,
            "shared_sample": bool(config.gs_shared_sample),
            "drop_special_tokens": bool(config.gs_drop_special_tokens),
            "attn_impl": config.gs_attn_impl,
            "target_keep_rate": config.gs_target_keep_rate,
            "keep_rate_weight": config.gs_keep_rate_weight,
        }
        if config.gs_estimator == "reinforce":
            facts["gs"].update(reinforce_reward=config.gs_reinforce_reward,
                               reinforce_baseline_momentum=config.gs_reinforce_baseline_momentum)
    schedule = config.prune_schedule
    if schedule is not None:
        facts["pruning"] = {"layers": list(schedule.layers), "keep_rates": list(schedule.rates),
                            "scorer": schedule.scorer}
        if schedule.scorer == "learned":
            facts["pruning"]["scorer_prior"] = schedule.prior
    if config.distill_weight:
        facts["distillation"] = {"weight": config.distill_weight, "loss": config.distill_loss,
                                 "teacher": config.distill_teacher}
    if config.token_drop_rate > 0:
        facts["token_drop_rate"] = config.token_drop_rate
    if config.do_mlm:
        facts["mlm_weight"] = config.mlm_weight
    if config.hard_negative_weight:
        facts["hard_negative_weight"] = config.hard_negative_weight
    return facts


def training_facts(args: Any, global_step: int | None = None, epoch: float | None = None,
                   data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The recipe: the training data (``data``: train_file, examples, objective, max_seq_length) and the
    TrainingArguments that shape the result, with the step and epoch this folder was saved at."""
    facts: dict[str, Any] = dict(data or {})
    for name in TRAINING_ARGS:
        value = getattr(args, name, None)
        if value is not None:
            facts[name] = value.value if hasattr(value, "value") else value  # enums (lr_scheduler_type)
    facts["world_size"] = getattr(args, "world_size", 1)
    if global_step is not None:
        facts["global_step"] = global_step
    if epoch is not None:
        facts["epoch"] = round(float(epoch), 4)
    return facts


def metric_facts(log_history: Iterable[Mapping[str, Any]], eval_split: str = "dev") -> dict[str, Any]:
    """STS numbers and keep statistics of the latest evaluation in a Trainer's ``log_history``; without one,
    the keep statistics of the latest training log (training batches, p without Gumbel noise)."""
    history = list(log_history)
    facts: dict[str, Any] = {}
    evals = [h for h in history if "eval_stsb_spearman" in h or "eval_sickr_spearman" in h]
    if evals:
        last = evals[-1]
        facts["sts"] = {"split": eval_split, "step": last.get("step"),
                        **{key: last[f"eval_{key}"] for key in STS_KEYS if f"eval_{key}" in last}}
        keep = {key: last[f"eval_{key}"] for key in KEEP_KEYS if f"eval_{key}" in last}
        if keep:
            facts["keep"] = {"source": f"STS {eval_split} sentences, inference keep rule", "step": last.get("step"),
                             **keep}
    if "keep" not in facts:
        logs = [h for h in history if "keep_prob" in h and "loss" in h]
        if logs:
            last = logs[-1]
            facts["keep"] = {"source": "training batches (mean over the last logging interval)",
                             "step": last.get("step"), **{key: last[key] for key in KEEP_KEYS if key in last}}
    return facts


def read_card_facts(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``simcse_gs`` facts of a folder's card ({} if it has no card of ours)."""
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    header, _, _ = text[4:].partition("\n---\n")
    try:
        data = yaml.safe_load(header) or {}
    except yaml.YAMLError:
        return {}
    facts = data.get(FACTS_KEY) if isinstance(data, dict) else None
    return dict(facts) if isinstance(facts, dict) else {}


# ------------------------------------------------------------------------------------------------ usage


_AUTOMODEL_SNIPPET = [
    "```python",
    "from transformers import AutoModel",
    "model = AutoModel.from_pretrained(PATH, trust_remote_code=True)",
    "embeddings = model.encode(sentences)",
    "```",
]


def _sentence_transformers_snippet(path: str, with_remote_code: bool, note: str = "") -> list[str]:
    trust = ", trust_remote_code=True" if with_remote_code else ""
    return ["```python", f"from sentence_transformers import SentenceTransformer{note}",
            f"model = SentenceTransformer({path}{trust})", "embeddings = model.encode(sentences)", "```"]


def checkpoint_usage(use_gs: bool) -> str:
    """How to load a train.py folder (checkpoint-N or the final one) with each library."""
    return "\n".join([
        "## Usage",
        "",
        "`PATH` is this folder (or its Hub id).",
        "",
        "With simcse-gs installed:",
        "",
        "```python",
        "from simcse_gs import SimCSEGSModel",
        "model = SimCSEGSModel.from_pretrained(PATH)",
        "embeddings = model.encode(sentences)        # [N, hidden], float32",
        "```",
        "",
        "With transformers only (the folder carries its modelling code: `modeling.py` and the modules it imports; "
        "read them before trusting them):",
        "",
        *_AUTOMODEL_SNIPPET,
        "",
        "With sentence-transformers, export the folder first"
        + (" (the export keeps the proxy and the inference keep rule):" if use_gs else ":"),
        "",
        "```bash",
        "python export.py --model_name_or_path PATH --output_dir EXPORT",
        "```",
        "",
        *_sentence_transformers_snippet("EXPORT", with_remote_code=use_gs),
        "",
        "STS evaluation (SentEval, SimCSE's protocol):",
        "",
        "```bash",
        "python evaluation.py --model_name_or_path PATH --mode test",
        "```",
        "",
    ])


def gs_export_usage() -> str:
    """How to load a GS export (the whole model with its proxy, plus the sentence-transformers module)."""
    return "\n".join([
        "## Usage",
        "",
        "`PATH` is this folder (or its Hub id). The folder is a complete SimCSE-GS model: the backbone, the proxy "
        "and the modelling code (`modeling.py` and the modules it imports, `st_module.py`). All three ways below "
        "encode alike: the proxy scores every token and tokens with keep probability < 0.5 are dropped in every "
        "attention layer (and in mean pooling).",
        "",
        *_sentence_transformers_snippet("PATH", with_remote_code=True, note="   # sentence-transformers >= 6"),
        "",
        *_AUTOMODEL_SNIPPET,
        "",
        "```python",
        "from simcse_gs import SimCSEGSModel",
        "embeddings = SimCSEGSModel.from_pretrained(PATH).encode(sentences)",
        "```",
        "",
        "`trust_remote_code=True` runs the Python files in this folder: read them before trusting them.",
        "",
    ])


# ------------------------------------------------------------------------------------------------ rendering


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return f"`{value}`" if isinstance(value, str) and " " not in value else str(value)  # names and paths as code


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {name} | {_value(value)} |" for name, value in rows if value is not None), ""]


def _model_section(facts: Mapping[str, Any]) -> list[str]:
    pooler = facts["pooler"] + (" (MLP head in training only)" if facts.get("mlp_only_train") else "")
    if facts.get("use_gs"):
        proxy = facts.get("proxy", {})
        proxy_text = f"{proxy.get('encoder')} ({proxy.get('layers')} layers) + linear keep/drop head"
    elif facts.get("pruning"):
        proxy_text = "none: tokens are selected inside the encoder (below)"
    else:
        proxy_text = "none (plain SimCSE)"
    rows = [("base model", facts.get("base_model")), ("architecture", facts.get("architecture")),
            ("layers x hidden", f"{facts.get('layers')} x {facts.get('hidden_size')}"), ("pooler", pooler),
            ("token-keep proxy", proxy_text), ("contrastive temperature", facts.get("temp")),
            ("random-drop control rate", facts.get("token_drop_rate")), ("MLM weight", facts.get("mlm_weight")),
            ("hard-negative weight", facts.get("hard_negative_weight"))]
    return ["## Model", "", *_table(rows)]


def _gs_section(facts: Mapping[str, Any]) -> list[str]:
    gs = facts.get("gs")
    if not gs:
        return []
    rows = [("estimator (`--gs_estimator`)", gs["estimator"]),
            ("temperature schedule", f"tau = max({gs['min_tau']}, {gs['init_tau']} * exp(-{gs['tau_decay_rate']} * "
                                     "step))"),
            ("one sample for both views", gs["shared_sample"]), ("special tokens decided", gs["drop_special_tokens"]),
            ("attention implementation", gs["attn_impl"]),
            ("keep-rate penalty", f"weight {gs['keep_rate_weight']}, target {gs['target_keep_rate']}"),
            ("REINFORCE reward", gs.get("reinforce_reward")),
            ("REINFORCE baseline momentum", gs.get("reinforce_baseline_momentum")),
            ("inference keep rule",
             "keep a token where p >= 0.5 (if none of a sentence's decided tokens is, its most probable one)"
             + ("" if gs["drop_special_tokens"] else "; special tokens always kept"))]
    return ["## Gumbel-Softmax settings", "", *_table(rows)]


def _pruning_section(facts: Mapping[str, Any]) -> list[str]:
    pruning, distill = facts.get("pruning"), facts.get("distillation")
    if not pruning and not distill:
        return []
    rows: list[tuple[str, Any]] = []
    if pruning:
        scorer = pruning["scorer"] + (f" (prior: {pruning['scorer_prior']})" if "scorer_prior" in pruning else "")
        schedule = ", ".join(f"keep {r:g} after layer {k}" for k, r in zip(pruning["layers"], pruning["keep_rates"]))
        rows += [("schedule", schedule), ("scorer (`--prune_scorer`)", scorer)]
    if distill:
        rows += [("self-distillation", f"weight {distill['weight']:g}, {distill['loss']} loss, "
                                       f"{distill['teacher']} teacher")]
    note = (["Later layers run on the kept tokens only (merged ones, with `merge`), in training and at inference.", ""]
            if pruning else [])
    return ["## In-encoder pruning" if pruning else "## Self-distillation", "", *note, *_table(rows)]


def _training_section(training: Mapping[str, Any] | None) -> list[str]:
    if not training:
        return ["## Training", "", "Not recorded for this folder.", ""]
    names = {"train_file": "data", "examples": "training examples", "objective": "objective",
             "max_seq_length": "max tokens per sentence (training)", "global_step": "optimizer steps done",
             "epoch": "epochs done", "max_steps": "max_steps", "num_train_epochs": "num_train_epochs",
             "per_device_train_batch_size": "batch size per device", "world_size": "processes",
             "gradient_accumulation_steps": "gradient accumulation", "learning_rate": "learning rate",
             "proxy_learning_rate": "proxy learning rate", "scorer_learning_rate": "learned scorer's learning rate",
             "lr_scheduler_type": "schedule",
             "warmup_steps": "warm-up steps", "weight_decay": "weight decay", "max_grad_norm": "max grad norm",
             "seed": "seed", "fp16": "fp16", "bf16": "bf16"}
    rows = [(label, training[key]) for key, label in names.items() if key in training]
    return ["## Training", "", *_table(rows)]


def _keep_section(keep: Mapping[str, Any] | None, use_gs: bool) -> list[str]:
    if not use_gs:
        return []
    if not keep:
        return ["## Keep statistics", "", "Not measured for this folder (no evaluation or training log yet).", ""]
    rows = [("measured on", keep.get("source")), ("at step", keep.get("step")),
            ("mean keep probability p", keep.get("keep_prob")), ("fraction kept (p >= 0.5)", keep.get("keep_rate")),
            ("mean keep entropy (nats)", keep.get("keep_entropy"))]
    return ["## Keep statistics", "", "Over the decided tokens (not padding, not special tokens).", "",
            *_table(rows)]


def _sts_section(sts: Mapping[str, Any] | None) -> list[str]:
    if not sts:
        return ["## STS results", "", "Not evaluated yet: `python evaluation.py --model_name_or_path PATH --mode "
                "test` prints SimCSE's STS table.", ""]
    keys = [key for key in STS_KEYS if key in sts]
    return ["## STS results", "",
            f"Spearman x 100, cosine similarity, {sts.get('split')} split, at step {sts.get('step')} (the "
            "Trainer's evaluation):", "",
            "| " + " | ".join(STS_KEYS[k] for k in keys) + " |", "|" + "---|" * len(keys),
            "| " + " | ".join(f"{float(sts[k]):.2f}" for k in keys) + " |", ""]


def render_model_card(
    config: Any,
    title: str,
    usage: str,
    facts: Mapping[str, Any] | None = None,
    library_name: str = "transformers",
    intro: Iterable[str] = (),
) -> str:
    """The card: YAML metadata (with every fact under ``simcse_gs``), then the sections, then ``usage``.

    ``facts`` may hold ``training``, ``keep`` and ``sts`` (see :func:`training_facts`, :func:`metric_facts`);
    the model and GS facts are always read from ``config``.
    """
    facts = dict(facts or {})
    all_facts = {**model_facts(config), **{k: facts[k] for k in ("training", "keep", "sts") if facts.get(k)}}
    base = all_facts.get("base_model")
    tags = ["sentence-similarity", "feature-extraction", "simcse", "simcse-gs"]
    if config.use_gs:
        tags.append("gumbel-softmax")
    if all_facts.get("pruning"):
        tags.append("token-pruning")
    meta: dict[str, Any] = {"library_name": library_name, "pipeline_tag": "sentence-similarity", "tags": tags}
    if looks_like_hub_id(base):
        meta["base_model"] = base
    meta[FACTS_KEY] = all_facts
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip()
    kind = ("SimCSE + Gumbel-Softmax token-keep proxy" if config.use_gs
            else "token-pruned SimCSE" if all_facts.get("pruning") else "SimCSE")
    lines = ["---", header, "---", "", f"# {title}", "",
             f"A {kind} sentence encoder trained with simcse-gs. Sentence embeddings are compared with cosine "
             "similarity.", ""]
    if config.use_gs:
        lines += ["A small proxy encoder scores every token with a keep probability p; in every attention layer the "
                  "attention to a token is scaled by its keep weight. At inference a token is kept where p >= 0.5.",
                  ""]
    lines += [*intro]
    lines += _model_section(all_facts) + _gs_section(all_facts) + _pruning_section(all_facts)
    lines += _training_section(all_facts.get("training"))
    lines += _keep_section(all_facts.get("keep"), bool(config.use_gs)) + _sts_section(all_facts.get("sts"))
    lines += [usage.rstrip(), ""]
    return "\n".join(lines)


def write_model_card(folder: str | os.PathLike, config: Any, title: str, usage: str,
                     facts: Mapping[str, Any] | None = None, **kwargs: Any) -> Path:
    """Render the card and write it to ``folder/README.md`` (atomically: a crash never leaves half a card)."""
    path = Path(folder) / CARD_NAME
    tmp = path.with_name(CARD_NAME + ".tmp")
    tmp.write_text(render_model_card(config, title, usage, facts, **kwargs), encoding="utf-8")
    os.replace(tmp, path)
    return path
