"""Every shipped config parses into the training arguments, with the GS settings where the name says GS."""

from __future__ import annotations

from pathlib import Path

import pytest

import train
from simcse_gs.data_files import TRAIN_FILES

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_parses(path, tmp_path):
    model_args, data_args, training_args = train.parse_args(
        [str(path), "--output_dir", str(tmp_path / "out"), "--fp16", "false"]
    )
    assert model_args.use_gs == path.stem.endswith("-gs")
    assert (model_args.token_drop_rate > 0) == path.stem.endswith("-random-drop")
    assert data_args.max_seq_length == 32 and model_args.temp == 0.05
    assert data_args.train_file.endswith(".txt" if "unsup" in path.stem else ".csv")
    # a path a user has: the repository's data/ folder (README, Install), never one machine's layout
    assert data_args.train_file.startswith("data/") and ".." not in data_args.train_file
    assert Path(data_args.train_file).name in TRAIN_FILES


def test_there_is_a_config_per_row_of_the_original_table():
    names = {p.stem for p in CONFIGS}
    for setting in ("unsup", "sup"):
        for model in ("bert-base", "roberta-base", "minilm"):
            for method in ("simcse", "gs"):
                stem = f"cpu-minilm-{setting}-{method}" if model == "minilm" else f"{setting}-{model}-{method}"
                assert stem in names
