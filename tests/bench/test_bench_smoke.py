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
    assert set(train_step["ratios"]) == {f"{v}/plain" for v in ("patch", "gs_sdpa", "gs_eager", "proxy", "proxy_fb",
                                                                  "pruned", "pruned_distill")}
    assert any(line.startswith("pruned (keep 0.5 after layer 1) <= 0.85 x plain") for line in train_step["targets"])
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


def test_pruned_encode_benchmark_times_every_method_against_the_backbone(tiny_bert_dir, tmp_path):
    import sys

    from tests.conftest import REPO

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench.pruned_encode import main

    methods = ["attention@1=0.5", "merge@1=0.5", "proxy=0.7"]
    result = main(["--quick", "--model-path", tiny_bert_dir, "--methods", *methods, "--json", str(tmp_path / "b.json")])
    assert set(result["sentences_per_s"]) == {"backbone", *methods}
    assert result["extra"]["attention@1=0.5"]["max_abs_diff"] < 1e-5  # pruned == masked
    assert 0 < result["extra"]["attention@1=0.5"]["flops_ratio"] < 1
    assert 0.5 <= result["kept"]["attention@1=0.5"] < 0.8 and 0.7 <= result["kept"]["proxy=0.7"] < 0.9
    assert (tmp_path / "b.json").is_file() and "x the backbone" in result["summary"][0]


def test_transfer_suite_benchmark_splits_embedding_from_the_classifier(tiny_bert_dir, sts_data, tmp_path):
    from tests.senteval.conftest import write_evaluation_data

    data = write_evaluation_data(tmp_path / "downstream", Path(sts_data))
    result = _bench("transfer_suite").main(["--model-path", tiny_bert_dir, "--senteval-data", str(data),
                                            "--tasks", "MR", "TREC", "MRPC", "--json", str(tmp_path / "t.json")])
    assert set(result["per_task"]) == {"MR", "TREC", "MRPC"}
    totals = result["totals"]
    assert totals["encode_s"] == pytest.approx(sum(t["encode_s"] for t in result["per_task"].values()), abs=0.01)
    assert totals["encode_s"] > 0 and totals["classifier_s"] > 0
    assert 0 < result["embed_share"] < 1 and 0 < result["classifier_share"] < 1
    assert result["wall_s"] >= totals["encode_s"] + totals["classifier_s"]
    assert (tmp_path / "t.json").is_file() and result["summary"][0].startswith("transfer suite (fasttest, 3 tasks")
