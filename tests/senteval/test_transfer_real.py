"""The transfer tasks on the real data (MANIFEST.md, Group 4): counts as SentEval reads them, and two tasks run
end to end with a cheap deterministic encoder under SimCSE's fasttest protocol."""

from __future__ import annotations

import numpy as np

import senteval

from .conftest import hashed_bow_batcher

# Samples as SentEval counts them (blank lines of CR and MPQA included), and the label counts of MANIFEST.md.
COUNTS = {"MR": 10662, "CR": 3775, "SUBJ": 10000, "MPQA": 10606}
SPLITS = {"SST2": {"train": 67349, "dev": 872, "test": 1821}, "TREC": {"train": 5452, "test": 500},
          "MRPC": {"train": 4076, "test": 1725}, "SICKEntailment": {"train": 4500, "dev": 500, "test": 4927}}


def test_real_files_are_read_with_senteval_counts(real_transfer_data):
    path = real_transfer_data
    for task, n in COUNTS.items():
        loaded = senteval.TRANSFER_TASKS[task](path)
        assert len(loaded.samples) == n
    assert np.bincount(senteval.TRANSFER_TASKS["CR"](path).labels).tolist() == [1368, 2407]
    assert np.bincount(senteval.TRANSFER_TASKS["MPQA"](path).labels).tolist() == [7294, 3312]
    for task, splits in SPLITS.items():
        data = senteval.TRANSFER_TASKS[task](path).data
        assert {split: len(rows[-1]) for split, rows in data.items()} == splits
    trec = senteval.TRANSFER_TASKS["TREC"](path).data
    assert np.bincount(trec["train"][1]).tolist() == [86, 1162, 1250, 1223, 835, 896]  # ABBR DESC ENTY HUM LOC NUM
    assert np.bincount(trec["test"][1]).tolist() == [9, 138, 94, 65, 81, 113]
    assert np.bincount(senteval.TRANSFER_TASKS["MRPC"](path).data["test"][2]).tolist() == [578, 1147]


def test_two_real_tasks_under_fasttest(real_transfer_data):
    params = senteval.transfer_params("fasttest", task_path=real_transfer_data, progress=False, batch_size=512)
    res = senteval.engine.SE(params, hashed_bow_batcher).eval(["SUBJ", "TREC"])
    subj, trec = res["SUBJ"], res["TREC"]
    assert (subj["ndev"], subj["ntest"], trec["ndev"], trec["ntest"]) == (10000, 10000, 5452, 500)
    assert subj["acc"] > 75 and subj["devacc"] > 75  # chance: 50
    assert trec["acc"] > 60 and trec["devacc"] > 55  # majority class of the test set: 22.6
    for result in (subj, trec):
        assert {"devacc", "acc", "ndev", "ntest", "time", "classifier"} <= set(result)
        assert all(isinstance(result[k], float) and 0 <= result[k] <= 100 for k in ("devacc", "acc"))
        assert result["classifier"]["optim"] == "rmsprop" and result["classifier"]["kfold"] == 5
        assert result["time"]["classifier_s"] > 0 and result["time"]["encode_s"] > 0
    assert subj["classifier"]["protocol"] == "inner_kfold" and trec["classifier"]["protocol"] == "kfold"
