"""Plain Hugging Face encoders behind ``encode``: SimCSE's poolers, input order kept."""

from __future__ import annotations

import torch
from transformers import BertModel

from simcse_gs.evaluation.hf_encoder import HFEncoder
from simcse_gs.model_folder import max_input_length


def test_hf_encoder_pooling_and_order(tiny_bert_dir):
    sentences = ["a man plays the guitar on the mat in the kitchen", "rain", "two dogs run"]
    enc = HFEncoder.from_pretrained(tiny_bert_dir, "avg")
    tok, model = enc.tokenizer, enc.model
    assert enc.max_length == max_input_length(tok, model.config) == 64  # position embeddings cap the tokenizer's 512
    got = enc.encode(sentences, batch_size=2)
    with torch.inference_mode():
        for i, s in enumerate(sentences):  # one at a time: no padding at all
            hidden = model(**tok(s, return_tensors="pt")).last_hidden_state[0]
            torch.testing.assert_close(got[i], hidden.mean(0), rtol=1e-4, atol=1e-5)
    cls = HFEncoder(model, tok, "cls").encode(sentences, batch_size=2)
    raw_cls = HFEncoder(model, tok, "cls_before_pooler").encode(sentences)
    with torch.inference_mode():  # SimCSE's convention: cls = pooler_output, cls_before_pooler = raw [CLS]
        for i, s in enumerate(sentences):
            out = model(**tok(s, return_tensors="pt"))
            torch.testing.assert_close(cls[i], out.pooler_output[0], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(raw_cls[i], out.last_hidden_state[0, 0], rtol=1e-4, atol=1e-5)
    no_pooler = BertModel(model.config, add_pooling_layer=False)
    no_pooler.load_state_dict(model.state_dict(), strict=False)
    torch.testing.assert_close(HFEncoder(no_pooler, tok, "cls").encode(sentences), raw_cls)
    assert HFEncoder(model, tok, "avg_first_last").encode(sentences).shape == (3, 32)
    assert enc.encode([]).shape == (0, 32)
