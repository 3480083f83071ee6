"""Inference precision: the autocast contexts, and bf16/fp16 embeddings against fp32 on the real MiniLM."""

from __future__ import annotations

import pytest
import torch

from simcse_gs.evaluation.hf_encoder import HFEncoder
from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.precision import autocast
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


