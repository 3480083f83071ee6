"""evaluation.py: tables, JSON, GS detection and keep statistics, one-line errors (tiny models, tiny STS data)."""

from __future__ import annotations

import json
import math
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from simcse_gs.evaluation import evaluate as evaluation
from simcse_gs.evaluation.evaluate import evaluate, main
from simcse_gs.evaluation.hf_encoder import HFEncoder
from simcse_gs.evaluation.sts import DEV_COLUMNS, ORIGINAL_GS_COLUMNS, SIMCSE_COLUMNS, split_summary
from simcse_gs.model import SimCSEGSModel
from tests.conftest import build

# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def gs_checkpoint(tiny_bert_dir, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("eval-tiny-gs")
    torch.manual_seed(0)
    SimCSEGSModel.from_backbone(tiny_bert_dir, use_gs=True, pooler_type="avg").save_pretrained(out)
    return str(out)


EVAL_FLAGS = ("--no_progress", "--device", "cpu", "--batch_size", "8")


def run_eval(*args: str) -> dict:
    return evaluation.evaluate([*args, *EVAL_FLAGS])


def table_rows(text: str, model: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith(f"| {model} |")]


# ------------------------------------------------------------------------------------------------ tables, JSON


def test_plain_encoder_test_mode_prints_both_tables_and_writes_json(tiny_bert_dir, sts_data, tmp_path, capsys):
    out_json = tmp_path / "sub" / "eval.json"
    payload = run_eval("--model_name_or_path", tiny_bert_dir, "--mode", "test", "--senteval_data", sts_data,
                       "--output_json", str(out_json))
    out = capsys.readouterr().out
    assert "| model | STS12 | STS13 | STS14 | STS15 | STS16 | STS-B | SICK-R | Avg. |" in out
    assert "| model | " + " | ".join(ORIGINAL_GS_COLUMNS) + " |" in out
    simcse_row, gs_row, stats_row = table_rows(out, tiny_bert_dir)
    saved = json.loads(out_json.read_text())
    record = saved["models"][0]
    assert saved["tasks"] == ["STS12", "STS13", "STS14", "STS15", "STS16", "STSBenchmark", "SICKRelatedness"]
    assert record["kind"] == "hf" and record["pooler"] == "avg" and record["keep_stats"] is None
    assert record["wall_time_s"] >= record["eval_time_s"] > 0
    # printed numbers are the JSON's, and the JSON's are the raw results x 100
    assert [float(v) for v in simcse_row[1:]] == [record["simcse"][k] for k in SIMCSE_COLUMNS]
    assert [float(v) for v in gs_row[1:]] == [record["original_gs"][k] for k in ORIGINAL_GS_COLUMNS]
    results = record["results"]
    assert record["simcse"]["stsb"] == round(100 * results["STSBenchmark"]["test"]["spearman"], 2)
    assert record["simcse"]["sts13"] == round(100 * results["STS13"]["all"]["spearman"]["all"], 2)
    assert record["original_gs"]["sickrelatedness"] == round(100 * results["SICKRelatedness"]["all"]["spearman"], 2)
    assert stats_row[1:6] == ["hf", "avg", "-", "-", "-"]
    assert payload["models"][0]["simcse"] == record["simcse"]


def test_gs_checkpoint_is_detected_and_gets_keep_statistics(tiny_bert_dir, gs_checkpoint, sts_data, tmp_path, capsys):
    out_json = tmp_path / "dev.json"
    run_eval("--model_name_or_path", gs_checkpoint, tiny_bert_dir, "--mode", "dev", "--senteval_data", sts_data,
             "--output_json", str(out_json), "--max_length", "1000")
    out = capsys.readouterr().out
    assert "| model | STS-B dev | SICK-R dev | Avg. |" in out
    assert "STS12" not in out  # dev mode: STS-B and SICK-R dev only
    gs, plain = json.loads(out_json.read_text())["models"]
    assert gs["kind"] == "simcse_gs" and gs["use_gs"] and gs["pooler"] == "avg"
    assert plain["kind"] == "hf" and plain["keep_stats"] is None
    assert (gs["max_length"], plain["max_length"]) == (64, 64)  # --max_length capped by 64 position embeddings
    assert set(gs["results"]) == {"STSBenchmark", "SICKRelatedness"}
    assert set(gs["results"]["STSBenchmark"]) == {"dev"}
    assert gs["dev"] == split_summary(gs["results"], "dev")
    # the proxy head is zero-initialised: p = 0.5 for every decided token, which the p >= 0.5 rule keeps
    keep = gs["keep_stats"]
    assert keep["keep_rate"] == pytest.approx(1.0)
    assert keep["keep_prob"] == pytest.approx(0.5)
    assert keep["keep_entropy"] == pytest.approx(math.log(2), abs=1e-4)
    gs_dev_row, gs_stats_row = table_rows(out, gs_checkpoint)
    assert [float(v) for v in gs_dev_row[1:]] == [gs["dev"][k] for k in DEV_COLUMNS]
    assert gs_stats_row[1:6] == ["simcse_gs", "avg", "1.0000", "0.5000", "0.6931"]
    assert len(table_rows(out, tiny_bert_dir)) == 2


def test_partial_task_list_skips_the_original_gs_table(tiny_bert_dir, sts_data, capsys):
    payload = run_eval("--model_name_or_path", tiny_bert_dir, "--tasks", "STSBenchmark", "STS12",
                       "--senteval_data", sts_data)
    out = capsys.readouterr().out
    record = payload["models"][0]
    assert payload["tasks"] == ["STS12", "STSBenchmark"]  # canonical order
    assert record["original_gs"] is None and set(record["simcse"]) == {"sts12", "stsb"}
    assert "(needs all seven tasks; not computed)" in out
    assert table_rows(out, tiny_bert_dir)[0][2:] == ["-", "-", "-", "-", f"{record['simcse']['stsb']:.2f}",
                                                    "-", "-"]


def test_simcse_protocol_encodes_only_test_splits(tiny_bert_dir, sts_data):
    both = run_eval("--model_name_or_path", tiny_bert_dir, "--senteval_data", sts_data)["models"][0]
    simcse = run_eval("--model_name_or_path", tiny_bert_dir, "--senteval_data", sts_data,
                      "--protocol", "simcse")["models"][0]
    assert simcse["simcse"] == both["simcse"]
    assert simcse["original_gs"] is None and both["original_gs"] is not None
    assert simcse["sentences_encoded"] < both["sentences_encoded"]
    assert set(simcse["results"]["STSBenchmark"]) == {"test"}


# ------------------------------------------------------------------------------------------------ HFEncoder


# ------------------------------------------------------------------------------------------------ errors


def expect_error(capsys, *args: str) -> str:
    assert evaluation.main([*args, *EVAL_FLAGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evaluation.py: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


def copy_model(src: str, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_error_missing_weights(tiny_bert_dir, gs_checkpoint, sts_data, tmp_path, capsys):
    for src, name in ((tiny_bert_dir, "plain"), (gs_checkpoint, "gs")):
        folder = copy_model(src, tmp_path / name)
        (folder / "model.safetensors").unlink()
        msg = expect_error(capsys, "--model_name_or_path", str(folder), "--mode", "dev", "--senteval_data", sts_data)
        assert f"{folder} has no weights (model.safetensors is missing)" in msg


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_error_corrupted_safetensors(gs_checkpoint, sts_data, tmp_path, capsys, damage):
    folder = copy_model(gs_checkpoint, tmp_path / "ckpt")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else np.random.default_rng(0).bytes(4096))
    msg = expect_error(capsys, "--model_name_or_path", str(folder), "--mode", "dev", "--senteval_data", sts_data)
    assert f"{weights} is not a valid safetensors file" in msg


def test_error_bad_model_paths(tiny_bert_dir, sts_data, tmp_path, capsys, monkeypatch):
    missing = tmp_path / "no-such-model"
    msg = expect_error(capsys, "--model_name_or_path", str(missing), "--mode", "dev", "--senteval_data", sts_data)
    assert f"Model folder not found: {missing} (a local path, so the hub is not asked)" in msg
    a_file = tmp_path / "weights.bin"
    a_file.write_bytes(b"x")
    msg = expect_error(capsys, "--model_name_or_path", str(a_file), "--mode", "dev", "--senteval_data", sts_data)
    assert "is a file" in msg
    msg = expect_error(capsys, "--model_name_or_path", str(tmp_path), "--mode", "dev", "--senteval_data", sts_data)
    assert "has no config.json, so it is not a model folder" in msg
    # not a local path: treated as a hub name (no network here, so the lookup is stubbed to fail like offline)
    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nmore detail")

    with monkeypatch.context() as patch:
        patch.setattr(transformers.PretrainedConfig, "get_config_dict", offline)
        msg = expect_error(capsys, "--model_name_or_path", "org/model", "--mode", "dev", "--senteval_data", sts_data)
    assert "org/model: no such local folder, and it could not be loaded from the Hugging Face Hub (OSError" in msg
    # the first model is fine, the second is not: the error still ends the run cleanly
    msg = expect_error(capsys, "--model_name_or_path", tiny_bert_dir, str(missing), "--mode", "dev",
                       "--senteval_data", sts_data)
    assert "Model folder not found" in msg


def test_error_missing_data(tiny_bert_dir, sts_data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SENTEVAL_DATA", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    msg = expect_error(capsys, "--model_name_or_path", tiny_bert_dir, "--senteval_data", str(empty))
    assert "SentEval data not found" in msg and "download_dataset.sh" in msg
    # one file missing: found before any model is loaded
    partial = tmp_path / "partial"
    shutil.copytree(sts_data, partial)
    (partial / "STS" / "STS16-en-test" / "STS.gs.plagiarism.txt").unlink()
    msg = expect_error(capsys, "--model_name_or_path", str(tmp_path / "not-loaded"), "--senteval_data", str(partial))
    assert "STS.gs.plagiarism.txt" in msg
    # the environment variable is the fallback for --senteval_data
    monkeypatch.setenv("SENTEVAL_DATA", str(empty))
    assert "SENTEVAL_DATA" in expect_error(capsys, "--model_name_or_path", tiny_bert_dir)


def test_error_bad_task_choices(tiny_bert_dir, sts_data, capsys):
    msg = expect_error(capsys, "--model_name_or_path", tiny_bert_dir, "--mode", "dev", "--tasks", "STS12",
                       "--senteval_data", sts_data)
    assert "--mode dev" in msg
    assert "unknown task(s) STS17" in expect_error(capsys, "--model_name_or_path", tiny_bert_dir, "--tasks", "STS17")
    assert "--model_name_or_path is required" in expect_error(capsys, "--senteval_data", sts_data)


# ------------------------------------------------------------------------------------------------ the numbers


def _sp(value: float) -> float:
    return round(100 * value, 2)


def test_every_table_column_is_the_per_task_result(tiny_bert_dir, gs_checkpoint, sts_data, capsys):
    """Both test tables and the dev table, recomputed here from SentEval's per-task results (not through
    simcse_gs.evaluation.sts), equal what evaluation.py prints and writes."""
    payload = run_eval("--model_name_or_path", tiny_bert_dir, gs_checkpoint, "--mode", "test",
                       "--senteval_data", sts_data)
    out = capsys.readouterr().out
    years = ("STS12", "STS13", "STS14", "STS15", "STS16")
    for record in payload["models"]:
        res = record["results"]
        year_cols = [_sp(res[y]["all"]["spearman"]["all"]) for y in years]  # one Spearman over the pooled subsets
        stsb_test = _sp(res["STSBenchmark"]["test"]["spearman"])
        sick_test = _sp(res["SICKRelatedness"]["test"]["spearman"])
        simcse = [*year_cols, stsb_test, sick_test]
        simcse.append(round(sum(simcse) / 7, 2))  # the mean of the seven rounded columns
        stsb_all, sick_all = _sp(res["STSBenchmark"]["all"]["spearman"]), _sp(res["SICKRelatedness"]["all"]["spearman"])
        stsb_train_dev = _sp(res["STSBenchmark"]["train_and_dev"]["spearman"])
        original = {
            "avg_sts": round((sum(year_cols) + stsb_all + sick_all) / 7, 2),
            "avg_test": round((sum(year_cols) + stsb_test + sick_all) / 7, 2),  # SICK-R stays pooled (train+dev+test)
            "avg_train_and_dev": stsb_train_dev,
            "sickrelatedness": sick_all,
            **{y.lower(): v for y, v in zip(years, year_cols)},
            "stsbenchmark": stsb_all, "stsbenchmark_test": stsb_test, "stsbenchmark_train_and_dev": stsb_train_dev,
        }
        assert [record["simcse"][k] for k in SIMCSE_COLUMNS] == pytest.approx(simcse, abs=1e-9)
        assert record["original_gs"] == pytest.approx(original, abs=1e-9)
        simcse_row, gs_row, _ = table_rows(out, record["model"])
        assert simcse_row[1:] == [f"{v:.2f}" for v in simcse]
        assert gs_row[1:] == [f"{original[k]:.2f}" for k in ORIGINAL_GS_COLUMNS]
        # the pooled "all" of STS-B really pools train + dev + test (and SentEval's split sizes add up)
        assert res["STSBenchmark"]["all"]["nsamples"] == sum(res["STSBenchmark"][s]["nsamples"]
                                                            for s in ("train", "dev", "test"))

    dev = run_eval("--model_name_or_path", gs_checkpoint, "--mode", "dev", "--senteval_data", sts_data)["models"][0]
    stsb, sick = _sp(dev["results"]["STSBenchmark"]["dev"]["spearman"]), \
        _sp(dev["results"]["SICKRelatedness"]["dev"]["spearman"])
    assert [dev["dev"][k] for k in DEV_COLUMNS] == pytest.approx([stsb, sick, round((stsb + sick) / 2, 2)], abs=1e-9)


def _assert_same_results(a, b, path="results"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_same_results(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == pytest.approx(b, abs=1e-6), path


def _plain_batcher_results(encode, task_path, tasks, splits):
    """SentEval as it was written: no prepare hook, no cache; the batcher encodes each batch it is given."""
    import senteval

    def batcher(_params, batch):
        return np.asarray(encode([" ".join(tokens) for tokens in batch]))

    params = {"task_path": task_path, "batch_size": 16, "progress": False, "splits": list(splits)}
    return senteval.engine.SE(params, batcher).eval(list(tasks))


def _hashed_bag_of_words(sentences):
    """A batch-independent encoder (each vector depends on its sentence only): 64 hashed word buckets."""
    out = np.zeros((len(sentences), 64), dtype=np.float32)
    for row, sentence in enumerate(sentences):
        for word in sentence.lower().split():
            out[row, zlib.crc32(word.encode()) % 64] += 1.0
    return out


@pytest.mark.parametrize("case", ["tiny_data_gs_model", "real_data"])
def test_cached_evaluation_equals_a_plain_per_task_senteval_batcher(gs_checkpoint, sts_data, case, request):
    """evaluate_sts (each distinct sentence encoded once, length-sorted, cached across tasks) gives SentEval's own
    numbers: every correlation of every task, subset and split within 1e-6.

    Two cases: the tiny STS files through a GS checkpoint (inference keep rule); and the real STS sets (STS-B
    repeats STS12-16 sentences, so the cache is hit across tasks) through a batch-independent encoder, because
    with a neural encoder a different batching moves the float rounding of identical-sentence pairs' cosines, whose
    rank ties then move STS12 subsets by ~1e-4 (docs/PERFORMANCE.md), whatever the cache does."""
    from simcse_gs.evaluation.sts import ALL_TASKS, evaluate_sts

    splits = ("train", "dev", "test", "train_and_dev", "all")
    if case == "tiny_data_gs_model":
        task_path = sts_data
        model = SimCSEGSModel.from_pretrained(gs_checkpoint).eval()

        def encode(sentences):
            return model.encode(sentences, batch_size=64).numpy()
    else:
        task_path, encode = request.getfixturevalue("real_sts_data"), _hashed_bag_of_words
    calls = []
    cached = evaluate_sts(lambda s: calls.append(len(s)) or encode(s), task_path, ALL_TASKS, splits, progress=False)
    plain = _plain_batcher_results(encode, task_path, ALL_TASKS, splits)
    _assert_same_results(cached, plain)
    assert len(calls) <= len(ALL_TASKS)  # the cached path did run: one encode call per task at most


@pytest.mark.slow
def test_real_minilm_dev_regression(minilm, real_sts_data):
    """The packaged all-MiniLM-L6-v2 (mean pooling) through evaluation.py: STS-B dev 86.72, SICK-R dev 79.80, the
    numbers docs/EVALUATION.md reports. A change in the encoder, the data reading or the metric moves them."""
    payload = evaluation.evaluate(["--model_name_or_path", minilm, "--pooler", "avg", "--mode", "dev",
                                   "--senteval_data", real_sts_data, "--no_progress", "--device", "cpu"])
    dev = payload["models"][0]["dev"]
    assert dev["stsb_spearman"] == pytest.approx(86.72, abs=0.01)
    assert dev["sickr_spearman"] == pytest.approx(79.80, abs=0.01)
    assert payload["models"][0]["kind"] == "sentence_transformers"


def test_evaluation_py_keep_budget_and_prune(tiny_bert_dir, sts_data, tmp_path, capsys):
    from simcse_gs.evaluation.evaluate import evaluate, main

    common = ["--senteval_data", sts_data, "--mode", "test", "--protocol", "simcse", "--no_progress", "--device",
              "cpu"]
    renorm = build(tiny_bert_dir, use_gs=True, pooler_type="avg", gs_attn_renorm=True)
    renorm.save_pretrained(tmp_path / "renorm")
    flags = ["--model_name_or_path", str(tmp_path / "renorm"), *common, "--keep_budget", "0.5"]
    masked = evaluate(flags)["models"][0]
    pruned = evaluate([*flags, "--prune"])["models"][0]
    assert pruned["simcse"] == masked["simcse"]  # same embeddings, so the same table
    assert 0.5 <= pruned["keep_stats"]["keep_rate"] < 0.75  # ceil(0.5 n) of n decided tokens
    build(tiny_bert_dir, use_gs=True, pooler_type="avg").save_pretrained(tmp_path / "original")
    for model, extra, message in [
        (tmp_path / "original", ["--prune"], "only under the renormalised attention"),
        (tiny_bert_dir, ["--keep_budget", "0.5"], "plain encoder"),
        (tmp_path / "renorm", ["--keep_budget", "2"], r"--keep_budget must be in \(0, 1\]"),
    ]:
        capsys.readouterr()
        assert main(["--model_name_or_path", str(model), *common, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("evaluation.py: error:") and re.search(message, err), err


def test_evaluation_py_precision_flag(tiny_bert_dir, sts_data, monkeypatch, capsys):
    seen = []
    original = HFEncoder.encode

    def spy(self, *args, **kwargs):
        def forward_hook(module, inputs, output):
            seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)

        handle = self.model.register_forward_hook(forward_hook)
        try:
            return original(self, *args, **kwargs)
        finally:
            handle.remove()

    monkeypatch.setattr(HFEncoder, "encode", spy)
    payload = evaluate(["--model_name_or_path", tiny_bert_dir, "--mode", "dev", "--senteval_data", sts_data,
                        "--precision", "bf16", "--no_progress"])
    assert payload["args"]["precision"] == "bf16" and seen and set(seen) == {torch.bfloat16}
    seen.clear()
    evaluate(["--model_name_or_path", tiny_bert_dir, "--mode", "dev", "--senteval_data", sts_data, "--no_progress"])
    assert seen and set(seen) == {None}  # fp32 by default: no autocast
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["--model_name_or_path", tiny_bert_dir, "--precision", "int8"])
    assert exit_info.value.code == 2 and "invalid choice: 'int8'" in capsys.readouterr().err
