"""The transfer tasks' files, read as SentEval reads them, and every bad-input error (tiny files written here)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import senteval
from senteval import SentEvalDataError, SentEvalFormatError, SentEvalTaskUnavailableError
from senteval.engine import SE, TRANSFER_TASKS

from .conftest import PER_CLASS, QUICK, TOY_DIM, keyword_batcher

TRANSFER_FETCH = "python -m simcse_gs.data_files transfer --fetch"


class Recorder:
    """A batcher/prepare pair that records what it was given and returns keyword embeddings."""

    def __init__(self) -> None:
        self.batches: list[list[list[str]]] = []
        self.prepared: list[list[list[str]]] = []

    def prepare(self, params, samples):
        self.prepared.append([list(s) for s in samples])

    def batcher(self, params, batch):
        self.batches.append([list(s) for s in batch])
        return keyword_batcher(params, batch)

    @property
    def encoded(self) -> list[tuple[str, ...]]:
        return [tuple(s) for b in self.batches for s in b]


def make_se(root: Path, batcher=keyword_batcher, prepare=None, **params) -> SE:
    return SE({"task_path": str(root), "progress": False, **QUICK, **params}, batcher, prepare)


def load(task: str, root: Path):
    return TRANSFER_TASKS[task](root)


# ---------------------------------------------------------------------------------------------- reading the files


def test_binary_tasks_read_latin1_lines_keep_blank_ones_and_label_as_senteval(transfer_root):
    mr = load("MR", transfer_root)
    assert len(mr.samples) == 2 * PER_CLASS + 1 and mr.labels.tolist() == [1] * (PER_CLASS + 1) + [0] * PER_CLASS
    assert ("caf\xe9", "good") in mr.samples  # the latin-1 byte 0xE9 is "é"
    cr = load("CR", transfer_root)
    assert len(cr.samples) == 2 * PER_CLASS + 1 and () in cr.samples  # the blank line is an (empty) sample
    subj = load("SUBJ", transfer_root)  # SentEval passes subj.objective first: objective = label 1
    assert all("fact" in s for s, y in zip(subj.samples, subj.labels) if y == 1)
    assert load("MPQA", transfer_root).samples[-1] != ()  # no final newline: the last line still counts


def test_line_ends_are_universal_newlines_and_tokens_whitespace(tmp_path):
    folder = tmp_path / "SST" / "binary"
    folder.mkdir(parents=True)
    (folder / "sentiment-train").write_bytes(b"a  good \x0b film \t1\r\nbad one\t0\t extra column ignored\rx\t1")
    for split in ("dev", "test"):
        (folder / f"sentiment-{split}").write_bytes(b"good\t1\nbad\t0\n")
    sentences, labels = load("SST2", tmp_path).data["train"]
    assert sentences == [("a", "good", "film"), ("bad", "one"), ("x",)]  # \x0b is whitespace, not a line end here
    assert labels.tolist() == [1, 0, 1]  # a third column is ignored, as SentEval does


def test_trec_label_is_the_coarse_part_and_the_fine_label_is_dropped(transfer_root):
    trec = load("TREC", transfer_root)
    sentences, labels = trec.data["train"]
    assert sentences[-1] == ("when", "was", "caf\xe9", "built", "?") and labels[-1] == 5  # NUM:date, latin-1
    assert sorted(set(labels.tolist())) == [0, 1, 2, 3, 4, 5]
    assert not any(s and s[0] == "fine" for s in sentences)


def test_mrpc_drops_the_bom_header_and_reads_crlf_pairs(transfer_root):
    first, second, labels = load("MRPC", transfer_root).data["train"]
    assert len(first) == len(second) == len(labels) == 2 * PER_CLASS
    assert all("\r" not in t for s in first + second for t in s)
    assert labels.tolist() == [i % 2 for i in range(2 * PER_CLASS)]


def test_sick_entailment_reads_columns_by_position_with_crlf(transfer_root):
    task = load("SICKEntailment", transfer_root)
    first, second, labels = task.data["test"]  # the CRLF file
    assert len(first) == 3 * PER_CLASS and sorted(set(labels.tolist())) == [0, 1, 2]
    assert all("\r" not in t for s in second for t in s)


# ---------------------------------------------------------------------------------------------- the engine


def test_each_distinct_sentence_is_prepared_and_encoded_once_in_length_order(transfer_root):
    rec = Recorder()
    res = make_se(transfer_root, rec.batcher, rec.prepare, batch_size=7).eval("MRPC")
    task = load("MRPC", transfer_root)
    distinct = set(task.sentences())
    assert len(rec.encoded) == len(set(rec.encoded)) == len(distinct) == res["nsentences"]
    assert set(rec.encoded) == distinct and len(rec.prepared) == 1 and len(rec.prepared[0]) == len(distinct)
    lengths = [len(s) for s in rec.encoded]
    assert lengths == sorted(lengths) and all(len(b) <= 7 for b in rec.batches)


@pytest.mark.parametrize("task", list(TRANSFER_TASKS))
def test_every_task_solves_its_separable_toy_data_and_returns_senteval_keys(transfer_root, task):
    res = make_se(transfer_root).eval(task)
    if task == "CR":  # its blank line is a positive sample with an all-zero embedding: the one nobody gets right
        assert 95.0 < res["acc"] < 100.0 and res["devacc"] > 95.0
    else:
        assert res["acc"] == 100.0 and res["devacc"] == 100.0
    keys = {"devacc", "acc", "ndev", "ntest", "time", "classifier", "nsentences"}
    keys |= {"f1"} if task == "MRPC" else set()
    assert set(res) == keys
    assert set(res["time"]) == {"load_s", "encode_s", "classifier_s"} and all(v >= 0 for v in res["time"].values())
    if task == "MRPC":
        assert res["f1"] == 100.0
    expected_n = {"MR": (49, 49), "CR": (49, 49), "SST2": (48, 48), "TREC": (73, 73), "MRPC": (48, 48),
                  "SICKEntailment": (72, 72)}.get(task, (48, 48))
    assert (res["ndev"], res["ntest"]) == expected_n


def test_timing_splits_encoding_from_the_classifier(transfer_root):
    import time

    def slow_batcher(params, batch):
        time.sleep(0.05)
        return keyword_batcher(params, batch)

    res = make_se(transfer_root, slow_batcher, batch_size=8).eval("CR")  # 49 sentences: 7 batches, >= 0.35 s
    assert res["time"]["encode_s"] >= 0.3
    assert res["time"]["classifier_s"] < res["time"]["encode_s"] + 5


def test_sts_and_transfer_tasks_run_in_one_call(transfer_root, sts_data):
    import shutil

    for folder in ("STS", "SICK"):
        shutil.rmtree(transfer_root / folder, ignore_errors=True)
        shutil.copytree(Path(sts_data) / folder, transfer_root / folder)
    res = make_se(transfer_root).eval(["STS13", "TREC"])
    assert set(res) == {"STS13", "TREC"} and "all" in res["STS13"] and res["TREC"]["acc"] == 100.0
    assert len(senteval.engine.SE.list_tasks) == 15 and senteval.TASKS == senteval.engine.TASKS


def test_pair_features_follow_senteval_unless_asked_otherwise(transfer_root, monkeypatch):
    dims = []
    real_init = senteval.LogisticRegression.__init__

    def spy(self, features, *args, **kwargs):
        dims.append(np.asarray(features).shape[1])
        real_init(self, features, *args, **kwargs)

    monkeypatch.setattr(senteval.LogisticRegression, "__init__", spy)
    make_se(transfer_root).eval("MRPC")
    make_se(transfer_root, pair_features="infersent").eval("MRPC")
    assert dims == [2 * TOY_DIM, 4 * TOY_DIM]  # [|u-v|, u*v] (SentEval's code), then [u, v, |u-v|, u*v]


# ---------------------------------------------------------------------------------------------- errors


def test_unknown_task_lists_every_valid_one(transfer_root):
    rec = Recorder()
    with pytest.raises(ValueError) as err:
        make_se(transfer_root, rec.batcher).eval(["MR", "SST5"])
    message = str(err.value)
    assert "'SST5'" in message and all(task in message for task in senteval.ALL_TASKS)
    assert rec.batches == []


def test_missing_file_names_it_and_the_fetch_command_before_encoding(transfer_root):
    (transfer_root / "MR" / "rt-polarity.neg").unlink()
    rec = Recorder()
    with pytest.raises(SentEvalDataError) as err:
        make_se(transfer_root, rec.batcher).eval(["CR", "MR"])
    assert str(transfer_root / "MR" / "rt-polarity.neg") in str(err.value) and TRANSFER_FETCH in str(err.value)
    assert rec.batches == []  # CR was not encoded first
    with pytest.raises(SentEvalDataError, match=re.escape(TRANSFER_FETCH)):
        load("MR", transfer_root)  # the task class says the same

    (transfer_root / "SICK" / "SICK_trial.txt").unlink()  # SICK comes with the STS sets
    with pytest.raises(SentEvalDataError, match=r"SICK_trial\.txt.*python -m simcse_gs\.data_files sts --fetch"):
        make_se(transfer_root).eval("SICKEntailment")


def test_absent_task_folder_is_a_task_the_folder_cannot_run(transfer_root):
    import shutil

    shutil.rmtree(transfer_root / "TREC")
    with pytest.raises(SentEvalTaskUnavailableError) as err:
        make_se(transfer_root).eval("TREC")
    assert isinstance(err.value, SentEvalDataError) and isinstance(err.value, ValueError)
    assert "TREC/" in str(err.value) and TRANSFER_FETCH in str(err.value)


def test_folder_with_only_transfer_tasks_is_accepted(transfer_root):
    import shutil

    shutil.rmtree(transfer_root / "SICK")
    assert make_se(transfer_root).eval("MPQA")["acc"] == 100.0
    with pytest.raises(SentEvalDataError, match="neither STS/ nor SICK/"):
        make_se(transfer_root).eval("STS12")


def _replace_line(path: Path, lineno: int, text: str, newline: str = "\n") -> None:
    lines = path.read_bytes().decode("latin-1").split(newline)
    lines[lineno - 1] = text
    path.write_bytes(newline.join(lines).encode("latin-1"))


@pytest.mark.parametrize(
    ("task", "name", "lineno", "text", "pattern"),
    [
        ("SST2", "SST/binary/sentiment-dev", 3, "no tab here", "found no tab"),
        ("SST2", "SST/binary/sentiment-test", 2, "a sentence\tpositive", "label 'positive' is not 0 or 1"),
        ("TREC", "TREC/train_5500.label", 4, "DESC manner no colon", "found no ':'"),
        ("TREC", "TREC/TREC_10.label", 2, "QUESTION:what is it", "label 'QUESTION' is not one of ABBR"),
        ("TREC", "TREC/TREC_10.label", 5, "HUM:ind", "expected a space after the fine label"),
        ("MRPC", "MRPC/msr_paraphrase_test.txt", 3, "1\t12\t13\tonly one sentence", "expected 5 tab-separated"),
        ("MRPC", "MRPC/msr_paraphrase_train.txt", 6, "yes\t1\t2\ta\tb", "label 'yes' is not 0 or 1"),
        ("MRPC", "MRPC/msr_paraphrase_train.txt", 1, "1\t1\t2\tno header\tline", "expected the header line"),
        ("SICKEntailment", "SICK/SICK_train.txt", 4, "3\ta\tb\t4.0\tMAYBE", "entailment label 'MAYBE'"),
        ("SICKEntailment", "SICK/SICK_trial.txt", 2, "3\ta b", "expected 5 tab-separated columns, found 2"),
        ("SICKEntailment", "SICK/SICK_trial.txt", 1, "pair_ID\tA\tB\tscore\tlabel", "expected SICK's header"),
    ],
)
def test_malformed_line_names_file_and_line(transfer_root, task, name, lineno, text, pattern):
    newline = "\r\n" if name.startswith("MRPC") else "\n"
    _replace_line(transfer_root / name, lineno, text, newline)
    rec = Recorder()
    with pytest.raises(SentEvalFormatError, match=re.escape(f"{transfer_root / name}:{lineno}:") + ".*" + pattern):
        make_se(transfer_root, rec.batcher).eval(task)
    assert rec.batches == []


def test_invalid_utf8_names_file_and_line(transfer_root):
    path = transfer_root / "SST" / "binary" / "sentiment-train"
    lines = path.read_bytes().split(b"\n")
    lines[6] = b"caf\xe9 good\t1"  # latin-1, not UTF-8 (SentEval opens SST as UTF-8)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(SentEvalFormatError, match=re.escape(f"{path}:7:") + " not valid utf-8"):
        load("SST2", transfer_root)


def test_sst_without_a_positive_label_is_refused(transfer_root):
    (transfer_root / "SST" / "binary" / "sentiment-dev").write_text("bad\t0\nworse\t0\n")
    with pytest.raises(SentEvalFormatError, match="no line has label 1"):
        load("SST2", transfer_root)


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"classifier": {"nhid": 50}}, r"nhid.*50.*only logistic regression \(nhid=0\)"),
        ({"classifier": {"optim": "adam"}}, "must set 'nhid'"),
        ({"classifier": {"nhid": 0, "tenacty": 3}}, r"unknown key\(s\) \['tenacty'\]"),
        ({"classifier": {"nhid": 0, "optim": "adagrad"}}, "'adagrad'.*SentEval knows it"),
        ({"classifier": {"nhid": 0, "batch_size": 0}}, "batch_size.*>= 1"),
        ({"kfold": 1}, r"kfold.*>= 2"),
        ({"usepytorch": False}, "not implemented"),
        ({"pair_features": "concat"}, "pair_features"),
    ],
)
def test_bad_classifier_params_are_refused_when_the_evaluator_is_built(transfer_root, params, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_se(transfer_root, **params)
