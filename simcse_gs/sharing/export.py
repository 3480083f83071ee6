"""Export a trained checkpoint as a sentence-transformers model and a Hugging Face model, in one folder.

For plain SimCSE (and with ``drop_proxy``) the folder is both:

* a Hugging Face model folder (``config.json``, ``model.safetensors``, tokenizer): ``AutoModel.from_pretrained``
  loads the backbone with stock attention. With a ``cls`` pooler the trained MLP head (Linear + Tanh) is written
  as the model's own pooler (BERT's and RoBERTa's pooler are exactly Linear + Tanh over the first token), so
  ``pooler_output`` is the MLP's output; without an MLP there is no pooler weight (transformers then warns that
  the pooler is newly initialised: do not use ``pooler_output``). The README written into the folder says which
  output is the sentence embedding;
* a sentence-transformers folder (``modules.json``, ``sentence_bert_config.json``, ``1_Pooling/config.json`` and,
  when the MLP is used at inference, ``2_Dense`` with Tanh): ``SentenceTransformer(path).encode`` gives the same
  embeddings as :meth:`SimCSEGSModel.encode` for plain SimCSE. Without an MLP, ``sentence_bert_config.json`` asks
  for the encoder without its pooling layer (``model_args``), so loading reports no missing pooler weights.

Pooler mapping: ``cls`` (MLP at inference, i.e. without ``mlp_only_train``) = CLS pooling + Dense(tanh); ``cls``
with ``mlp_only_train`` and ``cls_before_pooler`` = CLS pooling; ``avg`` = mean pooling. ``avg_top2`` and
``avg_first_last`` mix hidden layers, which sentence-transformers' Pooling cannot express: ``fmt="st"`` refuses
them, ``fmt="hf"`` writes the Hugging Face files only.

GS checkpoints keep their proxy: stock modules cannot run it, so the folder is the whole SimCSE-GS model (weights
with the proxy, config with ``auto_map``, the modelling code) plus, for ``fmt="st"``, ``modules.json`` naming one
custom module, :class:`simcse_gs.model.st_module.SimCSEGSEncoder` (copied in as ``st_module.py``). Then
``SentenceTransformer(path, trust_remote_code=True)`` and ``AutoModel.from_pretrained(path, trust_remote_code=True)``
encode exactly as :meth:`SimCSEGSModel.encode` does, inference keep rule included, for every pooler.
``drop_proxy=True`` (``--drop_proxy``) writes the backbone alone as above instead, with stock classes only: it keeps
every token, so its embeddings differ from ``encode``; a warning says so, and so does the README.

Every folder gets a model card (:mod:`simcse_gs.model_card`) carrying the training facts of the checkpoint's own
card.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from safetensors.torch import save_file
from transformers import AutoModel

from ..cli import RUN_FAILURE, USAGE_ERROR, fail
from ..model import SimCSEGSConfig, SimCSEGSModel
from ..model_folder import ModelFolderError, load_checkpoint, max_input_length
from .model_card import gs_export_usage, read_card_facts, write_model_card

ST_POOLING = {"cls": "cls", "cls_before_pooler": "cls", "avg": "mean"}
FIRST_TOKEN_POOLERS = ("cls", "cls_before_pooler")
FORMATS = ("st", "hf")
GS_WARNING = (
    "This is a Gumbel-Softmax (use_gs) checkpoint exported with drop_proxy: the export drops the token-keep proxy. "
    "The exported encoder keeps EVERY token, so its embeddings differ from SimCSEGSModel.encode (which drops tokens "
    "with keep probability < 0.5). Export without --drop_proxy to keep the proxy."
)
ST_MODULE_FILE = "st_module.py"
ST_MODULE_TYPE = "st_module.SimCSEGSEncoder"


@dataclass
class ExportResult:
    output_dir: str
    pooler_type: str
    st_pooling: str | None
    dense: bool
    st_module: str | None = None  # the custom sentence-transformers module of a GS export (with its proxy)
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _load(model_or_path: SimCSEGSModel | str | os.PathLike) -> SimCSEGSModel:
    if isinstance(model_or_path, SimCSEGSModel):
        return model_or_path
    return load_checkpoint(model_or_path, hint="It is already a plain model: there is nothing to export.")


def export_model(
    model_or_path: SimCSEGSModel | str | os.PathLike, output_dir: str | os.PathLike, fmt: str = "st",
    overwrite: bool = False, drop_proxy: bool = False,
) -> ExportResult:
    """Write a checkpoint to ``output_dir`` for sentence-transformers and transformers; see the module docstring."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got '{fmt}'.")
    model = _load(model_or_path)
    cfg = model.config
    if model.tokenizer is None:
        raise ValueError("The model has no tokenizer attached: export a checkpoint folder (it holds the tokenizer).")
    # the whole model whenever inference drops tokens: the GS proxy, a control's keep budget, in-encoder pruning
    with_proxy = cfg.selects_at_inference and not drop_proxy
    pooler = cfg.pooler_type
    if fmt == "st" and pooler not in ST_POOLING and not with_proxy:
        raise ValueError(
            f"The '{pooler}' pooler averages two hidden layers, which sentence-transformers' Pooling cannot express. "
            "Export with fmt='hf' (--format hf) for the Hugging Face files only and pool as the README says."
        )
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder or pass overwrite=True.")
    out.mkdir(parents=True, exist_ok=True)

    source = None if isinstance(model_or_path, SimCSEGSModel) else str(model_or_path)
    if with_proxy:
        result = ExportResult(str(out), pooler, None, False)
        _write_gs_model(out, model, fmt, result)
    else:
        result = _write_backbone(out, model, fmt)
        if cfg.use_gs:
            result.warnings.append(GS_WARNING)
            warnings.warn(GS_WARNING, UserWarning, stacklevel=2)
    facts = read_card_facts(source) if source else {}
    title = "SimCSE-GS sentence encoder (export)" if with_proxy else "Exported SimCSE encoder"
    intro = [f"Exported by `simcse_gs.sharing.export` from `{source or 'an in-memory SimCSEGSModel'}`.", ""]
    if cfg.use_gs and not with_proxy:
        intro += ["**Warning: the token-keep proxy is not exported.** " + GS_WARNING, ""]
    if cfg.token_drop_rate > 0 and cfg.inference_budget is None:
        intro += [f"Trained with the {cfg.token_drop_heuristic}-drop control (`token_drop_rate` "
                  f"{cfg.token_drop_rate}); it drops nothing at inference, so the export is exact.", ""]
    usage = gs_export_usage() if with_proxy else _plain_usage(model, result)
    library = "sentence-transformers" if fmt == "st" else "transformers"
    write_model_card(out, cfg, title, usage, facts, library_name=library, intro=intro)
    result.files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return result


def _write_backbone(out: Path, model: SimCSEGSModel, fmt: str) -> ExportResult:
    """The backbone (+ the MLP as its pooler) with stock classes, and stock sentence-transformers modules."""
    cfg = model.config
    pooler = cfg.pooler_type
    has_mlp = model.mlp is not None
    dense = has_mlp and not cfg.mlp_only_train  # the head is part of the inference embedding
    # BERT's and RoBERTa's own pooler is Linear + Tanh over the first token: it can hold the head of a first-token
    # pooler, not a head on a mean (the original GS recipe's dropout-MLP on `avg`), which only the ST Dense can.
    hf_pooler = has_mlp and pooler in FIRST_TOKEN_POOLERS
    if dense and not hf_pooler and fmt == "hf":
        raise ValueError(
            f"This checkpoint applies its head (head_type {cfg.resolved_head_type}) to the '{pooler}' pooler at "
            "inference, which a plain Hugging Face folder cannot express. Export with fmt='st' (--format st): the "
            "head becomes a sentence-transformers Dense module."
        )
    plain = AutoModel.from_config(cfg.encoder_config("backbone"), add_pooling_layer=hf_pooler)
    missing, unexpected = plain.load_state_dict(model.backbone.state_dict(), strict=False)
    if unexpected or any(not key.startswith("pooler.") for key in missing):
        raise RuntimeError(f"Backbone weights do not fit a stock encoder: missing {missing}, unexpected {unexpected}.")
    if hf_pooler:
        plain.pooler.dense.load_state_dict(model.mlp.dense.state_dict())
    plain.save_pretrained(out)
    model.tokenizer.save_pretrained(out)
    result = ExportResult(str(out), cfg.pooler_type, ST_POOLING.get(cfg.pooler_type) if fmt == "st" else None,
                          dense and fmt == "st")
    if fmt == "st":
        _write_sentence_transformers(out, model, result)
    return result


def _write_gs_model(out: Path, model: SimCSEGSModel, fmt: str, result: ExportResult) -> None:
    """The whole model with its code; for ``st`` also the custom module that runs it in sentence-transformers."""
    model.save_pretrained(out)  # weights with the proxy, config with auto_map, the model's code (st_module.py too)
    if fmt == "st":
        (out / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": max_seq_length(model)}, indent=2) + "\n")
        (out / "modules.json").write_text(
            json.dumps([{"idx": 0, "name": "0", "path": "", "type": ST_MODULE_TYPE}], indent=2) + "\n")
        result.st_module = ST_MODULE_TYPE


def max_seq_length(model: SimCSEGSModel) -> int:
    """The truncation length :meth:`SimCSEGSModel.encode` uses by default."""
    return max_input_length(model.tokenizer, model.backbone.config)


def _write_sentence_transformers(out: Path, model: SimCSEGSModel, result: ExportResult) -> None:
    hidden = model.backbone.config.hidden_size
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    st_config = {"max_seq_length": max_seq_length(model), "do_lower_case": False}
    if model.mlp is None or model.config.pooler_type not in FIRST_TOKEN_POOLERS:  # no pooler weights written:
        # load the encoder without a pooling layer
        st_config["model_args"] = {"add_pooling_layer": False}
    (out / "sentence_bert_config.json").write_text(json.dumps(st_config, indent=2) + "\n")
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
    if pooler in FIRST_TOKEN_POOLERS and dense:
        return "`outputs.pooler_output` (the trained MLP head, Linear + Tanh over the first token)"
    if pooler in FIRST_TOKEN_POOLERS:
        extra = (" (`pooler_output` is the MLP head used only in training, as in unsupervised SimCSE)"
                 if has_mlp else " (`pooler_output` is not trained: do not use it)")
        return "`outputs.last_hidden_state[:, 0]` (the first token's vector)" + extra
    if pooler == "avg" and dense:
        return ("the attention-mask-weighted mean of `outputs.last_hidden_state` over tokens, followed by the trained "
                "head `tanh(W x + b)` whose weights are in `2_Dense/model.safetensors` (sentence-transformers applies "
                "it)")
    if pooler == "avg":
        return "the attention-mask-weighted mean of `outputs.last_hidden_state` over tokens"
    layers = "the first layer's and the last layer's" if pooler == "avg_first_last" else "the last two layers'"
    return (f"the attention-mask-weighted mean over tokens of the average of {layers} outputs (call the model with "
            "`output_hidden_states=True`; `hidden_states[0]` is the embedding output, `hidden_states[1]` the first "
            "layer's)")


def _eval_pooler(pooler: str, cfg: SimCSEGSConfig) -> str | None:
    """``evaluation.py --pooler`` that gives this export's embedding (its ``cls`` reads ``pooler_output``); None
    when no plain-encoder pooler does (a head on a mean)."""
    dense = cfg.resolved_head_type != "none" and not cfg.mlp_only_train
    if pooler in FIRST_TOKEN_POOLERS:
        return "cls" if dense else "cls_before_pooler"
    return None if dense else pooler


def _plain_usage(model: SimCSEGSModel, result: ExportResult) -> str:
    """How to load a backbone export (stock classes): which output is the embedding, for each library."""
    cfg = model.config
    has_mlp = model.mlp is not None
    lines = [
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
    ]
    eval_pooler = _eval_pooler(result.pooler_type, cfg)
    if eval_pooler is None:
        lines += ["`evaluation.py` reads plain encoders without a head on the mean: evaluate the training checkpoint "
                  "itself (`python evaluation.py --model_name_or_path CHECKPOINT`).", ""]
    else:
        lines += ["```bash", f"python evaluation.py --model_name_or_path PATH --pooler {eval_pooler}", "```", ""]
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


# ---------------------------------------------------------------------------------------------- command

PROG = "export.py"
CLI_DOC = """Export a checkpoint as a sentence-transformers + Hugging Face folder (a GS model keeps its proxy).

    python export.py --model_name_or_path outputs/unsup-simcse --output_dir exported/unsup-simcse
    python export.py --model_name_or_path outputs/unsup-gs --output_dir exported/unsup-gs   # trust_remote_code
    python export.py --model_name_or_path outputs/avg-top2 --output_dir exported/avg-top2 --format hf
"""


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """``export.py``: write an export folder (exit codes: simcse_gs.cli)."""
    parser = argparse.ArgumentParser(prog=prog, description=CLI_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True, help="A checkpoint folder written by train.py.")
    parser.add_argument("--output_dir", required=True, help="The export folder (new or empty).")
    parser.add_argument("--format", choices=FORMATS, default="st",
                        help="st: Hugging Face + sentence-transformers files (default); hf: Hugging Face files only.")
    parser.add_argument("--overwrite", action="store_true", help="Write into a non-empty --output_dir.")
    parser.add_argument("--drop_proxy", action="store_true",
                        help="GS checkpoints: export the backbone alone with stock classes (no custom code). It keeps "
                             "every token, so its embeddings differ from the GS model's.")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # printed below, prominently
        try:
            result = export_model(args.model_name_or_path, args.output_dir, args.format, args.overwrite,
                                  args.drop_proxy)
        except (ValueError, ModelFolderError, FileExistsError) as err:  # a bad checkpoint, pooler or --output_dir
            return fail(prog, err, USAGE_ERROR)
        except OSError as err:  # the disk, while writing
            return fail(prog, err, RUN_FAILURE)
    for message in result.warnings:
        print(f"WARNING: {message}", file=sys.stderr)
    pooling = f", sentence-transformers pooling '{result.st_pooling}'" if result.st_pooling else ""
    dense = " + Dense(tanh) MLP" if result.dense else ""
    if result.st_module:
        pooling = (f", sentence-transformers module {result.st_module} (proxy and inference keep rule; load with "
                   "trust_remote_code=True)")
    print(f"Exported pooler '{result.pooler_type}'{pooling}{dense} to {result.output_dir}:")
    for name in result.files:
        print(f"  {name}")
    return 0


def console() -> int:
    """The ``simcse-gs-export`` console command: :func:`main` under that name."""
    return main(prog="simcse-gs-export")
