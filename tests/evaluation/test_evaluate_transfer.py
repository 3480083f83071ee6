"""evaluation.py on SentEval's transfer tasks: SimCSE's table and JSON, the modes' protocols, every checkpoint kind,
in-encoder pruning flags, and one-line errors (tiny models, tiny task folders written for the tests, real data)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from simcse_gs.evaluation import evaluate as evaluation
from simcse_gs.evaluation.hf_encoder import HFEncoder
from simcse_gs.evaluation.transfer import TRANSFER_COLUMNS, TRANSFER_SET, TRANSFER_TASKS, transfer_summary
from tests.conftest import build, dropping_gs_model
from tests.senteval.conftest import write_evaluation_data

FLAGS = ("--no_progress", "--device", "cpu", "--batch_size", "16")
HEADER = "| model | MR | CR | SUBJ | MPQA | SST2 | TREC | MRPC | Avg. | SICK-E |"
KEYS = dict(zip(TRANSFER_TASKS, (*TRANSFER_COLUMNS[:7], "sicke")))


@pytest.fixture(scope="module")
def downstream(sts_data, tmp_path_factory) -> str:
    """The eight transfer tasks in their file formats beside the tiny STS-B and SICK-R sets."""
    return str(write_evaluation_data(tmp_path_factory.mktemp("transfer") / "downstream", Path(sts_data)))


@pytest.fixture(scope="session")
def real_transfer_data() -> str:
    """The real transfer-task data, found as evaluation.py finds it (the shared copy where nothing else is set)."""
    from simcse_gs.data_files import resolve_transfer_data

    path = resolve_transfer_data(None, log=False)
    if path is None:
        pytest.skip("real transfer-task data not found; set SENTEVAL_DATA to a folder with MR/ CR/ SUBJ/ MPQA/ "
                    "SST/binary/ TREC/ MRPC/, or run python -m simcse_gs.data_files transfer --fetch")
    return path


def run(*args: str) -> dict:
    return evaluation.evaluate([*args, *FLAGS])


def expect_error(capsys, *args: str) -> str:
    capsys.readouterr()
    assert evaluation.main([*args, *FLAGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("evaluation.py: error: "), err
    return err[0]


def row(text: str, model: str, header: str = HEADER) -> list[str]:
    """The cells of ``model``'s row in the table under ``header``."""
    lines = text.splitlines()
    start = lines.index(header)
    for line in lines[start + 2:]:
        if line.startswith(f"| {model} |"):
            return [c.strip() for c in line.strip("|").split("|")][1:]
    raise AssertionError(f"no row for {model} under {header}")


# ------------------------------------------------------------------------------------------------ table, JSON


def test_transfer_set_prints_simcse_table_and_writes_every_accuracy(tiny_bert_dir, downstream, tmp_path, capsys):
    out = tmp_path / "r.json"
    payload = run("--model_name_or_path", tiny_bert_dir, "--task_set", "transfer", "--mode", "fasttest",
                  "--senteval_data", downstream, "--output_json", str(out))
    text = capsys.readouterr().out
    record = payload["models"][0]
    assert payload["tasks"] == list(TRANSFER_TASKS)
    results = record["results"]
    expected = {KEYS[t]: round(results[t]["acc"], 2) for t in TRANSFER_TASKS}
    expected["avg"] = round(float(np.mean([expected[KEYS[t]] for t in TRANSFER_SET])), 2)
    assert record["transfer"] == expected and record["transfer_protocol"] == "fasttest"
    assert row(text, tiny_bert_dir) == [f"{expected[k]:.2f}" for k in TRANSFER_COLUMNS]
    assert "SimCSE protocol" not in text  # no STS task asked for: no STS table
    assert record["simcse"] is None and record["dev"] is None
    times = record["transfer_time"]
    assert times["encode_s"] > 0 and times["classifier_s"] > 0
    assert times["sentences"] == sum(results[t]["nsentences"] for t in TRANSFER_TASKS)
    assert json.loads(out.read_text())["models"][0]["transfer"] == expected


def test_each_mode_runs_its_protocol_and_reports_its_split(tiny_bert_dir, downstream, capsys):
    seen = {}
    for mode in ("test", "fasttest", "dev"):
        payload = run("--model_name_or_path", tiny_bert_dir, "--tasks", "TREC", "SUBJ", "--mode", mode,
                      "--senteval_data", downstream)
        seen[mode] = payload["models"][0]
    assert seen["test"]["results"]["TREC"]["classifier"]["optim"] == "adam"
    assert seen["test"]["results"]["TREC"]["classifier"]["kfold"] == 10
    for mode in ("fasttest", "dev"):
        assert seen[mode]["results"]["SUBJ"]["classifier"]["optim"] == "rmsprop"
        assert seen[mode]["results"]["SUBJ"]["classifier"]["kfold"] == 5
    assert seen["dev"]["transfer"] == transfer_summary(seen["dev"]["results"], "dev")
    assert seen["dev"]["transfer"]["trec"] == round(seen["dev"]["results"]["TREC"]["devacc"], 2)
    assert seen["fasttest"]["transfer"]["trec"] == round(seen["fasttest"]["results"]["TREC"]["acc"], 2)
    assert "avg" not in seen["test"]["transfer"]  # two of the seven tasks: no average
    assert "validation accuracy" in capsys.readouterr().out  # the dev table says what it shows


def test_full_set_prints_both_tables_and_dev_mode_keeps_the_sts_dev_tasks(tiny_bert_dir, downstream, capsys):
    payload = run("--model_name_or_path", tiny_bert_dir, "--task_set", "full", "--mode", "dev",
                  "--senteval_data", downstream)
    assert payload["tasks"] == ["STSBenchmark", "SICKRelatedness", *TRANSFER_TASKS]
    text = capsys.readouterr().out
    assert "STS dev" in text and HEADER in text
    record = payload["models"][0]
    assert set(record["dev"]) == {"stsb_spearman", "sickr_spearman", "avg_sts"}
    assert set(record["transfer"]) == set(TRANSFER_COLUMNS)


def test_task_set_na_takes_the_task_list(tiny_bert_dir, downstream):
    payload = run("--model_name_or_path", tiny_bert_dir, "--task_set", "na", "--tasks", "MRPC", "STSBenchmark",
                  "--mode", "fasttest", "--protocol", "simcse", "--senteval_data", downstream)
    assert payload["tasks"] == ["STSBenchmark", "MRPC"]  # STS first, then transfer, each in table order
    record = payload["models"][0]
    assert set(record["transfer"]) == {"mrpc"} and set(record["simcse"]) == {"stsb"}


# ------------------------------------------------------------------------------------------------ checkpoint kinds


def test_every_checkpoint_kind_gets_the_transfer_table(tiny_bert_dir, downstream, tmp_path, capsys):
    from simcse_gs.sharing.export import export_model

    build(tiny_bert_dir, pooler_type="avg").save_pretrained(tmp_path / "plain")
    dropping_gs_model(tiny_bert_dir, pooler_type="avg", gs_attn_renorm=True).save_pretrained(tmp_path / "gs")
    export_model(str(tmp_path / "plain"), tmp_path / "st")
    common = ["--tasks", "MR", "MRPC", "--mode", "fasttest", "--senteval_data", downstream]
    models = [str(tmp_path / name) for name in ("plain", "gs", "st")]
    payload = run("--model_name_or_path", *models, *common)
    kinds = [r["kind"] for r in payload["models"]]
    assert kinds == ["simcse_gs", "simcse_gs", "sentence_transformers"]
    text = capsys.readouterr().out
    for record in payload["models"]:
        assert set(record["transfer"]) == {"mr", "mrpc"}
        assert row(text, record["model"])[0] == f"{record['transfer']['mr']:.2f}"
    gs = payload["models"][1]
    assert gs["keep_stats"]["keep_rate"] < 1  # the proxy dropped tokens of the embedded sentences
    # the export of the plain checkpoint is the same encoder: the same numbers
    assert payload["models"][2]["transfer"] == payload["models"][0]["transfer"]
    pruned = run("--model_name_or_path", models[1], *common, "--keep_budget", "0.5", "--prune")["models"][0]
    masked = run("--model_name_or_path", models[1], *common, "--keep_budget", "0.5")["models"][0]
    assert pruned["transfer"] == masked["transfer"]  # removing the dropped tokens = masking them (renorm)
    assert 0.5 <= pruned["keep_stats"]["keep_rate"] < 0.8


# ------------------------------------------------------------------------------------------------ in-encoder pruning


def test_prune_flags_reach_the_encoder(tiny_bert_dir, downstream, tmp_path, monkeypatch):
    calls = []
    original = HFEncoder.encode

    def spy(self, *args, **kwargs):
        calls.append({k: kwargs.get(k) for k in ("prune_schedule", "idf")})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HFEncoder, "encode", spy)
    common = ["--model_name_or_path", tiny_bert_dir, "--tasks", "TREC", "MRPC", "--mode", "fasttest",
              "--senteval_data", downstream]
    plain = run(*common)["models"][0]
    assert calls and all(c == {"prune_schedule": None, "idf": None} for c in calls)
    calls.clear()
    keep_all = run(*common, "--prune_layers", "1", "--prune_keep_rates", "1.0", "--prune_scorer", "first")
    schedule = calls[0]["prune_schedule"]
    assert (schedule.layers, schedule.rates, schedule.scorer) == ((1,), (1.0,), "first")
    record = keep_all["models"][0]
    assert record["transfer"] == plain["transfer"]  # keeping every token is the unpruned encoder
    assert record["keep_stats"]["keep_rate"] == 1.0

    vocab = json.loads((Path(tiny_bert_dir) / "tokenizer.json").read_text())["model"]["vocab"]
    idf_file = tmp_path / "idf.json"
    idf_file.write_text(json.dumps({"a": 5.0, "the": 0.1}))
    calls.clear()
    halved = run(*common, "--prune_layers", "1", "--prune_keep_rates", "0.5", "--prune_scorer", "idf",
                 "--idf_file", str(idf_file))["models"][0]
    idf = calls[0]["idf"]
    assert idf.shape == (len(vocab),) and idf[vocab["the"]] == pytest.approx(0.1)
    assert idf[vocab["a"]] == idf[vocab["[CLS]"]] == 5.0  # unlisted tokens count as the rarest
    assert 0.5 <= halved["keep_stats"]["keep_rate"] < 0.8
    table = tmp_path / "idf.pt"
    torch.save(torch.ones(len(vocab)), table)
    calls.clear()
    run(*common, "--prune_layers", "1", "--prune_keep_rates", "0.5", "--prune_scorer", "idf", "--idf_file", str(table))
    assert torch.equal(calls[0]["idf"], torch.ones(len(vocab)))


@pytest.mark.parametrize(("flags", "message"), [
    (["--prune_layers", "1", "2", "--prune_keep_rates", "0.5", "0.7"], "must not grow from one prune point"),
    (["--prune_layers", "1", "--prune_keep_rates", "0.5", "0.4"], "needs one rate per prune layer"),
    (["--prune_keep_rates", "0.5"], "needs --prune_layers"),
    (["--prune_layers", "2", "--prune_keep_rates", "0.5"], r"each prune layer must be in 1\.\.1"),
    (["--prune_layers", "1", "--prune_keep_rates", "0.5", "--prune_scorer", "idf"], "needs --idf_file"),
    (["--prune_layers", "1", "--prune_keep_rates", "0.5", "--prune_scorer", "learned"], "needs trained scorer"),
    (["--prune_scorer", "first"], "--prune_scorer first needs --prune_layers"),
    (["--idf_file", "x.json"], "--idf_file is the table of --prune_scorer idf"),
])
def test_bad_prune_schedules_are_one_line_errors(tiny_bert_dir, downstream, capsys, flags, message):
    msg = expect_error(capsys, "--model_name_or_path", tiny_bert_dir, "--tasks", "TREC", "--senteval_data",
                       downstream, *flags)
    assert re.search(message, msg), msg


def test_growing_schedule_gives_prune_schedules_own_message(tiny_bert_dir, downstream, capsys):
    from simcse_gs.model.layer_pruning import PruneSchedule

    with pytest.raises(ValueError) as raised:
        PruneSchedule.parse([1, 2], [0.5, 0.7], "attention")
    msg = expect_error(capsys, "--model_name_or_path", "never-loaded", "--tasks", "TREC", "--senteval_data",
                       downstream, "--prune_layers", "1", "2", "--prune_keep_rates", "0.5", "0.7")
    assert msg == f"evaluation.py: error: {str(raised.value).rstrip('.')}"


def test_bad_idf_files_are_one_line_errors(tiny_bert_dir, downstream, tmp_path, capsys):
    prune = ["--prune_layers", "1", "--prune_keep_rates", "0.5", "--prune_scorer", "idf"]
    cases = {"short.json": ("[1.0, 2.0]", "one value per vocabulary id"),
             "words.json": ('{"zzzunknownzzz": 1.0}', "not in the tokenizer's vocabulary"),
             "broken.json": ("{", "cannot read it")}
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(content)
        msg = expect_error(capsys, "--model_name_or_path", tiny_bert_dir, "--tasks", "TREC", "--senteval_data",
                           downstream, *prune, "--idf_file", str(tmp_path / name))
        assert message in msg, msg
    assert "no such file" in expect_error(capsys, "--model_name_or_path", tiny_bert_dir, "--tasks", "TREC",
                                          "--senteval_data", downstream, *prune, "--idf_file", "absent.json")


# ------------------------------------------------------------------------------------------------ bad input


def test_unknown_task_lists_the_valid_ones(tiny_bert_dir, capsys):
    msg = expect_error(capsys, "--model_name_or_path", tiny_bert_dir, "--tasks", "MR", "SST5")
    assert "unknown task(s) SST5" in msg
    for task in (*TRANSFER_TASKS, "STS12", "SICKRelatedness"):
        assert task in msg


def test_task_flag_conflicts(tiny_bert_dir, capsys):
    msg = expect_error(capsys, "--model_name_or_path", tiny_bert_dir, "--task_set", "transfer", "--tasks", "MR")
    assert "either --tasks or --task_set transfer" in msg
    assert "give --tasks" in expect_error(capsys, "--model_name_or_path", tiny_bert_dir, "--task_set", "na")


def test_missing_transfer_data_stops_before_any_model_is_loaded(sts_data, downstream, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SENTEVAL_DATA", raising=False)
    never = str(tmp_path / "never-loaded")  # loading it would be a different error
    # a folder with STS only: the task set finds none of its folders
    msg = expect_error(capsys, "--model_name_or_path", never, "--task_set", "transfer", "--senteval_data", sts_data)
    assert "not available" in msg and "MR/" in msg and "transfer --fetch" in msg
    # the folder of one task missing
    partial = tmp_path / "partial"
    shutil.copytree(downstream, partial)
    shutil.rmtree(partial / "TREC")
    msg = expect_error(capsys, "--model_name_or_path", never, "--task_set", "transfer", "--senteval_data", str(partial))
    assert "TREC" in msg and "python -m simcse_gs.data_files transfer --fetch" in msg
    # one file missing: named, with the fetch command
    (partial / "MPQA" / "mpqa.neg").unlink()
    msg = expect_error(capsys, "--model_name_or_path", never, "--tasks", "MPQA", "--senteval_data", str(partial))
    assert "mpqa.neg" in msg and "transfer --fetch" in msg
    # a malformed line: file and line number
    bad = tmp_path / "bad"
    shutil.copytree(downstream, bad)
    with open(bad / "SST" / "binary" / "sentiment-dev", "a", encoding="utf-8") as f:
        f.write("no label here\n")
    msg = expect_error(capsys, "--model_name_or_path", never, "--tasks", "SST2", "--senteval_data", str(bad))
    assert re.search(r"sentiment-dev:\d+:", msg), msg


def test_transfer_json_is_strict_json(tiny_bert_dir, downstream, tmp_path):
    out = tmp_path / "r.json"
    run("--model_name_or_path", tiny_bert_dir, "--tasks", "MRPC", "SICKEntailment", "--mode", "fasttest",
        "--senteval_data", downstream, "--output_json", str(out))
    data = json.loads(out.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    record = data["models"][0]
    assert set(record["transfer"]) == {"mrpc", "sicke"}
    assert all(isinstance(v, float) and not math.isnan(v) for v in record["transfer"].values())


# ------------------------------------------------------------------------------------------------ real data


def test_two_real_tasks_through_evaluation_py(tiny_bert_dir, real_transfer_data, capsys):
    """TREC and MRPC of the real data (MANIFEST.md, Group 4) on a tiny random BERT under fasttest: SentEval's
    sample counts, and the table's cells are the results' accuracies."""
    payload = run("--model_name_or_path", tiny_bert_dir, "--tasks", "TREC", "MRPC", "--mode", "fasttest",
                  "--senteval_data", real_transfer_data, "--batch_size", "256")
    record = payload["models"][0]
    trec, mrpc = record["results"]["TREC"], record["results"]["MRPC"]
    assert (trec["ndev"], trec["ntest"], mrpc["ndev"], mrpc["ntest"]) == (5452, 500, 4076, 1725)
    assert trec["acc"] > 30  # majority class of the test set: 22.6; a random encoder still carries words
    assert mrpc["acc"] >= 60  # majority class (paraphrase): 66.5
    assert record["transfer"] == {"trec": round(trec["acc"], 2), "mrpc": round(mrpc["acc"], 2)}
    cells = row(capsys.readouterr().out, tiny_bert_dir)
    assert cells[5] == f"{trec['acc']:.2f}" and cells[6] == f"{mrpc['acc']:.2f}"
