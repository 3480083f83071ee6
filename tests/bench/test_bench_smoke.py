"""Smoke test of the benchmark scripts' --quick modes (tiny random BERT; the numbers are not checked, the code is)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench(name: str):
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module(f"bench.{name}")


@pytest.mark.slow
def test_bench_quick_modes(tiny_bert_dir, tmp_path):
    train_step = _bench("train_step").main(["--quick", "--model-path", tiny_bert_dir, "--memory", "saved",
                                            "--json", str(tmp_path / "ts.json")])
    assert set(train_step["ratios"]) == {f"{v}/plain" for v in ("patch", "gs_sdpa", "gs_eager", "proxy", "proxy_fb")}
    assert train_step["patch_identity_loss_diff"] < 1e-5
    assert all(v > 0 for v in train_step["saved_mib"].values())

    scaling = _bench("scaling").main(["--quick", "--model-path", tiny_bert_dir])
    assert len(scaling["eval"]) == 2 and len(scaling["train"]) == 4

    gpu = _bench("device.gpu_precision").main(["--quick", "--device", "cpu", "--precisions", "fp32,bf16",
                                        "--out-dir", str(tmp_path / "gpu")])
    assert not gpu["errors"] and (tmp_path / "gpu" / "gpu_precision.md").is_file()
    assert any(r.get("variant") == "gs_sdpa" for r in gpu["timing"])

    precision = _bench("precision_cpu").main(["--quick", "--model-path", tiny_bert_dir, "--sts-rounds", "2"])
    assert precision["sts"]["max_abs_diff"] <= 0.05 and set(precision["sts"]["median_s"]) == {"fp32", "bf16"}
    assert set(precision["train"]["median_s"]) == {"plain_fp32", "plain_bf16", "gs_fp32", "gs_bf16"}

    pytest.importorskip("sentence_transformers")
    vs = _bench("vs_sentence_transformers").main(["--quick", "--model-path", tiny_bert_dir])
    assert vs["loss_diff"] < 1e-4
    assert vs["sts_max_diff"] < 1e-4


def test_pruned_encode_benchmark_runs_and_checks_equality(tiny_bert_dir, tmp_path):
    import sys

    from tests.conftest import REPO

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench.pruned_encode import main

    result = main(["--quick", "--model-path", tiny_bert_dir, "--rates", "0.7", "--json", str(tmp_path / "b.json")])
    run = result["rates"][0.7]
    assert run["max_abs_diff"] < 1e-5 and 0.7 <= run["kept"] < 0.9
    assert set(run["sentences_per_s"]) == {"masked", "pruned", "backbone"}
    assert (tmp_path / "b.json").is_file() and "pruned/masked" in result["summary"][0]
