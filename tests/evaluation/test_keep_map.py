"""Keep maps of a GS checkpoint: data, PNG and HTML follow the inference rule (and a budget); the command."""

from __future__ import annotations

import json
import math
import runpy
import struct
from pathlib import Path

import pytest
import torch

from tests.conftest import LONG, REPO, SENTENCES, build


def test_keep_maps_follow_the_inference_rule_and_render(gs_checkpoint, tmp_path):
    from simcse_gs.evaluation.keep_map import compute_keep_maps, load_gs_model, write_keep_maps

    model = load_gs_model(gs_checkpoint)
    sentences = [*SENTENCES, 'tags <script>alert("x")</script> & co']
    maps = compute_keep_maps(model, sentences, batch_size=3)
    assert [m.sentence for m in maps] == sentences
    enc = model.tokenizer(sentences[0], return_tensors="pt")
    _, prob, keep, decided = model.score_tokens(enc["input_ids"], enc["attention_mask"])
    assert len(maps[0].tokens) == enc["input_ids"].shape[1]
    torch.testing.assert_close(torch.tensor(maps[0].keep_prob), prob[0], atol=1e-6, rtol=0)
    assert maps[0].kept == keep[0].bool().tolist() and maps[0].decided == decided[0].tolist()
    assert maps[0].tokens[0] == "[CLS]" and not maps[0].decided[0] and maps[0].kept[0]
    kept_decided = [k for m in maps for k, d in zip(m.kept, m.decided) if d]
    assert 0 < sum(kept_decided) < len(kept_decided)  # the random head keeps some tokens and drops others

    paths = write_keep_maps(maps, tmp_path / "km")
    png = Path(paths["png"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 100 and height > 100
    page = Path(paths["html"]).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page and "&amp; co" in page
    assert page.count('class="s"') == len(sentences)
    assert json.loads(Path(paths["json"]).read_text())[0]["tokens"] == maps[0].tokens


def test_keep_map_script_and_non_gs_checkpoints(gs_checkpoint, tiny_bert_dir, tmp_path, capsys):
    sentence_file = tmp_path / "s.txt"
    sentence_file.write_text("\n".join(SENTENCES[:3]) + "\n")
    script = runpy.run_path(str(REPO / "scripts" / "keep_map.py"), run_name="keep_map_script")
    script["main"](["--model_name_or_path", gs_checkpoint, "--sentences", str(sentence_file), "one more sentence",
                    "--output_dir", str(tmp_path / "out")])
    assert "4 sentences" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "out" / "keep_map.json").read_text())) == 4
    assert (tmp_path / "out" / "keep_map.png").stat().st_size > 0

    from simcse_gs.evaluation.keep_map import compute_keep_maps, load_gs_model

    plain = build(tiny_bert_dir, use_gs=False)
    plain.save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="not a Gumbel-Softmax checkpoint"):
        load_gs_model(tmp_path / "plain")
    with pytest.raises(ValueError, match="not a Gumbel-Softmax checkpoint"):
        compute_keep_maps(plain, SENTENCES)
    with pytest.raises(ValueError, match="not a SimCSE-GS checkpoint"):
        load_gs_model(tiny_bert_dir)


def test_keep_maps_at_a_budget(tiny_bert_dir):
    from simcse_gs.evaluation.keep_map import compute_keep_maps

    model = build(tiny_bert_dir, use_gs=True, pooler_type="avg", gs_attn_renorm=True)
    with torch.no_grad():
        model.proxy.head.weight.normal_(0, 1.0)
    maps = compute_keep_maps(model, LONG, keep_budget=0.5)
    for m in maps:
        n = sum(m.decided)
        assert sum(k and d for k, d in zip(m.kept, m.decided)) == math.ceil(0.5 * n)
        kept_p = [p for p, k, d in zip(m.keep_prob, m.kept, m.decided) if d and k]
        dropped_p = [p for p, k, d in zip(m.keep_prob, m.kept, m.decided) if d and not k]
        assert not dropped_p or min(kept_p) >= max(dropped_p)  # the most probable tokens are the kept ones
    with pytest.raises(ValueError, match="keep_budget must be in"):
        compute_keep_maps(model, LONG, keep_budget=1.5)
