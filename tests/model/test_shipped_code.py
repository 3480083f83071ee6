"""``simcse_gs/model/`` is exactly the code a checkpoint ships: flat, importing only itself."""

from __future__ import annotations

import ast

from simcse_gs.model import SimCSEGSModel
from tests.conftest import REPO, build

MODEL_DIR = REPO / "simcse_gs" / "model"


def test_a_saved_checkpoint_carries_exactly_the_model_folder(tiny_bert_dir, tmp_path):
    build(tiny_bert_dir, use_gs=True).save_pretrained(tmp_path / "ckpt")
    carried = sorted(p.name for p in (tmp_path / "ckpt").glob("*.py"))
    assert carried == sorted(p.name for p in MODEL_DIR.glob("*.py"))
    assert SimCSEGSModel.save_code(tmp_path / "code") and \
        sorted(p.name for p in (tmp_path / "code").iterdir()) == carried


def test_the_model_folder_is_flat_and_imports_nothing_else_of_simcse_gs():
    assert not [p for p in MODEL_DIR.iterdir() if p.is_dir() and p.name != "__pycache__"]
    for path in MODEL_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative: only siblings (from .x import y)
                    assert node.level == 1 and node.module, f"{path.name}: from {'.' * node.level}{node.module}"
                else:
                    assert not (node.module or "").startswith(("simcse_gs", "senteval")), f"{path.name}: {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(("simcse_gs", "senteval")), f"{path.name}: {alias.name}"
