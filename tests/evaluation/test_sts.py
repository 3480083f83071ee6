"""The STS evaluation (simcse_gs.evaluation.sts): every distinct sentence encoded once, in the evaluator's precision."""

from __future__ import annotations

import pytest
import torch

from simcse_gs.evaluation.sts import STSEvaluator
from simcse_gs.training.arguments import DataArguments


def test_stseval_encodes_with_its_precision(sts_data):
    calls = []

    class Recorder:
        def encode(self, sentences, **kwargs):
            calls.append(kwargs.get("precision"))
            return torch.randn(len(sentences), 4)

    STSEvaluator(sts_data, precision="bf16")(Recorder())
    assert calls and set(calls) == {"bf16"}
    assert STSEvaluator(sts_data).precision == "fp32"
    with pytest.raises(ValueError, match="--eval_precision must be one of fp32, bf16, fp16"):
        DataArguments(eval_precision="int8")


def test_evaluate_sts_encodes_every_distinct_sentence_once_in_one_call_per_task(sts_data):
    import numpy as np

    from simcse_gs.evaluation.sts import evaluate_sts

    calls: list[list[str]] = []

    def encode(sentences):
        calls.append(list(sentences))
        return np.stack([np.array([len(s), s.count("a") + 1.0, 1.0]) for s in sentences])

    results = evaluate_sts(encode, sts_data, progress=False)
    seen = [s for call in calls for s in call]
    assert len(seen) == len(set(seen))  # cached across tasks: STS-B's repeats of STS12-16 are not re-encoded
    assert len(calls) <= 7  # one call per task (none when a task brings nothing new)
    assert set(results) == {"STS12", "STS13", "STS14", "STS15", "STS16", "STSBenchmark", "SICKRelatedness"}
