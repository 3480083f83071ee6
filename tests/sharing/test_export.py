"""Sharing a model where users are: checkpoints that carry their code (AutoModel with trust_remote_code, in a
Python without simcse_gs), GS exports that sentence-transformers runs with the proxy, and the plain export's
quiet load. Tiny random models only."""

from __future__ import annotations

import json
import os
import runpy
import site
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from simcse_gs.evaluation.hf_encoder import HFEncoder
from simcse_gs.model import SimCSEGSModel
from simcse_gs.sharing.export import export_model
from tests.conftest import (
    LONG,
    REPO,
    SENTENCES,
    bench_extra,
    build,
    dropping_gs_model,
    load_sentence_transformer,
    st_by_hand,
)

PACKAGE = REPO / "simcse_gs" / "model"


def run_without_simcse_gs(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python that cannot import simcse_gs (nor senteval): -I -S ignore PYTHONPATH, the
    working directory and .pth files (the editable install), site-packages are added by hand, and a blocker in
    sys.modules stops both packages even where they are installed into site-packages. No network."""
    prelude = (f"import sys\nsys.path.extend({site.getsitepackages()!r})\n"
               "sys.modules['simcse_gs'] = sys.modules['senteval'] = None\n"
               "try:\n    import simcse_gs\n    raise SystemExit('simcse_gs is importable')\nexcept ImportError:\n"
               "    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(cwd / "hf_modules"), HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    return subprocess.run([sys.executable, "-I", "-S", "-c", prelude + code], cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)


def assert_carries_its_code(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "modeling.SimCSEGSConfig", "AutoModel": "modeling.SimCSEGSModel"}
    code = sorted(p.name for p in folder.glob("*.py"))
    assert code == sorted(p.name for p in PACKAGE.glob("*.py"))  # exactly simcse_gs/model/, nothing else
    for name in code:  # every file is the package's own module, byte for byte
        assert (folder / name).read_bytes() == (PACKAGE / name).read_bytes(), name


# ---------------------------------------------------------------------------------------------- remote code


@pytest.mark.slow
def test_checkpoints_and_gs_exports_load_where_simcse_gs_is_not_installed(tiny_bert_dir, unsup_file, tmp_path):
    """save_pretrained, the Trainer's checkpoint-N and final folder: AutoModel(trust_remote_code) encodes as we do
    (1e-6); the GS export: SentenceTransformer(trust_remote_code) too; all in a Python without simcse_gs."""
    import train

    bench_extra("sentence_transformers")  # the subprocess imports it

    model = dropping_gs_model(tiny_bert_dir, pooler_type="cls")
    model.save_pretrained(tmp_path / "saved")
    export_model(model, tmp_path / "export")
    run = tmp_path / "run"
    train.main(["--model_name_or_path", tiny_bert_dir, "--train_file", unsup_file, "--output_dir", str(run),
                "--per_device_train_batch_size", "4", "--report_to", "none", "--max_steps", "2", "--save_strategy",
                "steps", "--save_steps", "2", "--dataloader_num_workers", "0", "--use_gs", "true"])
    folders = [tmp_path / "saved", run / "checkpoint-2", run]
    for folder in folders:
        assert_carries_its_code(folder)

    code = f"""
import torch
from transformers import AutoModel
from sentence_transformers import SentenceTransformer
sentences = {SENTENCES!r}
out = {{}}
for folder in {[str(f) for f in folders]!r}:
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
    out[folder] = model.encode(sentences)
st = SentenceTransformer({str(tmp_path / "export")!r}, trust_remote_code=True, device="cpu")
out["st"] = st.encode(sentences, convert_to_tensor=True)
torch.save(out, "encodings.pt")
"""
    done = run_without_simcse_gs(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Do you wish to run the custom code" not in done.stdout + done.stderr  # no second trust prompt
    theirs = torch.load(tmp_path / "encodings.pt", weights_only=True)
    for folder in folders:
        ours = SimCSEGSModel.from_pretrained(folder).encode(SENTENCES)
        torch.testing.assert_close(theirs[str(folder)], ours, atol=1e-6, rtol=0)
    torch.testing.assert_close(theirs["st"], model.encode(SENTENCES), atol=1e-5, rtol=0)


def test_our_loaders_never_run_the_code_a_folder_carries(tiny_bert_dir, tmp_path):
    from simcse_gs.evaluation.keep_map import load_gs_model

    model = build(tiny_bert_dir, use_gs=True)
    model.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "modeling.py").write_text("raise RuntimeError('the folder code ran')\n")
    assert isinstance(SimCSEGSModel.from_pretrained(tmp_path / "ckpt"), SimCSEGSModel)
    assert type(AutoModel.from_pretrained(tmp_path / "ckpt")) is SimCSEGSModel  # the installed class, no prompt
    assert type(load_gs_model(tmp_path / "ckpt")) is SimCSEGSModel
    export_model(str(tmp_path / "ckpt"), tmp_path / "e")  # reads the checkpoint with our class, writes our code
    assert (tmp_path / "e" / "modeling.py").read_bytes() == (PACKAGE / "modeling.py").read_bytes()


# ---------------------------------------------------------------------------------------------- sentence-transformers


GS_EXPORT_CASES = [
    ("tiny_bert_dir", dict(pooler_type="cls")),  # MLP at inference
    ("tiny_bert_dir", dict(pooler_type="cls", mlp_only_train=True)),
    ("tiny_bert_dir", dict(pooler_type="avg")),  # keep-weighted mean
    ("tiny_bert_dir", dict(pooler_type="avg_first_last")),  # not expressible with stock modules
    ("tiny_roberta_dir", dict(pooler_type="avg")),
]


@pytest.mark.parametrize("fixture, settings", GS_EXPORT_CASES, ids=lambda c: c if isinstance(c, str) else
                         "-".join(map(str, c.values())))
def test_gs_export_runs_the_proxy_in_sentence_transformers(request, tmp_path, fixture, settings):
    model = dropping_gs_model(request.getfixturevalue(fixture), **settings)
    result = export_model(model, tmp_path / "e")
    assert result.warnings == [] and result.st_module == "st_module.SimCSEGSEncoder"
    assert json.loads((tmp_path / "e" / "modules.json").read_text())[0]["type"] == "st_module.SimCSEGSEncoder"
    ours = model.encode(SENTENCES)
    st = load_sentence_transformer(str(tmp_path / "e"), trust_remote_code=True, device="cpu")  # own code
    torch.testing.assert_close(st.encode(SENTENCES, convert_to_tensor=True), ours, atol=1e-5, rtol=0)
    assert st.get_embedding_dimension() == ours.shape[1]
    enc = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():  # the same model keeping every token: what the old export gave
        keep_all = model.embed(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"), None)
    assert not torch.allclose(keep_all, ours, atol=1e-3)  # so the equality above needs the proxy
    # the export is also a SimCSE-GS checkpoint
    torch.testing.assert_close(SimCSEGSModel.from_pretrained(tmp_path / "e").encode(SENTENCES), ours, atol=1e-6,
                               rtol=0)


def test_gs_export_needs_trust_remote_code_and_survives_a_sentence_transformers_resave(tiny_bert_dir, tmp_path):
    model = dropping_gs_model(tiny_bert_dir, pooler_type="avg")
    export_model(model, tmp_path / "e")
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        load_sentence_transformer(str(tmp_path / "e"), device="cpu")
    st = load_sentence_transformer(str(tmp_path / "e"), trust_remote_code=True, device="cpu")  # own code
    assert type(st[0].model).__module__.startswith("transformers_modules.")  # the folder's code ran ...
    assert type(AutoModel.from_pretrained(tmp_path / "e")) is SimCSEGSModel  # ... and left our registry alone
    st.save(str(tmp_path / "resaved"))
    again = load_sentence_transformer(str(tmp_path / "resaved"), trust_remote_code=True, device="cpu")  # own code
    torch.testing.assert_close(again.encode(SENTENCES, convert_to_tensor=True), model.encode(SENTENCES), atol=1e-5,
                               rtol=0)


def test_gs_export_hf_format_is_the_model_with_its_code(tiny_bert_dir, tmp_path):
    model = dropping_gs_model(tiny_bert_dir, pooler_type="avg_top2")
    result = export_model(model, tmp_path / "e", fmt="hf")
    assert "modules.json" not in result.files  # st_module.py comes with the code, but nothing asks for it
    assert_carries_its_code(tmp_path / "e")
    torch.testing.assert_close(SimCSEGSModel.from_pretrained(tmp_path / "e").encode(SENTENCES),
                               model.encode(SENTENCES), atol=1e-6, rtol=0)


def test_mean_pooled_export_loads_without_a_missing_pooler_report(tiny_bert_dir, tmp_path, capfd):
    model = build(tiny_bert_dir, use_gs=False, pooler_type="avg")
    export_model(model, tmp_path / "e")
    capfd.readouterr()
    st = load_sentence_transformer(str(tmp_path / "e"), device="cpu")
    printed = capfd.readouterr()
    assert "MISSING" not in printed.out + printed.err and "pooler" not in printed.out + printed.err
    assert getattr(st[0].auto_model, "pooler", None) is None
    torch.testing.assert_close(st.encode(SENTENCES, convert_to_tensor=True), model.encode(SENTENCES), atol=1e-5,
                               rtol=0)


def test_export_cli_for_a_gs_checkpoint(tiny_bert_dir, tmp_path, capsys):
    dropping_gs_model(tiny_bert_dir).save_pretrained(tmp_path / "gs")
    cli = runpy.run_path(str(REPO / "export.py"), run_name="export_cli")
    capsys.readouterr()
    assert cli["main"](["--model_name_or_path", str(tmp_path / "gs"), "--output_dir", str(tmp_path / "a")]) == 0
    done = capsys.readouterr()
    assert "WARNING" not in done.err and "st_module.SimCSEGSEncoder" in done.out and "trust_remote_code" in done.out
    assert "st_module.py" in done.out and "modeling.py" in done.out
    argv = ["--model_name_or_path", str(tmp_path / "gs"), "--output_dir", str(tmp_path / "b"), "--drop_proxy"]
    assert cli["main"](argv) == 0
    done = capsys.readouterr()
    assert "WARNING:" in done.err and "drops the token-keep proxy" in done.err and "st_module" not in done.out


EXPORT_CASES = [
    dict(pooler_type="cls"),  # MLP at inference -> Dense(tanh), and the HF pooler
    dict(pooler_type="cls", mlp_only_train=True),
    dict(pooler_type="cls_before_pooler"),
    dict(pooler_type="avg"),
]


@pytest.mark.parametrize("fixture", ["tiny_bert_dir", "tiny_roberta_dir"])
@pytest.mark.parametrize("settings", EXPORT_CASES, ids=lambda s: "-".join(map(str, s.values())))
def test_export_round_trip_gives_the_same_embeddings(request, tmp_path, fixture, settings):
    from simcse_gs.sharing.export import export_model

    model = build(request.getfixturevalue(fixture), use_gs=False, **settings)
    result = export_model(model, tmp_path / "e")
    assert result.warnings == [] and "README.md" in result.files
    ours = model.encode(SENTENCES, batch_size=4)
    torch.testing.assert_close(st_by_hand(tmp_path / "e", SENTENCES), ours, atol=1e-5, rtol=0)
    # evaluation.py on the export, with the pooler its README names (SimCSE's convention: cls = pooler_output)
    eval_pooler = "cls_before_pooler" if settings.get("mlp_only_train") else settings["pooler_type"]
    plain = HFEncoder.from_pretrained(str(tmp_path / "e"), eval_pooler).encode(SENTENCES, batch_size=4)
    torch.testing.assert_close(plain, ours, atol=1e-5, rtol=0)
    if not getattr(model, "mlp", None):  # no pooler weights written: --pooler cls would read a random pooler
        with pytest.raises(ValueError, match="no pooler weights.*cls_before_pooler"):
            HFEncoder.from_pretrained(str(tmp_path / "e"), "cls")
    readme = (tmp_path / "e" / "README.md").read_text()
    assert f"evaluation.py --model_name_or_path PATH --pooler {eval_pooler}\n" in readme
    if settings == dict(pooler_type="cls"):  # the MLP became the HF pooler
        assert result.dense
        tok, hf = AutoTokenizer.from_pretrained(tmp_path / "e"), AutoModel.from_pretrained(tmp_path / "e")
        with torch.no_grad():
            pooled = hf(**tok(SENTENCES, padding=True, return_tensors="pt")).pooler_output
        torch.testing.assert_close(pooled, ours, atol=1e-5, rtol=0)


@pytest.mark.parametrize("settings", EXPORT_CASES, ids=lambda s: "-".join(map(str, s.values())))
def test_export_loads_in_sentence_transformers(tiny_bert_dir, tmp_path, settings):
    st = bench_extra("sentence_transformers")

    from simcse_gs.sharing.export import export_model

    model = build(tiny_bert_dir, use_gs=False, **settings)
    export_model(model, tmp_path / "e")
    theirs = st.SentenceTransformer(str(tmp_path / "e"), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    torch.testing.assert_close(theirs.cpu(), model.encode(SENTENCES), atol=1e-5, rtol=0)


def test_export_of_a_gs_checkpoint_with_drop_proxy_warns_and_keeps_every_token(gs_checkpoint, tmp_path):
    from simcse_gs.sharing.export import export_model

    with pytest.warns(UserWarning, match="drops the token-keep proxy"):
        result = export_model(gs_checkpoint, tmp_path / "e", drop_proxy=True)
    assert "Warning: the token-keep proxy is not exported" in (tmp_path / "e" / "README.md").read_text()
    model = SimCSEGSModel.from_pretrained(gs_checkpoint).eval()
    enc = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        keep_all = model.embed(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"), None)
    exported = st_by_hand(tmp_path / "e", SENTENCES)
    torch.testing.assert_close(exported, keep_all, atol=1e-5, rtol=0)
    assert not torch.allclose(exported, model.encode(SENTENCES), atol=1e-3)  # the proxy did drop tokens
    assert result.st_pooling == "mean"


def test_export_refusals_and_the_cli(tiny_bert_dir, tmp_path, capsys):
    from simcse_gs.sharing.export import export_model

    model = build(tiny_bert_dir, use_gs=False, pooler_type="avg_top2")
    with pytest.raises(ValueError, match="cannot express"):
        export_model(model, tmp_path / "a")
    result = export_model(model, tmp_path / "b", fmt="hf")
    assert "modules.json" not in result.files and "model.safetensors" in result.files
    assert "output_hidden_states=True" in (tmp_path / "b" / "README.md").read_text()
    with pytest.raises(FileExistsError):
        export_model(model, tmp_path / "b", fmt="hf")
    with pytest.raises(ValueError, match="not a SimCSE-GS checkpoint"):
        export_model(tiny_bert_dir, tmp_path / "c")

    build(tiny_bert_dir, use_gs=True).save_pretrained(tmp_path / "gs")
    cli = runpy.run_path(str(REPO / "export.py"), run_name="export_cli")
    capsys.readouterr()
    argv = ["--model_name_or_path", str(tmp_path / "gs"), "--output_dir", str(tmp_path / "d"), "--drop_proxy"]
    assert cli["main"](argv) == 0
    done = capsys.readouterr()
    assert "WARNING:" in done.err and "drops the token-keep proxy" in done.err
    assert "modules.json" in done.out and "1_Pooling/config.json" in done.out
    assert cli["main"](argv) == 2


@pytest.mark.parametrize("settings", [dict(use_gs=True, gs_estimator="topk", gs_target_keep_rate=0.5),
                                      dict(use_gs=False, token_drop_rate=0.3, token_drop_heuristic="random",
                                           keep_budget=0.5)])
def test_exports_of_selecting_models_select_in_sentence_transformers(tiny_bert_dir, tmp_path, settings):
    """A model that drops tokens at inference (a top-k proxy, or a control with a keep budget) is exported whole,
    and its sentence-transformers module drops the same tokens as encode."""
    SentenceTransformer = bench_extra("sentence_transformers").SentenceTransformer  # noqa: N806

    from simcse_gs.sharing.export import export_model

    model = build(tiny_bert_dir, pooler_type="avg", gs_attn_renorm=True, **settings)
    export_model(model, tmp_path / "e")
    st = SentenceTransformer(str(tmp_path / "e"), trust_remote_code=True, device="cpu")  # own code
    ours = model.encode(LONG)
    torch.testing.assert_close(st.encode(LONG, convert_to_tensor=True), ours, atol=1e-5, rtol=0)
    assert not torch.allclose(ours, model.encode(LONG, keep_budget=1.0, prune=True), atol=1e-3)
