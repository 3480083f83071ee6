"""The logistic regression and SentEval's three protocols: exactness, SentEval's loop, folds, and parameters."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.model_selection import StratifiedKFold

import senteval
from senteval.tools.classifier import ClassifierConfig, Fold, LogisticRegression, initial_weight, parse_optimizer
from senteval.tools.validation import L2_GRID, inner_kfold, kfold, split

from .conftest import QUICK, keyword_batcher


def blobs(n_per_class: int = 40, nclasses: int = 3, dim: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well separated Gaussian blobs: a linearly separable problem."""
    rng = np.random.RandomState(seed)
    centres = np.eye(nclasses, dim) * 6
    y = np.repeat(np.arange(nclasses), n_per_class)
    return (centres[y] + rng.randn(len(y), dim)).astype(np.float32), y


def fast(**overrides) -> ClassifierConfig:
    return ClassifierConfig(**{"optim": "adam,lr=0.05", "batch_size": 16, "tenacity": 2, "epoch_size": 2, **overrides})


# ---------------------------------------------------------------------------------------------- the classifier


def test_a_separable_problem_is_solved_exactly_by_every_protocol():
    x, y = blobs()
    clf = LogisticRegression(x, y, 3, fast())
    assert inner_kfold(clf, 3).acc == 100.0
    rows = np.random.RandomState(1).permutation(len(y))
    assert kfold(clf, rows[:80], rows[80:], 4).acc == 100.0
    res = split(clf, rows[:60], rows[60:90], rows[90:])
    assert res.acc == 100.0 and res.devacc == 100.0


def senteval_fit(x, y, nclasses, l2reg, cfg, seed=1111, valid=None, split_off=None):
    """SentEval's MLP(nhid=0).fit, written plainly: nn.Linear, torch.optim, CrossEntropyLoss, its loop."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = torch.nn.Linear(x.shape[1], nclasses)
    name, *args = cfg.optim.split(",")
    kwargs = {k: float(v) for k, v in (a.split("=") for a in args)}
    optimizer = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[name](model.parameters(), **kwargs)
    optimizer.param_groups[0]["weight_decay"] = l2reg
    if valid is None:
        perm = np.random.permutation(len(x))
        k = int(split_off * len(x))
        x, y, valid = x[perm[k:]], y[perm[k:]], (x[perm[:k]], y[perm[:k]])
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    vx, vy = torch.from_numpy(valid[0]), torch.from_numpy(valid[1])
    nepoch, best, stop, bad = 0, -1.0, False, 0
    while not stop and nepoch <= cfg.max_epoch:
        for _ in range(cfg.epoch_size):
            perm = np.random.permutation(len(tx))
            for i in range(0, len(tx), cfg.batch_size):
                idx = torch.from_numpy(perm[i : i + cfg.batch_size])
                loss = torch.nn.functional.cross_entropy(model(tx[idx]), ty[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        nepoch += cfg.epoch_size
        with torch.no_grad():
            acc = (model(vx).argmax(1) == vy).sum().item() / len(vx)
        if acc > best:
            best, kept = acc, copy.deepcopy(model)
        else:
            stop = bad >= cfg.tenacity
            bad += 1
    return best, nepoch, torch.cat([kept.weight, kept.bias[:, None]], 1).detach()


@pytest.mark.parametrize("optim", ["adam", "rmsprop"])
def test_batched_training_is_senteval_loop(optim):
    """Several folds and L2 values trained at once give SentEval's models: same epochs, same accuracy, same weights."""
    rng = np.random.RandomState(0)
    x = rng.randn(400, 8).astype(np.float32)
    y = (x @ rng.randn(8, 3) + rng.randn(400, 3)).argmax(1)  # noisy: early stopping has work to do
    cfg = ClassifierConfig(optim=optim, batch_size=32, tenacity=2, epoch_size=2, max_epoch=30)
    train = [np.arange(0, 250), np.arange(100, 349)]  # different sizes: the shorter fold pauses at epoch ends
    valid = [np.arange(250, 400), np.arange(0, 100)]
    clf = LogisticRegression(x, y, 3, cfg)
    fitted = clf.fit([Fold.with_validation(t, v, 1111) for t, v in zip(train, valid)], [1e-4, 1e-2])
    for f in range(2):
        for r, l2 in enumerate([1e-4, 1e-2]):
            best, nepoch, weight = senteval_fit(x[train[f]], y[train[f]], 3, l2, cfg, valid=(x[valid[f]], y[valid[f]]))
            assert fitted.devacc[f, r] == best and fitted.epochs[f, r] == nepoch
            torch.testing.assert_close(fitted.weight[f, r], weight, atol=1e-5, rtol=1e-4)
    held_out = clf.fit([Fold.split_off(np.arange(400), 1111)], [1e-3])  # validation_split=0.05
    best, nepoch, weight = senteval_fit(x, y, 3, 1e-3, cfg, split_off=0.05)
    assert held_out.devacc[0, 0] == best and held_out.epochs[0, 0] == nepoch


def test_initial_weights_are_nn_linear_after_manual_seed_and_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    weight = initial_weight(384, 2, 1111)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(1111)
    layer = torch.nn.Linear(384, 2)
    assert torch.equal(weight, torch.cat([layer.weight, layer.bias[:, None]], 1).detach())


def test_optimizer_strings_are_parsed_as_senteval_does():
    assert parse_optimizer("adam").params == {"lr": 1e-3, "eps": 1e-8}
    assert parse_optimizer("rmsprop").params == {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8}
    assert parse_optimizer("rmsprop,lr=0.001,alpha=.9").params == {"lr": 1e-3, "alpha": 0.9, "eps": 1e-8}
    assert parse_optimizer("sgd,lr=0.1").lr == 0.1
    for bad, pattern in [("sgd", "needs a learning rate"), ("adam,lr=fast", "key=number"),
                         ("adam,betas=0.9", "takes eps, lr here"), ("rprop", "SentEval knows it"), ("", "string")]:
        with pytest.raises(ValueError, match=pattern):
            parse_optimizer(bad)


def test_nhid_above_zero_is_refused():
    with pytest.raises(ValueError, match=r"only logistic regression \(nhid=0\) is implemented"):
        ClassifierConfig.from_params({"nhid": 1})
    assert ClassifierConfig.from_params(None) == ClassifierConfig()  # SentEval's default: {'nhid': 0}


# ---------------------------------------------------------------------------------------------- folds


def spy_fits(monkeypatch) -> list[tuple[list[Fold], np.ndarray]]:
    """Record every ``fit`` call (its folds and L2 values)."""
    calls = []
    real_fit = LogisticRegression.fit

    def fit(self, folds, l2regs):
        calls.append(([copy.deepcopy(f) for f in folds], np.asarray(l2regs)))
        return real_fit(self, folds, l2regs)

    monkeypatch.setattr(LogisticRegression, "fit", fit)
    return calls


def test_inner_kfold_folds_are_senteval_stratified_folds_with_its_fixed_seed(monkeypatch):
    x, y = blobs(n_per_class=30, nclasses=2)
    calls = spy_fits(monkeypatch)
    first = inner_kfold(LogisticRegression(x, y, 2, fast(), seed=7), 3)
    (scan, grid), (finals, chosen) = calls
    assert grid.tolist() == list(L2_GRID) and chosen.shape == (3, 1)
    outer = list(StratifiedKFold(3, shuffle=True, random_state=1111).split(x, y))  # 1111, whatever the seed
    assert len(scan) == 9 and len(finals) == 3
    for o, (train, _) in enumerate(outer):
        inner = StratifiedKFold(3, shuffle=True, random_state=1111).split(x[train], y[train])
        for i, (in_train, in_test) in enumerate(inner):
            fold = scan[3 * o + i]
            assert np.array_equal(fold.train, train[in_train]) and np.array_equal(fold.valid, train[in_test])
            assert abs(int((y[fold.valid] == 1).sum()) - int((y[fold.valid] == 0).sum())) <= 1  # stratified
        rows = np.sort(np.concatenate([finals[o].train, finals[o].valid]))
        assert np.array_equal(rows, train) and len(finals[o].valid) == int(0.05 * len(train))
    second = inner_kfold(LogisticRegression(x, y, 2, fast(), seed=7), 3)
    assert (first.devacc, first.acc, first.l2reg) == (second.devacc, second.acc, second.l2reg)  # deterministic


def test_kfold_folds_follow_the_seed(monkeypatch):
    x, y = blobs(n_per_class=40, nclasses=3)
    train, test = np.arange(0, 120, 2), np.arange(1, 120, 2)
    calls = spy_fits(monkeypatch)
    kfold(LogisticRegression(x, y, 3, fast(), seed=5), train, test, 4)
    expected = StratifiedKFold(4, shuffle=True, random_state=5).split(x[train], y[train])
    for fold, (tr, te) in zip(calls[0][0], expected):
        assert np.array_equal(fold.train, train[tr]) and np.array_equal(fold.valid, train[te])
    assert np.array_equal(np.sort(np.concatenate([calls[1][0][0].train, calls[1][0][0].valid])), train)


def test_rows_are_in_senteval_order_before_folds_are_drawn(transfer_root, monkeypatch):
    """SentEval sorts samples by (length, label) before it splits them, so its folds index that order."""
    seen = {}
    real_init = LogisticRegression.__init__

    def spy(self, features, labels, *args, **kwargs):
        seen["x"], seen["y"] = np.asarray(features), np.asarray(labels)
        real_init(self, features, labels, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "__init__", spy)
    senteval.engine.SE({"task_path": str(transfer_root), "progress": False, **QUICK}, keyword_batcher).eval("SUBJ")
    task = senteval.TRANSFER_TASKS["SUBJ"](transfer_root)
    keys = sorted(zip((len(s) for s in task.samples), task.labels.tolist(), range(len(task.samples))))
    order = [i for *_, i in keys]
    assert np.array_equal(seen["y"], task.labels[order])
    assert np.array_equal(seen["x"], keyword_batcher(None, [list(task.samples[i]) for i in order]))


# ---------------------------------------------------------------------------------------------- the protocols


@pytest.mark.parametrize("protocol", ["test", "fasttest"])
def test_each_protocol_reaches_the_classifier(transfer_root, monkeypatch, protocol):
    built = []
    real_init = LogisticRegression.__init__

    def spy(self, features, labels, nclasses, config, seed=1111, device="cpu"):
        built.append((config, seed))
        real_init(self, features, labels, nclasses, config, seed, device)

    monkeypatch.setattr(LogisticRegression, "__init__", spy)
    calls = spy_fits(monkeypatch)
    params = senteval.transfer_params(protocol, task_path=str(transfer_root), progress=False)
    expected = senteval.TRANSFER_PROTOCOLS[protocol]
    res = senteval.engine.SE(params, keyword_batcher).eval(["TREC", "SST2"])
    k = expected["kfold"]
    for (config, seed), task in zip(built, ("TREC", "SST2")):
        assert config == ClassifierConfig(**expected["classifier"]) and seed == 1111
        details = res[task]["classifier"]
        assert {key: details[key] for key in expected["classifier"]} == expected["classifier"]
    assert len(calls[0][0]) == k and res["TREC"]["classifier"]["kfold"] == k  # TREC: k-fold on train
    assert len(calls[1][0]) == 1  # then one model on all of train (5% held out)
    assert len(calls[2][0]) == 1 and calls[2][1].tolist() == list(L2_GRID)  # SST2: one split, the L2 grid
    assert res["TREC"]["classifier"]["fits"] == k * len(L2_GRID) + 1 and res["SST2"]["classifier"]["fits"] == 4


def test_protocol_params_are_fresh_copies_of_simcse_settings():
    test = senteval.transfer_params("test", task_path="x")
    assert test["kfold"] == 10 and test["classifier"] == {"nhid": 0, "optim": "adam", "batch_size": 64,
                                                          "tenacity": 5, "epoch_size": 4}
    fast_params = senteval.transfer_params("fasttest")
    assert fast_params["kfold"] == 5 and fast_params["classifier"] == {"nhid": 0, "optim": "rmsprop",
                                                                       "batch_size": 128, "tenacity": 3,
                                                                       "epoch_size": 2}
    test["classifier"]["optim"] = "sgd,lr=1"
    assert senteval.TRANSFER_PROTOCOLS["test"]["classifier"]["optim"] == "adam"
    with pytest.raises(ValueError, match="test, fasttest"):
        senteval.transfer_params("full")


def test_seed_changes_kfold_folds_but_not_inner_kfold_folds(transfer_root):
    def run(task, seed):
        params = {"task_path": str(transfer_root), "progress": False, **QUICK, "seed": seed}
        return senteval.engine.SE(params, keyword_batcher).eval(task)["classifier"]

    assert run("MR", 1)["fold_seed"] == run("MR", 2)["fold_seed"] == 1111
    assert run("TREC", 3)["fold_seed"] == 3
