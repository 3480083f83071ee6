"""simcse_gs.model_folder: the one place that says what a model path is (kind, sound weights, max length)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoTokenizer

from simcse_gs.evaluation.evaluate import load_model, parse_args
from simcse_gs.evaluation.hf_encoder import HFEncoder
from simcse_gs.evaluation.keep_map import compute_keep_maps
from simcse_gs.model import SimCSEGSModel
from simcse_gs.model_folder import (
    ModelFolderError,
    WrongModelKindError,
    inspect_model,
    load_checkpoint,
    looks_local,
    max_input_length,
)
from simcse_gs.sharing.export import export_model
from simcse_gs.training.resume import CheckpointError
from tests.conftest import REPO, build


@pytest.fixture(scope="module")
def checkpoint(tiny_bert_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mf") / "gs"
    build(tiny_bert_dir, use_gs=True, pooler_type="avg").save_pretrained(out)
    return out


def test_the_three_kinds_are_told_apart(checkpoint, tiny_bert_dir, tmp_path):
    gs = inspect_model(checkpoint)
    assert (gs.kind, gs.local, gs.use_gs, gs.model_type) == ("simcse_gs", True, True, "simcse_gs")
    plain = inspect_model(tiny_bert_dir)
    assert (plain.kind, plain.use_gs, plain.st_max_seq_length) == ("hf", False, None)
    st = tmp_path / "st"
    shutil.copytree(tiny_bert_dir, st)
    (st / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "",
                                                  "type": "sentence_transformers.models.Transformer"}]))
    (st / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 40}))
    folder = inspect_model(st)
    assert (folder.kind, folder.st_max_seq_length) == ("sentence_transformers", 40)
    with pytest.raises(WrongModelKindError, match=r"holds a 'bert' model, not a SimCSE-GS checkpoint .*\. Do this\."):
        inspect_model(st, expect="simcse_gs", hint="Do this.")


def test_paths_that_look_local_never_reach_the_hub(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(transformers.PretrainedConfig, "get_config_dict",
                        lambda name, **kw: (asked.append(name), ({"model_type": "bert"}, {}))[1])
    for name in (str(tmp_path / "nowhere"), "./nowhere", "../nowhere", "~/nowhere", "a/b/c"):
        assert looks_local(name)
        with pytest.raises(ModelFolderError, match=r"Model folder not found: .* \(a local path"):
            inspect_model(name)
    assert asked == []
    hub = inspect_model("org/model")  # one slash, not on disk: a hub name, its config only
    assert (hub.kind, hub.local) == ("hf", False) and asked == ["org/model"]
    assert not looks_local("bert-base-uncased") and not looks_local("org/model")


def test_weights_are_checked_before_loading(checkpoint, tiny_bert_dir, tmp_path):
    sharded = tmp_path / "sharded"
    shutil.copytree(checkpoint, sharded)
    (sharded / "model.safetensors").rename(sharded / "model-00001-of-00002.safetensors")
    save_file({"x": torch.zeros(1)}, str(sharded / "model-00002-of-00002.safetensors"))
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    assert inspect_model(sharded).kind == "simcse_gs"  # every shard present and sound
    (sharded / "model-00002-of-00002.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ModelFolderError, match=r"model-00002-of-00002\.safetensors is not a valid safetensors"):
        inspect_model(sharded)
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelFolderError, match=r"names 2 shard\(s\) but \['model-00002-of-00002.safetensors'\]"):
        inspect_model(sharded)
    (sharded / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    with pytest.raises(ModelFolderError, match="names no weight files"):
        inspect_model(sharded)
    (sharded / "config.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match=r"config\.json cannot be read as JSON"):
        inspect_model(sharded)

    # a plain encoder may bring pytorch_model.bin (transformers loads it weights_only); a checkpoint may not
    for source, refused in ((tiny_bert_dir, False), (checkpoint, True)):
        folder = tmp_path / f"pickle-{refused}"
        shutil.copytree(source, folder)
        (folder / "model.safetensors").unlink()
        (folder / "pytorch_model.bin").write_bytes(b"never unpickled")
        if refused:
            with pytest.raises(ModelFolderError, match="only has pytorch_model.bin, a pickle file"):
                inspect_model(folder)
        else:
            assert inspect_model(folder).kind == "hf"


def test_a_checkpoint_without_tokenizer_files_is_refused_by_name(checkpoint, tmp_path):
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(checkpoint, folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(ModelFolderError, match="has no tokenizer files"):
        load_checkpoint(folder)


@pytest.mark.parametrize(("model_type", "positions", "tokenizer_limit", "expected"), [
    ("bert", 512, 512, 512),        # BERT uses every position
    ("roberta", 514, 512, 512),     # RoBERTa's positions start after the padding index (pad_token_id 1)
    ("roberta", 64, 1e30, 62),      # a tokenizer without a limit: the positions decide
    ("bert", 512, 128, 128),        # a tokenizer limit below the positions
])
def test_max_input_length_rule(model_type, positions, tokenizer_limit, expected):
    tokenizer = type("Tok", (), {"model_max_length": tokenizer_limit})()
    config = {"model_type": model_type, "max_position_embeddings": positions, "pad_token_id": 1}
    assert max_input_length(tokenizer, config) == expected
    assert max_input_length(tokenizer, transformers.AutoConfig.for_model(**config)) == expected


@pytest.mark.parametrize("fixture", ["tiny_bert_dir", "tiny_roberta_dir"])
def test_every_command_truncates_at_the_same_length(request, fixture, tmp_path):
    """encode, evaluation.py, export's sentence_bert_config.json, keep maps and HFEncoder agree on the limit."""
    backbone = request.getfixturevalue(fixture)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    model = build(backbone, use_gs=True, pooler_type="avg")
    limit = max_input_length(model.tokenizer, model.backbone.config)
    assert limit == (64 if fixture == "tiny_bert_dir" else 62)
    assert HFEncoder.from_pretrained(backbone).limit == limit
    model.save_pretrained(tmp_path / "ckpt")
    loaded = load_model(str(tmp_path / "ckpt"), parse_args(["--device", "cpu"]), torch.device("cpu"))
    assert loaded.max_length == limit
    long_sentence = " ".join(["guitar"] * 200)
    (keep_map,) = compute_keep_maps(model, [long_sentence])
    assert len(keep_map.tokens) == limit  # truncated at the limit, special tokens included
    assert len(tokenizer(long_sentence, truncation=True, max_length=limit)["input_ids"]) == limit
    assert model.encode([long_sentence]).shape == (1, 32)  # no position overrun at the limit
    export_model(build(backbone, use_gs=False, pooler_type="avg"), tmp_path / "plain-export")
    assert json.loads((tmp_path / "plain-export" / "sentence_bert_config.json").read_text())["max_seq_length"] == limit


def test_one_loading_path():
    """Only simcse_gs/model_folder.py parses safetensors headers, asks the hub for configs, or derives the max
    length from the position embeddings; everything else calls it."""
    owned = re.compile(r"safe_open\(|get_config_dict\(|max_position_embeddings\s*-|_OFFSET_POSITION_TYPES")
    files = [REPO / "train.py", REPO / "evaluation.py", REPO / "export.py", *REPO.glob("simcse_gs/*.py"),
             *REPO.glob("scripts/*.py"), *REPO.glob("bench/*.py")]
    offenders = [f"{path.relative_to(REPO)}:{number}" for path in files if path.name != "model_folder.py"
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if owned.search(line)]
    assert offenders == []


def damage(folder: Path, how: str) -> None:
    weights = folder / "model.safetensors"
    if how == "no_weights":
        weights.unlink()
    elif how == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "garbage":
        weights.write_bytes(b"\x00" * 64)
    elif how == "pickle_only":
        weights.unlink()
        (folder / "pytorch_model.bin").write_bytes(b"never unpickled")
    elif how == "no_config":
        (folder / "config.json").unlink()
    elif how == "plain_bert":
        config = (folder / "config.json").read_text().replace('"simcse_gs"', '"bert"')
        (folder / "config.json").write_text(config)


@pytest.mark.parametrize(
    "how, message",
    [
        ("no_weights", r"has no weights \(model\.safetensors is missing\)\. The training run was probably stopped"),
        ("truncated", r"model\.safetensors is not a valid safetensors file .*truncated, overwritten"),
        ("garbage", r"model\.safetensors is not a valid safetensors file"),
        ("pickle_only", r"only has pytorch_model\.bin, a pickle file, which this project does not load"),
        ("no_config", r"has no config\.json, so it is not a model folder"),
        ("plain_bert", r"holds a 'bert' model, not a SimCSE-GS checkpoint.*--model_name_or_path"),
    ],
)
def test_damaged_checkpoint_folder_is_named(saved_model, tmp_path, how, message):
    folder = tmp_path / "ckpt"
    shutil.copytree(saved_model, folder)
    damage(folder, how)
    with pytest.raises(CheckpointError, match=message) as err:
        SimCSEGSModel.from_pretrained(folder)
    assert str(folder) in str(err.value)


def test_missing_checkpoint_folder_does_not_ask_the_hub(tmp_path):
    with pytest.raises(CheckpointError, match=r"Model folder not found: .*nowhere \(a local path"):
        SimCSEGSModel.from_pretrained(tmp_path / "nowhere")
