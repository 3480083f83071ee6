"""``encode`` with the calling convention of sentence-transformers and MTEB, for both encoders, and MTEB itself
(offline, STS-B from local files) against our evaluator."""

from __future__ import annotations

import runpy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from simcse_gs.evaluation.hf_encoder import HFEncoder
from simcse_gs.model.gumbel import KEEP
from simcse_gs.sharing.export import export_model
from tests.conftest import (
    REPO,
    SENTENCES,
    bench_extra,
    build,
    dropping_gs_model,
    kept_fraction,
    load_sentence_transformer,
)


@pytest.fixture(params=["gs_model", "hf_encoder"])
def encoder(request, tiny_bert_dir):
    if request.param == "gs_model":
        return dropping_gs_model(tiny_bert_dir, pooler_type="avg")
    return HFEncoder.from_pretrained(tiny_bert_dir, "avg")


def test_encode_still_returns_a_float32_cpu_tensor_by_default(encoder):
    out = encoder.encode(SENTENCES, 4)  # positional batch_size, as existing callers pass it
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert out.shape[0] == len(SENTENCES)


def test_encode_takes_the_sentence_transformers_arguments(encoder):
    base = encoder.encode(SENTENCES)
    single = encoder.encode(SENTENCES[1])  # one string is one sentence, not a list of characters
    assert single.shape == base.shape[1:]
    torch.testing.assert_close(single, base[1], atol=1e-5, rtol=0)
    array = encoder.encode(SENTENCES, convert_to_numpy=True)
    assert isinstance(array, np.ndarray) and array.dtype == np.float32
    np.testing.assert_allclose(array, base.numpy(), atol=1e-6)
    assert isinstance(encoder.encode(SENTENCES, convert_to_numpy=True, convert_to_tensor=True), torch.Tensor)
    unit = encoder.encode(SENTENCES, normalize_embeddings=True)
    torch.testing.assert_close(unit, F.normalize(base, dim=-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(len(SENTENCES)))
    prompted = encoder.encode(SENTENCES, prompt="query: ")
    torch.testing.assert_close(prompted, encoder.encode([f"query: {s}" for s in SENTENCES]), atol=1e-6, rtol=0)
    assert not torch.allclose(prompted, base, atol=1e-3)
    ignored = encoder.encode(SENTENCES, batch_size=2, show_progress_bar=False, prompt_name="query",
                             task_name="STSBenchmark", hf_split="test", hf_subset="default")
    torch.testing.assert_close(ignored, base, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="output_value='token_embeddings'"):
        encoder.encode(SENTENCES, output_value="token_embeddings")
    with pytest.raises(TypeError, match="a string or a list of strings"):
        encoder.encode([1, 2])


def test_encode_answers_like_sentence_transformers_call_for_call(tiny_bert_dir, tmp_path):
    model = build(tiny_bert_dir, use_gs=False, pooler_type="avg")
    export_model(model, tmp_path / "e")
    st = load_sentence_transformer(str(tmp_path / "e"), device="cpu")
    calls = [dict(convert_to_numpy=True), dict(convert_to_tensor=True), dict(normalize_embeddings=True,
             convert_to_numpy=True), dict(batch_size=2, convert_to_tensor=True, show_progress_bar=False)]
    for inputs in (SENTENCES, SENTENCES[0]):
        for kwargs in calls:
            ours, theirs = model.encode(inputs, **kwargs), st.encode(inputs, **kwargs)
            assert type(ours) is type(theirs) and ours.shape == theirs.shape, kwargs
            np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=1e-5, err_msg=str(kwargs))


def _write_stsb(root, n=40):
    """SentEval's STS-B layout with ``n`` test pairs (distinct gold scores, so Spearman is well defined)."""
    from tests.conftest import WORDS

    rng = np.random.default_rng(0)
    folder = root / "STS" / "STSBenchmark"
    folder.mkdir(parents=True)
    lines = []
    for i in range(n):
        a = " ".join(rng.choice(WORDS, rng.integers(3, 9)))
        b = " ".join(rng.choice(WORDS, rng.integers(3, 9)))
        lines.append(f"main-captions\tMSRvid\t2012test\t{i:04d}\t{(i * 0.37) % 5:.3f}\t{a}\t{b}\n")
    (folder / "sts-test.csv").write_text("".join(lines))
    return str(root)


@pytest.mark.slow
def test_mteb_runs_sts_b_offline_and_agrees_with_our_evaluator(minilm, tmp_path, capsys):
    """The real MiniLM: a tiny random model's cosines are so close together that 1e-7 differences between two
    correct pipelines (different batching) reorder them."""
    bench_extra("mteb")
    data = _write_stsb(tmp_path / "data")
    model = build(minilm, use_gs=True, pooler_type="cls")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.proxy.head.weight.copy_(torch.randn(model.proxy.head.weight.shape, generator=g) * 0.05)
        model.proxy.head.bias[KEEP] = -0.3
    assert 0 < kept_fraction(model) < 1
    model.save_pretrained(tmp_path / "ckpt")
    script = runpy.run_path(str(REPO / "scripts" / "mteb_sts.py"), run_name="mteb_sts")
    numbers = script["main"](["--model_name_or_path", str(tmp_path / "ckpt"), "--senteval_data", data])
    assert abs(numbers["simcse_gs"]) > 1  # a real correlation, not a constant
    assert numbers["mteb"] == pytest.approx(numbers["simcse_gs"], abs=1e-4)
    assert "MTEB" in capsys.readouterr().out
