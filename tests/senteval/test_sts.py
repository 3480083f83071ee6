"""Tests for the STS evaluator in SentEval/senteval (tiny hand-made data sets, plus the real data when present)."""

from __future__ import annotations

import math
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

import senteval
from senteval import SentEvalDataError, SentEvalFormatError
from senteval.engine import SE, TASKS

ALL_TASKS = ["STS12", "STS13", "STS14", "STS15", "STS16", "STSBenchmark", "SICKRelatedness"]

# ------------------------------------------------------------------------------------------------ helpers
# Test sentences start with two numbers "x y" that the fake batcher uses as the 2-d embedding [x, y];
# any further words only change the length. So every cosine is known without a model.


def vec(sentence: str) -> np.ndarray:
    x, y = sentence.split()[:2]
    return np.array([float(x), float(y)])


def hand_cos(s1: str, s2: str) -> float:
    a, b = vec(s1), vec(s2)
    return float(a @ b / (math.hypot(*a) * math.hypot(*b)))


def vector_batcher(params, batch):
    return np.array([[float(tokens[0]), float(tokens[1])] for tokens in batch], dtype=np.float32)


class Recorder:
    """Batcher/prepare pair that records what it was given."""

    def __init__(self) -> None:
        self.batches: list[list[list[str]]] = []
        self.prepared: list[list[list[str]]] = []

    def prepare(self, params, samples):
        self.prepared.append([list(s) for s in samples])

    def batcher(self, params, batch):
        assert all(isinstance(s, list) and all(isinstance(t, str) for t in s) for s in batch)
        self.batches.append([list(s) for s in batch])
        return vector_batcher(params, batch)

    @property
    def encoded(self) -> list[tuple[str, ...]]:
        return [tuple(s) for b in self.batches for s in b]


def write_sts(root: Path, task: str, subsets: dict[str, list[tuple[str, str, str]]]) -> Path:
    """Write STS.input/STS.gs files; each row is (sentence1, sentence2, gold line text)."""
    folder = root / "STS" / f"{task}-en-test"
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in subsets.items():
        (folder / f"STS.input.{name}.txt").write_text("".join(f"{a}\t{b}\n" for a, b, _ in rows))
        (folder / f"STS.gs.{name}.txt").write_text("".join(f"{g}\n" for _, _, g in rows))
    return folder


# STS13 has three subsets; sizes 3 / 4 (+1 unannotated) / 6 and different correlations make all != mean != wmean.
STS13_DATA: dict[str, list[tuple[str, str, str]]] = {
    "FNWN": [
        ("1 0 a cat", "1 0 a cat sat", "5.0"),  # cos 1
        ("1 0 dog", "0 1", "0"),  # cos 0
        ("1 0", "1 1 some longer sentence here", "3.2"),  # cos 0.707
    ],
    "headlines": [
        ("3 4 news", "4 3", "4.8"),
        ("1 2", "2 1 x", "1.0"),
        ("2 1 unannotated pair", "0 5", ""),  # blank gold: skipped
        ("1 0 a cat", "1 3", "2.0"),
        ("5 1", "1 5 y z", "3.0"),
    ],
    "OnWN": [
        ("1 1", "1 2", "0.5"),
        ("2 3 w", "3 2", "4.0"),
        ("1 0 a cat", "2 1", "1.5"),
        ("1 4", "4 1", "2.5"),
        ("0 1", "1 9", "3.5"),
        ("2 2", "1 0 dog", "0.0"),
    ],
}


def annotated(rows):
    return [(a, b, float(g)) for a, b, g in rows if g.strip()]


def hand_subset(rows) -> tuple[np.ndarray, np.ndarray]:
    kept = annotated(rows)
    return np.array([hand_cos(a, b) for a, b, _ in kept]), np.array([g for _, _, g in kept])


def write_stsb(root: Path, splits: dict[str, list[tuple[str, str, str]]], extra: str = "") -> Path:
    folder = root / "STS" / "STSBenchmark"
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        lines = [
            f"main-captions\tMSRvid\t2012test\t{i:04d}\t{g}\t{a}\t{b}{extra}\n" for i, (a, b, g) in enumerate(rows)
        ]
        (folder / f"sts-{split}.csv").write_text("".join(lines))
    return folder


def write_sick(root: Path, splits: dict[str, list[tuple[str, str, str]]], newline: str = "\r\n") -> Path:
    folder = root / "SICK"
    folder.mkdir(parents=True, exist_ok=True)
    names = {"train": "SICK_train.txt", "dev": "SICK_trial.txt", "test": "SICK_test_annotated.txt"}
    for split, rows in splits.items():
        lines = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"]
        lines += [f"{i}\t{a}\t{b}\t{g}\tNEUTRAL" for i, (a, b, g) in enumerate(rows, start=1)]
        (folder / names[split]).write_bytes((newline.join(lines) + newline).encode())
    return folder


SPLIT_DATA: dict[str, list[tuple[str, str, str]]] = {
    "train": [("1 0 TRAINONLY", "1 1", "3.0"), ("1 2 TRAINONLY", "2 1", "4.0"), ("3 1", "1 0", "4.5")],
    "dev": [("1 0 a", "0 1", "0.5"), ("2 1", "1 2 b c", "2.5"), ("1 1", "1 1 'quoted \"odd", "5.0")],
    "test": [("1 3", "3 1", "1.0"), ("2 2", "2 3", "4.0"), ("0 1", "1 0", "0.0"), ("4 1 TESTONLY", "1 1", "3.0")],
}


def make_se(task_path: Path, batcher=vector_batcher, prepare=None, **params) -> SE:
    return SE({"task_path": str(task_path), "progress": False, **params}, batcher, prepare)


def assert_corr(result: dict, system: np.ndarray, gold: np.ndarray) -> None:
    assert result["nsamples"] == len(gold)
    assert result["pearson"] == pytest.approx(pearsonr(system, gold)[0], abs=1e-6)
    assert result["spearman"] == pytest.approx(spearmanr(system, gold)[0], abs=1e-6)
    assert isinstance(result["pearson"], float) and isinstance(result["spearman"], float)


# ------------------------------------------------------------------------------------------------ scoring


def test_sts_year_per_subset_and_aggregates(tmp_path):
    write_sts(tmp_path, "STS13", STS13_DATA)
    res = make_se(tmp_path).eval("STS13")

    assert list(res) == ["FNWN", "headlines", "OnWN", "all"]
    per = {name: hand_subset(rows) for name, rows in STS13_DATA.items()}
    for name, (system, gold) in per.items():
        assert_corr(res[name], system, gold)
    assert res["FNWN"]["spearman"] == pytest.approx(1.0)  # cosines 1, 0, 0.707 rank exactly like gold 5, 0, 3.2
    assert res["headlines"]["nsamples"] == 4  # the blank gold line was skipped

    n = np.array([len(g) for _, g in per.values()], dtype=float)
    for metric, fn in (("pearson", pearsonr), ("spearman", spearmanr)):
        values = np.array([fn(s, g)[0] for s, g in per.values()])
        pooled = fn(np.concatenate([s for s, _ in per.values()]), np.concatenate([g for _, g in per.values()]))[0]
        agg = res["all"][metric]
        assert agg["all"] == pytest.approx(pooled, abs=1e-6)
        assert agg["mean"] == pytest.approx(values.mean(), abs=1e-6)
        assert agg["wmean"] == pytest.approx((values * n).sum() / n.sum(), abs=1e-6)
        assert abs(agg["all"] - agg["mean"]) > 1e-3
        assert abs(agg["all"] - agg["wmean"]) > 1e-3
        assert abs(agg["mean"] - agg["wmean"]) > 1e-3


def test_eval_list_returns_dict_per_task(tmp_path):
    write_sts(tmp_path, "STS13", STS13_DATA)
    write_stsb(tmp_path, SPLIT_DATA)
    se = make_se(tmp_path)
    res = se.eval(["STS13", "STSBenchmark"])
    assert set(res) == {"STS13", "STSBenchmark"}
    assert se.results is res
    assert res["STS13"] == make_se(tmp_path).eval("STS13")


def test_stsb_splits_and_train_and_dev(tmp_path):
    write_stsb(tmp_path, SPLIT_DATA, extra="\tsource-a\tsource-b")  # columns beyond the 7th are ignored
    res = make_se(tmp_path).eval("STSBenchmark")
    assert list(res) == ["train", "dev", "test", "train_and_dev", "all"]
    hand = {split: hand_subset(rows) for split, rows in SPLIT_DATA.items()}
    for split in ("train", "dev", "test"):
        assert_corr(res[split], *hand[split])
    train_dev = [np.concatenate([hand["train"][i], hand["dev"][i]]) for i in (0, 1)]
    assert_corr(res["train_and_dev"], *train_dev)
    every = [np.concatenate([hand[s][i] for s in ("train", "dev", "test")]) for i in (0, 1)]
    assert_corr(res["all"], *every)


def test_splits_param_skips_unneeded_encoding(tmp_path):
    write_stsb(tmp_path, SPLIT_DATA)
    rec = Recorder()
    res = make_se(tmp_path, rec.batcher, splits=["dev"]).eval("STSBenchmark")
    assert list(res) == ["dev"]
    assert not any("TRAINONLY" in s or "TESTONLY" in s for s in rec.encoded)

    rec = Recorder()
    res = make_se(tmp_path, rec.batcher, splits=["train_and_dev"]).eval("STSBenchmark")
    assert list(res) == ["train_and_dev"]
    assert res["train_and_dev"]["nsamples"] == len(SPLIT_DATA["train"]) + len(SPLIT_DATA["dev"])
    assert any("TRAINONLY" in s for s in rec.encoded)
    assert not any("TESTONLY" in s for s in rec.encoded)

    with pytest.raises(ValueError, match="splits"):
        make_se(tmp_path, splits=["validation"])


def test_sick_crlf_and_scores(tmp_path):
    write_sick(tmp_path, SPLIT_DATA, newline="\r\n")
    data = senteval.load_sick(tmp_path)
    assert list(data) == ["train", "dev", "test"]
    assert data["dev"].sent2[2] == "1 1 'quoted \"odd"  # no stray \r, quotes kept verbatim
    assert data["dev"].scores.tolist() == [0.5, 2.5, 5.0]
    res = make_se(tmp_path).eval("SICKRelatedness")
    for split in ("train", "dev", "test"):
        assert_corr(res[split], *hand_subset(SPLIT_DATA[split]))


def test_loaders_return_raw_sentences(tmp_path):
    write_sts(tmp_path, "STS13", STS13_DATA)
    data = senteval.load_sts_year(tmp_path, 2013)
    assert data.keys() == senteval.load_sts_year(tmp_path, "STS13").keys() == STS13_DATA.keys()
    pairs = data["headlines"]
    assert isinstance(pairs, senteval.STSPairs) and len(pairs) == 4
    assert pairs.sent1[2] == "1 0 a cat" and pairs.scores.dtype == np.float64
    assert pairs.source.endswith("STS.input.headlines.txt")


def test_cosine_similarity():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [3.0, 4.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [1.0, 0.0], [-3.0, -4.0]])
    np.testing.assert_allclose(senteval.cosine_similarity(a, b), [0.0, 1.0, 0.0, -1.0], atol=1e-12)
    assert float(senteval.cosine_similarity(np.array([1.0, 2.0]), np.array([2.0, 4.0]))) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ encoding


def test_each_unique_sentence_encoded_once_in_length_sorted_batches(tmp_path):
    data = {name: list(rows) for name, rows in STS13_DATA.items()}
    data["OnWN"].append(("1 0  a   cat", "1 0 a cat sat", "1.0"))  # same tokens as existing sentences
    write_sts(tmp_path, "STS13", data)
    rec = Recorder()
    make_se(tmp_path, rec.batcher, rec.prepare, batch_size=3).eval("STS13")

    expected = {tuple(s.split()) for rows in data.values() for a, b, _ in annotated(rows) for s in (a, b)}
    assert len(rec.encoded) == len(set(rec.encoded)) == len(expected)  # no sentence encoded twice
    assert set(rec.encoded) == expected
    assert ("unannotated", "pair") not in {s[2:4] for s in rec.encoded}  # skipped pairs are not encoded
    assert len(rec.prepared) == 1 and sorted(map(tuple, rec.prepared[0])) == sorted(expected)
    lengths = [len(s) for s in rec.encoded]
    assert lengths == sorted(lengths)
    assert [len(b) for b in rec.batches[:-1]] == [3] * (len(rec.batches) - 1) and 1 <= len(rec.batches[-1]) <= 3


def test_params_attribute_access_and_current_task(tmp_path):
    write_sts(tmp_path, "STS13", STS13_DATA)
    seen = []

    def batcher(params, batch):
        seen.append((params.batch_size, params["current_task"], params.task_path))
        return vector_batcher(params, batch)

    make_se(tmp_path, batcher, batch_size=7).eval("STS13")
    assert seen and all(item == (7, "STS13", str(tmp_path.resolve())) for item in seen)


def test_torch_output_is_accepted(tmp_path):
    torch = pytest.importorskip("torch")
    write_sts(tmp_path, "STS13", STS13_DATA)

    expected = make_se(tmp_path).eval("STS13")["all"]["pearson"]
    for dtype in (torch.float32, torch.bfloat16):  # with grad, and a dtype numpy cannot hold

        def torch_batcher(params, batch, dtype=dtype):
            return torch.tensor(vector_batcher(params, batch), requires_grad=True).to(dtype) * 2

        got = make_se(tmp_path, torch_batcher).eval("STS13")["all"]["pearson"]
        assert got == pytest.approx(expected, abs=1e-6)


def test_batcher_row_count_is_checked(tmp_path):
    write_sts(tmp_path, "STS13", STS13_DATA)
    with pytest.raises(ValueError, match=r"one embedding row per sentence.*expected shape \(4, dim\)"):
        make_se(tmp_path, lambda p, batch: np.ones((len(batch) - 1, 2)), batch_size=4).eval("STS13")
    with pytest.raises(ValueError, match="one embedding row per sentence"):
        make_se(tmp_path, lambda p, batch: np.ones(len(batch))).eval("STS13")


# ------------------------------------------------------------------------------------------------ errors


def test_unknown_task_lists_available_tasks(tmp_path):
    write_sts(tmp_path, "STS13", STS13_DATA)
    rec = Recorder()
    with pytest.raises(ValueError) as err:
        make_se(tmp_path, rec.batcher).eval(["STS13", "MR"])
    message = str(err.value)
    assert "'MR'" in message
    for task in ALL_TASKS:
        assert task in message
    assert list(TASKS) == ALL_TASKS
    assert rec.batches == []  # validated before any encoding


def test_missing_data_message(tmp_path, monkeypatch):
    monkeypatch.delenv("SENTEVAL_DATA", raising=False)
    absent = tmp_path / "nowhere"
    with pytest.raises(SentEvalDataError) as err:
        senteval.resolve_task_path(absent)
    assert isinstance(err.value, FileNotFoundError)
    for needle in (str(absent), "--senteval_data", "SENTEVAL_DATA", "download_dataset.sh"):
        assert needle in str(err.value)

    (tmp_path / "empty").mkdir()
    with pytest.raises(SentEvalDataError, match="neither STS/ nor SICK/"):
        senteval.resolve_task_path(tmp_path / "empty")

    (tmp_path / "STS").mkdir()  # data root exists, but the STS12 folder does not
    with pytest.raises(SentEvalDataError) as err:
        make_se(tmp_path).eval("STS12")
    assert "STS12-en-test" in str(err.value) and "SENTEVAL_DATA" in str(err.value)


def test_missing_subset_file_is_named(tmp_path):
    folder = write_sts(tmp_path, "STS13", STS13_DATA)
    (folder / "STS.gs.OnWN.txt").unlink()
    with pytest.raises(SentEvalDataError, match=r"STS\.gs\.OnWN\.txt.*'OnWN'"):
        make_se(tmp_path).eval("STS13")


def test_resolve_task_path_precedence(tmp_path, monkeypatch):
    env_dir, arg_dir = tmp_path / "env", tmp_path / "arg"
    (env_dir / "STS").mkdir(parents=True)
    (arg_dir / "SICK").mkdir(parents=True)
    monkeypatch.setenv("SENTEVAL_DATA", str(env_dir))
    assert senteval.resolve_task_path(None) == str(env_dir.resolve())
    assert senteval.resolve_task_path(str(arg_dir)) == str(arg_dir.resolve())
    assert senteval.resolve_task_path("") == str(env_dir.resolve())  # empty flag value counts as unset

    write_sts(env_dir, "STS13", STS13_DATA)
    res = SE({"progress": False}, vector_batcher).eval("STS13")  # no task_path: falls back to $SENTEVAL_DATA
    assert res["all"]["spearman"]["all"] == make_se(env_dir).eval("STS13")["all"]["spearman"]["all"]

    monkeypatch.setenv("SENTEVAL_DATA", "")
    default = senteval.DEFAULT_TASK_PATH
    assert default == Path(senteval.__file__).resolve().parents[1] / "data" / "downstream"
    try:
        assert senteval.resolve_task_path(None) == str(default.resolve())
    except SentEvalDataError as err:  # data not downloaded into the default location
        assert str(default) in str(err)


def _corrupt(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text().split("\n")
    lines[lineno - 1] = text
    path.write_text("\n".join(lines))


@pytest.mark.parametrize(
    ("filename", "lineno", "text", "pattern"),
    [
        ("STS.input.FNWN.txt", 2, "1 0 dog\t0 1\textra", "exactly one tab"),
        ("STS.input.FNWN.txt", 3, "1 0 no tab at all", "exactly one tab"),
        ("STS.gs.FNWN.txt", 3, "abc", "is not a number"),
        ("STS.gs.FNWN.txt", 1, "5.5", "outside"),
        ("STS.gs.FNWN.txt", 2, "-0.5", "outside"),
        ("STS.gs.FNWN.txt", 2, "nan", "outside"),
    ],
)
def test_malformed_sts_reports_file_and_line(tmp_path, filename, lineno, text, pattern):
    folder = write_sts(tmp_path, "STS13", STS13_DATA)
    _corrupt(folder / filename, lineno, text)
    with pytest.raises(SentEvalFormatError, match=pattern) as err:
        make_se(tmp_path).eval("STS13")
    assert f"{folder / filename}:{lineno}:" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_sts_line_count_mismatch_names_both_files(tmp_path):
    folder = write_sts(tmp_path, "STS13", STS13_DATA)
    with open(folder / "STS.gs.headlines.txt", "a") as f:
        f.write("1.0\n")
    with pytest.raises(SentEvalFormatError) as err:
        senteval.load_sts_year(tmp_path, "STS13")
    message = str(err.value)
    assert str(folder / "STS.input.headlines.txt") in message and "has 5 lines" in message
    assert str(folder / "STS.gs.headlines.txt") in message and "has 6" in message


def test_malformed_stsb_and_sick_report_file_and_line(tmp_path):
    stsb = write_stsb(tmp_path, SPLIT_DATA)
    _corrupt(stsb / "sts-dev.csv", 2, "main-captions\tMSRvid\t2012test\t0001\t2.5\tonly one sentence")
    with pytest.raises(SentEvalFormatError, match=re.escape(f"{stsb / 'sts-dev.csv'}:2:") + ".*at least 7"):
        senteval.load_stsb(tmp_path)
    assert list(senteval.load_stsb(tmp_path, ["test"])) == ["test"]  # other splits are not even read

    _corrupt(stsb / "sts-dev.csv", 2, "main-captions\tMSRvid\t2012test\t0001\t7\ta b\tc d")
    with pytest.raises(SentEvalFormatError, match=re.escape(f"{stsb / 'sts-dev.csv'}:2:") + ".*outside"):
        senteval.load_stsb(tmp_path)

    sick = write_sick(tmp_path, SPLIT_DATA)
    path = sick / "SICK_trial.txt"
    path.write_bytes(path.read_bytes().replace(b"\t2.5\t", b"\thigh\t"))
    with pytest.raises(SentEvalFormatError, match=re.escape(f"{path}:3:") + ".*'high' is not a number"):
        senteval.load_sick(tmp_path)


# ------------------------------------------------------------------------------------------------ real data


def hashed_bow_batcher(params, batch, dim: int = 128):
    """Cheap deterministic encoder: bag of lower-cased words hashed into `dim` buckets."""
    out = np.zeros((len(batch), dim), dtype=np.float32)
    for row, tokens in enumerate(batch):
        for token in tokens:
            out[row, zlib.crc32(token.lower().encode()) % dim] += 1.0
    return out


def test_real_data_pair_counts_and_full_eval(real_sts_data):
    path = real_sts_data
    sts_counts = {"STS12": 3108, "STS13": 1500, "STS14": 3750, "STS15": 3000, "STS16": 1186}
    for task, count in sts_counts.items():
        assert sum(len(p) for p in senteval.load_sts_year(path, task).values()) == count
    assert {k: len(v) for k, v in senteval.load_stsb(path).items()} == {"train": 5749, "dev": 1500, "test": 1379}
    assert {k: len(v) for k, v in senteval.load_sick(path).items()} == {"train": 4500, "dev": 500, "test": 4927}

    res = SE({"task_path": path, "progress": False, "batch_size": 512}, hashed_bow_batcher).eval(ALL_TASKS)
    for task, count in sts_counts.items():
        assert sum(v["nsamples"] for k, v in res[task].items() if k != "all") == count
        for metric in ("pearson", "spearman"):
            assert all(-1.0 <= v <= 1.0 for v in res[task]["all"][metric].values())
    assert res["STSBenchmark"]["train_and_dev"]["nsamples"] == 5749 + 1500
    assert res["SICKRelatedness"]["test"]["nsamples"] == 4927
    for task in ("STSBenchmark", "SICKRelatedness"):
        assert all(0.2 < r["spearman"] <= 1.0 for r in res[task].values())  # word overlap correlates with gold
