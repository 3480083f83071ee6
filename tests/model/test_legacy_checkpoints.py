"""Checkpoints saved by the code before the package redesign load and encode exactly as that code did.

The folders in tests/fixtures/legacy_checkpoints were written by commit b86dbef's ``save_pretrained`` (their README
says how); each holds the embeddings that code computed. Their state-dict keys, config.json keys and auto_map must
keep working, through our loader and through ``AutoModel`` after a re-save with today's code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModel

from simcse_gs.model import MODEL_SETTINGS, SimCSEGSModel
from tests.conftest import REPO, SENTENCES

LEGACY = REPO / "tests" / "fixtures" / "legacy_checkpoints"
HF_KEYS = {"architectures", "auto_map", "backbone_config", "proxy_config", "dtype", "model_type",
           "transformers_version", "special_token_ids"}  # PretrainedConfig's own keys, the two nested configs and
# the ids read from the tokenizer: the rest of config.json is settings
# The expected vectors were written on one CPU; another CPU's kernels round differently (2.7e-7 measured on an AMD
# EPYC against the Intel Xeon that wrote them), so "identically" means equal to float32 rounding, far below any
# change a lost or renamed weight or setting would make.
ATOL, RTOL = 1e-5, 1e-4
FOLDERS = sorted(p for p in LEGACY.iterdir() if (p / "config.json").is_file())


def expected(folder: Path) -> list[tuple[dict, torch.Tensor]]:
    options = json.loads((folder / "expected_options.json").read_text())
    tensors = load_file(str(folder / "expected_embeddings.safetensors"))
    return [(opts, tensors[f"encode_{i}"]) for i, opts in enumerate(options)]


def test_there_are_legacy_checkpoints_of_every_kind():
    names = {p.name for p in FOLDERS}
    assert {"bert-gs-soft-cls", "bert-gs-topk-avg-renorm", "bert-gs-reinforce-original", "bert-idf-drop",
            "roberta-gs-hard-concrete"} <= names


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_a_legacy_checkpoint_loads_with_every_weight_and_encodes_identically(folder):
    model = SimCSEGSModel.from_pretrained(folder)
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        saved_keys = set(f.keys())
    assert saved_keys == set(model.state_dict())  # nothing missing, nothing new, nothing renamed
    config = json.loads((folder / "config.json").read_text())
    written = set(config) - HF_KEYS
    assert written <= {s.name for s in MODEL_SETTINGS}  # every setting key it wrote is one we still read
    for options, want in expected(folder):
        got = model.encode(SENTENCES, batch_size=4, **options)
        torch.testing.assert_close(got, want, atol=ATOL, rtol=RTOL, msg=f"{folder.name} {options}")


@pytest.mark.parametrize("folder", FOLDERS[:2], ids=[p.name for p in FOLDERS[:2]])
def test_a_resaved_legacy_checkpoint_keeps_its_keys_and_loads_with_its_new_code(folder, tmp_path):
    model = SimCSEGSModel.from_pretrained(folder)
    model.save_pretrained(tmp_path / "resaved")
    old, new = (json.loads((f / "config.json").read_text()) for f in (folder, tmp_path / "resaved"))
    assert new["auto_map"] == old["auto_map"] == {"AutoConfig": "modeling.SimCSEGSConfig",
                                                  "AutoModel": "modeling.SimCSEGSModel"}
    assert set(old) <= set(new)  # nothing it wrote is dropped; settings added since come in at their defaults
    defaults = {s.name: s.default for s in MODEL_SETTINGS}
    assert {k: new[k] for k in set(new) - set(old)} == {k: defaults[k] for k in set(new) - set(old)}
    auto = AutoModel.from_pretrained(tmp_path / "resaved")  # the installed class (a Python without simcse_gs runs
    # the folder's own code: tests/sharing/test_export.py)
    for options, want in expected(folder):
        torch.testing.assert_close(auto.encode(SENTENCES, batch_size=4, **options), want, atol=ATOL, rtol=RTOL)
