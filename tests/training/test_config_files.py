"""Every shipped config parses into the training arguments, with the GS settings where the name says GS, and the
original study's rows carry its recipe with every key traced to the original file it comes from."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import train
from simcse_gs.data_files import TRAIN_FILES

ROOT = Path(__file__).resolve().parents[2] / "configs"
CONFIGS = sorted(ROOT.rglob("*.yaml"))
ROWS = [f"{setting}-{model}-{method}" for setting in ("unsup", "sup") for model in ("bert", "roberta")
        for method in ("gs", "plain")]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_parses(path, tmp_path):
    model_args, data_args, training_args = train.parse_args(
        [str(path), "--output_dir", str(tmp_path / "out"), "--fp16", "false"]
    )
    assert model_args.use_gs == path.stem.endswith(("-gs", "-topk", "-hard-concrete"))  # the learned proxies
    assert (model_args.token_drop_rate > 0) == path.stem.endswith("-drop")  # the random / IDF controls
    assert data_args.max_seq_length == 32 and model_args.temp == 0.05
    supervised = f"-{path.stem}".count("-sup-") > 0  # NLI triples; the rest train on Wikipedia sentences
    assert data_args.train_file.endswith(".csv" if supervised else ".txt")
    # a path a user has: the repository's data/ folder (README, Install), never one machine's layout
    assert data_args.train_file.startswith("data/") and ".." not in data_args.train_file
    assert Path(data_args.train_file).name in TRAIN_FILES


@pytest.mark.parametrize("folder", ["original", "simcse-paper"])
def test_there_is_a_config_per_row_of_the_original_table(folder):
    assert sorted(p.stem for p in (ROOT / folder).glob("*.yaml")) == sorted(ROWS)
    for setting in ("unsup", "sup"):
        for method in ("simcse", "gs"):
            assert (ROOT / f"cpu-minilm-{setting}-{method}.yaml").is_file()


@pytest.mark.parametrize("row", ROWS)
def test_original_rows_follow_the_original_recipe_and_cite_it(row, tmp_path):
    path = ROOT / "original" / f"{row}.yaml"
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):  # every key says which original file it comes from
            assert " # " in line and any(src in line for src in (".sh", ".py")), line
    model_args, data_args, args = train.parse_args([str(path), "--output_dir", str(tmp_path / "o"), "--fp16", "false"])
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps
    assert batch == (64 if row.startswith("unsup-bert") else 512)
    assert args.per_device_train_batch_size <= 256  # the original ran 512 as 2 x 256
    assert model_args.pooler_type == "avg" and model_args.head_type == "dropout_mlp" and not model_args.mlp_only_train
    assert data_args.pad_to_max_length and args.num_train_epochs == 3 and args.weight_decay == 0.1
    assert args.warmup_steps == 0.06 and args.head_learning_rate == args.learning_rate
    assert args.eval_steps == 625 // (batch // 64) and data_args.eval_split == "train_and_dev"
    if model_args.use_gs:
        assert model_args.proxy_head == "two_layer" and model_args.tau_schedule_unit == "example"
        assert model_args.gs_shared_sample == row.startswith("unsup") and model_args.gs_drop_special_tokens
        assert model_args.proxy_model_name_or_path.startswith("distil")
    simcse = yaml.safe_load((ROOT / "simcse-paper" / f"{row}.yaml").read_text())
    assert simcse["pooler_type"] == "cls"  # the SimCSE paper's recipe differs: labelled and kept apart
