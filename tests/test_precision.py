"""The inference precision option: ``encode(..., precision=)``, ``evaluation.py --precision``, ``--eval_precision``."""

from __future__ import annotations

import pytest
import torch

from simcse_gs.evaluation.evaluate import evaluate, main
from simcse_gs.evaluation.hf_encoder import HFEncoder
from simcse_gs.evaluation.sts import STSEvaluator
from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.precision import autocast
from simcse_gs.training.arguments import DataArguments
from tests.conftest import SENTENCES


def test_autocast_contexts():
    x = torch.randn(3, 4)
    w = torch.randn(5, 4)
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        with autocast(precision, "cpu"):
            assert torch.nn.functional.linear(x, w).dtype == dtype

        @autocast(precision, torch.device("cpu"))  # also a decorator
        def linear():
            return torch.nn.functional.linear(x, w)

        assert linear().dtype == dtype
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16, got 'tf32'"):
        autocast("tf32", "cpu")
    with autocast("bfloat16", "cpu"):  # torch's names are accepted too
        assert torch.nn.functional.linear(x, w).dtype == torch.bfloat16


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["simcse_gs", "hf"])
def test_bf16_and_fp16_embeddings_agree_with_fp32_on_minilm(minilm, kind):
    """Measured here: cosine to the fp32 vectors >= 0.9999 (bf16) on these sentences; 0.999 is the bound."""
    if kind == "simcse_gs":
        encoder = SimCSEGSModel.from_backbone(minilm, use_gs=True, pooler_type="avg")  # GS keep rule included
    else:
        encoder = HFEncoder.from_pretrained(minilm, "avg")
    ref = encoder.encode(SENTENCES)
    for precision in ("bf16", "fp16"):
        vectors = encoder.encode(SENTENCES, precision=precision)
        assert vectors.dtype == torch.float32 and vectors.shape == ref.shape
        cos = torch.nn.functional.cosine_similarity(vectors, ref)
        assert cos.min() >= 0.999, (precision, cos)
        assert not torch.equal(vectors, ref)  # the reduced precision was really used
    with pytest.raises(ValueError, match="got 'half'"):
        encoder.encode(SENTENCES, precision="half")


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
