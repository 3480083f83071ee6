"""Export a trained checkpoint's backbone (with its pooler) as a plain Hugging Face model and a sentence-transformers
model, in one folder.

The folder is both:

* a Hugging Face model folder (``config.json``, ``model.safetensors``, tokenizer): ``AutoModel.from_pretrained``
  loads the backbone with stock attention. With a ``cls`` pooler the trained MLP head (Linear + Tanh) is written
  as the model's own pooler (BERT's and RoBERTa's pooler are exactly Linear + Tanh over the first token), so
  ``pooler_output`` is the MLP's output; without an MLP there is no pooler weight (transformers then warns that
  the pooler is newly initialised: do not use ``pooler_output``). The README written into the folder says which
  output is the sentence embedding;
* a sentence-transformers folder (``modules.json``, ``sentence_bert_config.json``, ``1_Pooling/config.json`` and,
  when the MLP is used at inference, ``2_Dense`` with Tanh): ``SentenceTransformer(path).encode`` gives the same
  embeddings as :meth:`SimCSEGSModel.encode` for plain SimCSE.

Pooler mapping: ``cls`` (MLP at inference, i.e. without ``mlp_only_train``) = CLS pooling + Dense(tanh); ``cls``
with ``mlp_only_train`` and ``cls_before_pooler`` = CLS pooling; ``avg`` = mean pooling. ``avg_top2`` and
``avg_first_last`` mix hidden layers, which sentence-transformers' Pooling cannot express: ``fmt="st"`` refuses
them, ``fmt="hf"`` writes the Hugging Face files only.

GS checkpoints: the export drops the proxy. The exported encoder keeps every token, so its embeddings are those of
the backbone with nothing dropped, not what ``encode`` gives under the inference keep rule. A warning says so,
and so does the README in the folder.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from safetensors.torch import save_file
from transformers import AutoModel

from .model_folder import load_checkpoint, max_input_length
from .modeling import SimCSEGSConfig, SimCSEGSModel, _encoder_config

ST_POOLING = {"cls": "cls", "cls_before_pooler": "cls", "avg": "mean"}
FORMATS = ("st", "hf")
GS_WARNING = (
    "This is a Gumbel-Softmax (use_gs) checkpoint: the export drops the token-keep proxy. The exported encoder "
    "keeps EVERY token, so its embeddings differ from SimCSEGSModel.encode (which drops tokens with keep "
    "probability < 0.5). Use SimCSEGSModel.from_pretrained(checkpoint) to get the GS model's own embeddings."
)


@dataclass
class ExportResult:
    output_dir: str
    pooler_type: str
    st_pooling: str | None
    dense: bool
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _load(model_or_path: SimCSEGSModel | str | os.PathLike) -> SimCSEGSModel:
    if isinstance(model_or_path, SimCSEGSModel):
        return model_or_path
    return load_checkpoint(model_or_path, hint="It is already a plain model: there is nothing to export.")


def export_model(
    model_or_path: SimCSEGSModel | str | os.PathLike, output_dir: str | os.PathLike, fmt: str = "st",
    overwrite: bool = False,
) -> ExportResult:
    """Write the backbone (+ pooler) of a checkpoint to ``output_dir``; see the module docstring for what."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got '{fmt}'.")
    model = _load(model_or_path)
    cfg = model.config
    if model.tokenizer is None:
        raise ValueError("The model has no tokenizer attached: export a checkpoint folder (it holds the tokenizer).")
    pooler = cfg.pooler_type
    if fmt == "st" and pooler not in ST_POOLING:
        raise ValueError(
            f"The '{pooler}' pooler averages two hidden layers, which sentence-transformers' Pooling cannot express. "
            "Export with fmt='hf' (--format hf) for the Hugging Face files only and pool as the README says."
        )
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder or pass overwrite=True.")
    out.mkdir(parents=True, exist_ok=True)

    has_mlp = model.mlp is not None
    dense = has_mlp and not cfg.mlp_only_train  # the MLP is part of the inference embedding
    plain = AutoModel.from_config(_encoder_config(cfg.backbone_config), add_pooling_layer=has_mlp)
    missing, unexpected = plain.load_state_dict(model.backbone.state_dict(), strict=False)
    if unexpected or any(not key.startswith("pooler.") for key in missing):
        raise RuntimeError(f"Backbone weights do not fit a stock encoder: missing {missing}, unexpected {unexpected}.")
    if has_mlp:
        plain.pooler.dense.load_state_dict(model.mlp.dense.state_dict())
    plain.save_pretrained(out)
    model.tokenizer.save_pretrained(out)

    result = ExportResult(str(out), pooler, ST_POOLING.get(pooler) if fmt == "st" else None, dense and fmt == "st")
    if fmt == "st":
        _write_sentence_transformers(out, model, result)
    if cfg.use_gs:
        result.warnings.append(GS_WARNING)
        warnings.warn(GS_WARNING, UserWarning, stacklevel=2)
    (out / "README.md").write_text(_readme(model, result, str(model_or_path) if not isinstance(
        model_or_path, SimCSEGSModel) else None), encoding="utf-8")
    result.files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return result


def max_seq_length(model: SimCSEGSModel) -> int:
    """The truncation length :meth:`SimCSEGSModel.encode` uses by default."""
    return max_input_length(model.tokenizer, model.backbone.config)


def _write_sentence_transformers(out: Path, model: SimCSEGSModel, result: ExportResult) -> None:
    hidden = model.backbone.config.hidden_size
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length(model), "do_lower_case": False}, indent=2) + "\n")
    (out / "1_Pooling").mkdir(exist_ok=True)
    # ``word_embedding_dimension`` + ``pooling_mode`` load in sentence-transformers 2.x to 6.x alike.
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": hidden, "pooling_mode": result.st_pooling}, indent=2) + "\n")
    if result.dense:
        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
        (out / "2_Dense").mkdir(exist_ok=True)
        (out / "2_Dense" / "config.json").write_text(json.dumps(
            {"in_features": hidden, "out_features": hidden, "bias": True,
             "activation_function": "torch.nn.modules.activation.Tanh"}, indent=2) + "\n")
        linear = model.mlp.dense
        save_file({"linear.weight": linear.weight.detach().contiguous().cpu(),
                   "linear.bias": linear.bias.detach().contiguous().cpu()}, str(out / "2_Dense" / "model.safetensors"))
    (out / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")


def _hf_recipe(pooler: str, dense: bool, has_mlp: bool) -> str:
    if pooler == "cls" and dense:
        return "`outputs.pooler_output` (the trained MLP head, Linear + Tanh over the first token)"
    if pooler in ("cls", "cls_before_pooler"):
        extra = (" (`pooler_output` is the MLP head used only in training, as in unsupervised SimCSE)"
                 if has_mlp else " (`pooler_output` is not trained: do not use it)")
        return "`outputs.last_hidden_state[:, 0]` (the first token's vector)" + extra
    if pooler == "avg":
        return "the attention-mask-weighted mean of `outputs.last_hidden_state` over tokens"
    layers = "the first layer's and the last layer's" if pooler == "avg_first_last" else "the last two layers'"
    return (f"the attention-mask-weighted mean over tokens of the average of {layers} outputs (call the model with "
            "`output_hidden_states=True`; `hidden_states[0]` is the embedding output, `hidden_states[1]` the first "
            "layer's)")


def _eval_pooler(pooler: str, cfg: SimCSEGSConfig) -> str:
    """``evaluation.py --pooler`` that gives this export's embedding (its ``cls`` reads ``pooler_output``)."""
    return "cls_before_pooler" if pooler == "cls" and cfg.mlp_only_train else pooler


def _readme(model: SimCSEGSModel, result: ExportResult, source: str | None) -> str:
    cfg = model.config
    has_mlp = model.mlp is not None
    lines = [
        "# Exported SimCSE encoder",
        "",
        f"Exported by `simcse_gs.export` from `{source or 'an in-memory SimCSEGSModel'}`: backbone "
        f"`{cfg.backbone_config.get('model_type')}`, pooler `{result.pooler_type}`"
        f"{', mlp_only_train' if cfg.mlp_only_train else ''}.",
        "",
    ]
    if cfg.use_gs:
        lines += ["**Warning: the token-keep proxy is not exported.** " + GS_WARNING, ""]
    if cfg.token_drop_rate > 0:
        lines += ["Trained with the random-drop control (`token_drop_rate` "
                  f"{cfg.token_drop_rate}); it drops nothing at inference, so the export is exact.", ""]
    lines += [
        "## Hugging Face",
        "",
        "```python",
        "from transformers import AutoModel, AutoTokenizer",
        "tokenizer = AutoTokenizer.from_pretrained(PATH)",
        "model = AutoModel.from_pretrained(PATH)",
        f"batch = tokenizer(sentences, padding=True, truncation=True, max_length={max_seq_length(model)}, "
        "return_tensors='pt')",
        "outputs = model(**batch)",
        "```",
        "",
        f"The sentence embedding is {_hf_recipe(result.pooler_type, has_mlp and not cfg.mlp_only_train, has_mlp)}.",
        "",
        "## STS evaluation with simcse-gs",
        "",
        "```bash",
        f"python evaluation.py --model_name_or_path PATH --pooler {_eval_pooler(result.pooler_type, cfg)}",
        "```",
        "",
    ]
    if result.st_pooling:
        dense = " followed by the MLP head as a `Dense` module with Tanh (`2_Dense`)" if result.dense else ""
        lines += [
            "## sentence-transformers",
            "",
            "```python",
            "from sentence_transformers import SentenceTransformer",
            "embeddings = SentenceTransformer(PATH).encode(sentences)",
            "```",
            "",
            f"Modules: the transformer (this folder), `{result.st_pooling}` pooling (`1_Pooling`){dense}. "
            "Cosine similarity, as SimCSE.",
            "",
        ]
    else:
        lines += ["No sentence-transformers files: this pooler is not expressible in its Pooling module.", ""]
    return "\n".join(lines)
