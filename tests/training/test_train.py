"""train.py end to end: tiny models for the Trainer mechanics, the real MiniLM for a few real steps."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModel, AutoTokenizer

import train
from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.gumbel import TauSchedule
from tests.conftest import NLI, SENTENCES, WIKI, cli_error, train_args, write_tiny_sts


def run(model_dir, train_file, out, *extra):
    argv = ["--model_name_or_path", str(model_dir), "--train_file", str(train_file), "--output_dir", str(out),
            "--per_device_train_batch_size", "4", "--report_to", "none", "--logging_steps", "1",
            "--save_strategy", "no", "--dataloader_num_workers", "0", *extra]
    return train.main(argv)


def log_history(out):
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


def test_tau_schedule_continues_after_resume(tiny_bert_dir, unsup_file, tmp_path):
    common = ["--max_steps", "4", "--tau_decay_rate", "0.2", "--init_tau", "2.0", "--min_tau", "0.1",
              "--save_strategy", "steps", "--save_steps", "2", "--seed", "3"]
    run(tiny_bert_dir, unsup_file, tmp_path / "full", *common)
    full = {h["step"]: h["tau"] for h in log_history(tmp_path / "full") if "tau" in h}
    schedule = TauSchedule(2.0, 0.1, 0.2)
    assert full == pytest.approx({step: schedule(step - 1) for step in range(1, 5)})  # step s uses tau(s - 1)
    # resume from the step-2 checkpoint in a fresh folder: steps 3 and 4 must use the same temperatures
    shutil.copytree(tmp_path / "full" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    run(tiny_bert_dir, unsup_file, tmp_path / "resumed", *common,
        "--resume_from_checkpoint", str(tmp_path / "resumed" / "checkpoint-2"))
    # (the resumed history starts with the checkpoint's own steps 1-2)
    resumed = {h["step"]: h["tau"] for h in log_history(tmp_path / "resumed") if "tau" in h and h["step"] > 2}
    assert resumed == pytest.approx({3: full[3], 4: full[4]})


def test_training_logs_keep_statistics_and_proxy_learning_rate(tiny_bert_dir, unsup_file, tmp_path):
    run(tiny_bert_dir, unsup_file, tmp_path / "o", "--max_steps", "2", "--proxy_learning_rate", "1e-3",
        "--learning_rate", "1e-5")
    logs = [h for h in log_history(tmp_path / "o") if "loss" in h]
    for key in ("contrastive_loss", "keep_prob", "keep_rate", "keep_entropy", "tau"):
        assert key in logs[0]
    model = SimCSEGSModel.from_pretrained(tmp_path / "o")
    assert model.config.use_gs and model.proxy is not None


def test_optimizer_gives_the_proxy_its_own_learning_rate(tiny_bert_dir, unsup_file, tmp_path):
    from simcse_gs.training.arguments import SimCSETrainingArguments
    from simcse_gs.training.data import SimCSECollator, load_train_dataset
    from simcse_gs.training.trainer import SimCSETrainer

    model = SimCSEGSModel.from_backbone(tiny_bert_dir, use_gs=True)
    args = SimCSETrainingArguments(output_dir=str(tmp_path / "x"), learning_rate=1e-5, proxy_learning_rate=1e-3,
                                   report_to="none")
    trainer = SimCSETrainer(model=model, args=args, train_dataset=load_train_dataset(unsup_file, model.tokenizer),
                            data_collator=SimCSECollator(model.tokenizer))
    opt = trainer.create_optimizer()
    proxy_ids = {id(p) for p in model.proxy.parameters()}
    for group in opt.param_groups:
        in_proxy = {id(p) in proxy_ids for p in group["params"]}
        assert len(in_proxy) == 1
        assert group["lr"] == (1e-3 if in_proxy.pop() else 1e-5)
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    assert n_params == sum(1 for p in model.parameters() if p.requires_grad)


def test_yaml_config_file_is_parsed(tiny_bert_dir, unsup_file, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model_name_or_path: {tiny_bert_dir}\ntrain_file: {unsup_file}\noutput_dir: {tmp_path / 'y'}\n"
                   "use_gs: false\npooler_type: avg\nmax_steps: 1\nper_device_train_batch_size: 4\nreport_to: none\n")
    model_args, data_args, training_args = train.parse_args([str(cfg)])
    assert not model_args.use_gs and model_args.pooler_type == "avg" and training_args.max_steps == 1
    # flags after the file override it
    model_args, _, training_args = train.parse_args([str(cfg), "--pooler_type", "cls", "--max_steps", "3"])
    assert model_args.pooler_type == "cls" and training_args.max_steps == 3 and not model_args.use_gs


def test_unknown_config_key_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("use_gumbel: true\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['use_gumbel'\]"):
        train.parse_args([str(cfg)])


@pytest.mark.slow
@pytest.mark.parametrize(
    "data, settings",
    [
        ("wiki", ["--use_gs", "true", "--pooler_type", "cls", "--mlp_only_train"]),
        ("wiki", ["--use_gs", "false", "--pooler_type", "cls", "--mlp_only_train"]),
        ("nli", ["--use_gs", "true", "--pooler_type", "avg", "--hard_negative_weight", "0.5"]),
    ],
)
def test_real_minilm_steps_and_checkpoint_round_trip(minilm, tmp_path, data, settings):
    if not (WIKI.is_file() and NLI.is_file()):
        pytest.skip(f"training data not found ({WIKI}, {NLI}): put it in data/ or set SIMCSE_GS_DATA (README)")
    source = WIKI if data == "wiki" else NLI
    small = tmp_path / ("train.txt" if data == "wiki" else "train.csv")
    small.write_text("".join(source.read_text(encoding="utf-8").splitlines(keepends=True)[:33]), encoding="utf-8")
    out = tmp_path / "out"
    metrics = run(minilm, small, out, "--max_steps", "2", "--per_device_train_batch_size", "8", *settings)
    assert metrics["train_loss"] > 0
    model = SimCSEGSModel.from_pretrained(out)
    a = model.encode(SENTENCES)
    b = SimCSEGSModel.from_pretrained(out).encode(SENTENCES)
    torch.testing.assert_close(a, b)
    assert a.shape == (len(SENTENCES), 384)
    start = SimCSEGSModel.from_backbone(minilm, use_gs=False, pooler_type=model.config.pooler_type,
                                        mlp_only_train=True).encode(SENTENCES)
    assert not torch.allclose(a, start)  # the two steps changed the encoder


def test_no_pinned_memory_without_an_accelerator(tmp_path):
    from simcse_gs.training.arguments import SimCSETrainingArguments

    args = SimCSETrainingArguments(output_dir=str(tmp_path / "x"), report_to="none")
    assert args.dataloader_pin_memory == torch.accelerator.is_available()  # CPU: off, so no pin_memory warning


# ------------------------------------------------------------------ gradient accumulation


def _spy_on_micro_batches(monkeypatch) -> list[dict]:
    """Record, for every training forward, the optimizer step it belongs to, the tau it used and its outputs."""
    from simcse_gs.training.trainer import LOGGED_OUTPUTS, SimCSETrainer

    calls: list[dict] = []
    taus: list[float | None] = []
    original, forward = SimCSETrainer.compute_loss, SimCSEGSModel.forward

    def spy_forward(self, *args, tau=None, **kwargs):
        taus.append(tau)  # the temperature the model was given
        return forward(self, *args, tau=tau, **kwargs)

    def spy(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = original(self, model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:
            baseline = getattr(model, "reinforce_baseline", None)
            calls.append({"step": self.state.global_step, "tau": taus[-1], "loss": float(loss.detach()),
                          **{k: float(outputs[k]) for k in LOGGED_OUTPUTS if outputs.get(k) is not None},
                          "baseline": None if baseline is None else float(baseline)})
        return (loss, outputs) if return_outputs else loss

    monkeypatch.setattr(SimCSEGSModel, "forward", spy_forward)
    monkeypatch.setattr(SimCSETrainer, "compute_loss", spy)
    return calls


@pytest.mark.parametrize("estimator", ["soft", "reinforce"])
def test_gradient_accumulation_logs_means_and_keeps_tau_per_optimizer_step(tiny_bert_dir, unsup_file, tmp_path,
                                                                          monkeypatch, estimator):
    """--gradient_accumulation_steps 2, --logging_steps 2: 4 micro-batches per log. tau is the schedule's value of
    the optimizer step (the same for both micro-batches of a step); every logged GS statistic, tau and the loss is
    the plain mean over the 4 micro-batches; the REINFORCE baseline is updated after every training forward
    (micro-batch), as docs/RESEARCH_TOOLS.md says, and saved with the model."""
    calls = _spy_on_micro_batches(monkeypatch)
    out = tmp_path / "o"
    run(tiny_bert_dir, unsup_file, out, "--max_steps", "4", "--gradient_accumulation_steps", "2",
        "--logging_steps", "2", "--gs_estimator", estimator, "--init_tau", "2.0", "--min_tau", "0.1",
        "--tau_decay_rate", "0.3", "--gs_reinforce_baseline_momentum", "0.75", "--seed", "7")
    assert [c["step"] for c in calls] == [0, 0, 1, 1, 2, 2, 3, 3]
    schedule = TauSchedule(2.0, 0.1, 0.3)
    if estimator == "soft":
        assert [c["tau"] for c in calls] == [schedule(c["step"]) for c in calls]  # constant within a step
    logs = [h for h in log_history(out) if "loss" in h]
    assert [h["step"] for h in logs] == [2, 4]
    for log, window in zip(logs, (calls[:4], calls[4:])):
        mean = {k: sum(c[k] for c in window) / 4 for k in ("loss", "contrastive_loss", "keep_prob", "keep_rate",
                                                              "keep_entropy", "tau")}
        assert log["loss"] == pytest.approx(mean["loss"], rel=1e-5)
        for key in ("contrastive_loss", "keep_prob", "keep_rate", "keep_entropy"):
            assert log[key] == pytest.approx(mean[key], abs=1e-6), key
        if estimator == "soft":
            assert log["tau"] == pytest.approx(mean["tau"], abs=1e-6)
        else:
            assert "tau" not in log  # REINFORCE samples Bernoulli(p): no temperature
    if estimator == "reinforce":
        expected = None
        for c in calls:  # baseline <- m * baseline + (1 - m) * contrastive loss, after every forward
            expected = c["contrastive_loss"] if expected is None else 0.75 * expected + 0.25 * c["contrastive_loss"]
            assert c["baseline"] == pytest.approx(expected, rel=1e-6)
        saved = SimCSEGSModel.from_pretrained(out).reinforce_baseline.item()
        assert saved == pytest.approx(expected, rel=1e-6)


def test_a_config_data_path_is_found_in_simcse_gs_data(tiny_bert_dir, tmp_path, monkeypatch, capsys):
    """The configs name data/<file>; train.py finds it in $SIMCSE_GS_DATA when data/ does not have it, and says so."""
    own = tmp_path / "my-data"
    own.mkdir()
    (own / "wiki1m_for_simcse.head11914.txt").write_text("\n".join(SENTENCES * 2) + "\n", encoding="utf-8")
    monkeypatch.setenv("SIMCSE_GS_DATA", str(own))
    monkeypatch.chdir(tmp_path)  # no data/ here
    run(tiny_bert_dir, "data/wiki1m_for_simcse.head11914.txt", tmp_path / "o", "--max_steps", "1")
    assert "training file data/wiki1m_for_simcse.head11914.txt not found; using " + str(own) in capsys.readouterr().err
    assert (tmp_path / "o" / "model.safetensors").is_file()


def test_train_py_runs_reinforce_and_checkpoints_the_baseline(tiny_bert_dir, unsup_file, tmp_path):
    import train

    train.main(["--model_name_or_path", tiny_bert_dir, "--train_file", unsup_file, "--output_dir",
                str(tmp_path / "o"), "--per_device_train_batch_size", "4", "--report_to", "none", "--max_steps",
                "2", "--save_strategy", "no", "--dataloader_num_workers", "0", "--gs_estimator", "reinforce",
                "--logging_steps", "1"])
    model = SimCSEGSModel.from_pretrained(tmp_path / "o")
    assert model.config.gs_estimator == "reinforce" and torch.isfinite(model.reinforce_baseline)
    logs = json.loads((tmp_path / "o" / "trainer_state.json").read_text())["log_history"]
    assert any("keep_prob" in h for h in logs) and not any("tau" in h for h in logs)  # tau unused by REINFORCE


def test_an_epoch_ending_in_a_batch_of_one_is_refused_at_start_up(tiny_bert_dir, tmp_path, capsys):
    data = tmp_path / "nine.txt"
    data.write_text("\n".join(f"sentence number {i}" for i in range(9)) + "\n", encoding="utf-8")
    argv = train_args(tiny_bert_dir, data, tmp_path / "o", "--use_gs", "false")  # batch 4: 4 + 4 + 1
    message = cli_error(capsys, argv)
    assert "9 training examples in batches of 4 leave a last batch of 1 example" in message
    assert "--dataloader_drop_last" in message
    train.setup([*argv, "--dataloader_drop_last"])
    train.setup([*argv, "--max_steps", "2"])  # never reaches the last batch


def test_missing_training_file_from_the_command_line(tiny_bert_dir, tmp_path, capsys):
    argv = train_args(tiny_bert_dir, tmp_path / "none.txt", tmp_path / "o")
    assert "Training file not found" in cli_error(capsys, argv)


@pytest.mark.parametrize("value", [False, True])
def test_trust_remote_code_reaches_every_from_pretrained(tiny_bert_dir, unsup_file, tmp_path, monkeypatch, value):
    calls = []
    for cls in (AutoModel, AutoTokenizer):
        original = cls.from_pretrained

        def recording(*args, _original=original, _name=cls.__name__, **kwargs):
            calls.append((_name, kwargs.get("trust_remote_code", "not passed")))
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", staticmethod(recording))
    flags = ["--use_gs", "true", "--trust_remote_code", str(value).lower()]
    train.setup(train_args(tiny_bert_dir, unsup_file, tmp_path / "o", *flags))
    assert {name for name, _ in calls} == {"AutoModel", "AutoTokenizer"}
    assert len(calls) >= 3 and all(flag is value for _, flag in calls), calls  # backbone, proxy, tokenizer


@pytest.mark.parametrize(
    "layout, message",
    [
        ("none", r"SentEval data not found: .*folder does not exist.*--senteval_data"),
        ("sts_only", r"SentEval data not found: .*SICK \(folder is missing\)"),
        ("no_dev", r"SentEval data not found: .*sts-dev\.csv \(file is missing\)"),
    ],
)
def test_missing_or_partial_sts_data_fails_at_start_up(tmp_path, capsys, layout, message):
    root = tmp_path / "sts"
    if layout == "sts_only":
        write_tiny_sts(root, sick=False)
    elif layout == "no_dev":
        write_tiny_sts(root)
        (root / "STS" / "STSBenchmark" / "sts-dev.csv").unlink()
    argv = ["--model_name_or_path", str(tmp_path / "never-loaded"), "--train_file", "x.txt", "--output_dir",
            str(tmp_path / "o"), "--report_to", "none", "--eval_strategy", "steps", "--eval_steps", "5",
            "--senteval_data", str(root)]
    assert re.search(message, cli_error(capsys, argv))  # before the model or the training file is touched


def test_train_py_bf16_runs_on_the_cpu_and_saves_a_checkpoint_that_evaluates(tiny_bert_dir, unsup_file, sts_data,
                                                                             tmp_path, monkeypatch):
    from simcse_gs.evaluation.evaluate import evaluate

    seen = []
    original = SimCSEGSModel.forward

    def spy_forward(self, *args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SimCSEGSModel, "forward", spy_forward)
    out = tmp_path / "out"
    metrics = train.main(["--model_name_or_path", tiny_bert_dir, "--train_file", unsup_file, "--output_dir", str(out),
                          "--bf16", "true", "--max_steps", "2", "--per_device_train_batch_size", "4",
                          "--report_to", "none", "--save_strategy", "no", "--eval_strategy", "steps",
                          "--eval_steps", "2", "--senteval_data", sts_data, "--eval_precision", "bf16",
                          "--eval_batch_size", "4", "--disable_tqdm", "true"])
    assert seen == [(True, torch.bfloat16)] * 2  # the two training steps ran under bf16 autocast
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))
    with safe_open(str(Path(out) / "model.safetensors"), framework="pt") as f:  # weights stay float32
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}
    monkeypatch.setattr(SimCSEGSModel, "forward", original)
    payload = evaluate(["--model_name_or_path", str(out), "--mode", "dev", "--senteval_data", sts_data,
                               "--precision", "bf16", "--no_progress"])
    dev = payload["models"][0]["dev"]
    assert set(dev) == {"stsb_spearman", "sickr_spearman", "avg_sts"}
    assert all(isinstance(v, float) and -100 <= v <= 100 for v in dev.values())
    assert SimCSEGSModel.from_pretrained(out).encode(SENTENCES[:2]).dtype == torch.float32


def test_train_py_distils_towards_the_starting_weights_with_distill_teacher_initial(tiny_bert_dir, unsup_file,
                                                                                   tmp_path):
    """The frozen teacher is the checkpoint training started from, and the saved model does not carry it."""
    argv = ["--model_name_or_path", tiny_bert_dir, "--train_file", unsup_file, "--output_dir", str(tmp_path / "o"),
            "--per_device_train_batch_size", "4", "--report_to", "none", "--max_steps", "2", "--save_strategy", "no",
            "--dataloader_num_workers", "0", "--use_gs", "false", "--pooler_type", "avg", "--prune_layers", "1",
            "--prune_keep_rates", "0.5", "--distill_weight", "1.0", "--distill_teacher", "initial",
            "--learning_rate", "1e-2", "--logging_steps", "1"]
    trainer = train.setup(argv)
    (teacher,) = trainer.model._initial_teacher
    start = AutoModel.from_pretrained(tiny_bert_dir).state_dict()
    for name, value in teacher.backbone.state_dict().items():
        assert torch.equal(value, start[name]), name
    train.train_and_save(trainer)
    assert all(torch.equal(v, start[k]) for k, v in teacher.backbone.state_dict().items())  # still the start
    trained = SimCSEGSModel.from_pretrained(tmp_path / "o")
    assert not torch.equal(trained.backbone.state_dict()["encoder.layer.1.output.dense.weight"],
                           start["encoder.layer.1.output.dense.weight"])
    assert not any("teacher" in key for key in trained.state_dict())
    assert any("distill_loss" in h for h in log_history(tmp_path / "o"))


@pytest.mark.parametrize("scorer", [["--prune_scorer", "idf"],
                                    ["--prune_scorer", "learned", "--prune_scorer_prior", "idf"]],
                         ids=["idf", "learned-idf-prior"])
def test_idf_scored_pruning_trains_with_the_training_file_table_and_ships_it(tiny_bert_dir, unsup_file, tmp_path,
                                                                              scorer):
    from simcse_gs.training.idf import idf_from_dataset

    argv = ["--model_name_or_path", tiny_bert_dir, "--train_file", unsup_file, "--output_dir", str(tmp_path / "o"),
            "--per_device_train_batch_size", "4", "--report_to", "none", "--max_steps", "2", "--save_strategy", "no",
            "--dataloader_num_workers", "0", "--use_gs", "false", "--pooler_type", "avg", "--prune_layers", "1",
            "--prune_keep_rates", "0.5", "--logging_steps", "1", *scorer]
    trainer = train.setup(argv)
    table = idf_from_dataset(trainer.train_dataset, trainer.model.backbone.config.vocab_size)
    assert not torch.all(table == 1)
    torch.testing.assert_close(trainer.model.idf, table)
    train.train_and_save(trainer)
    trained = SimCSEGSModel.from_pretrained(tmp_path / "o")
    torch.testing.assert_close(trained.idf, table)  # the checkpoint prunes with the table it was trained with
    assert trained.encode(SENTENCES[:2]).shape[0] == 2


def test_the_learned_scorer_trains_at_its_own_learning_rate(tiny_bert_dir, unsup_file, tmp_path):
    """--scorer_learning_rate: the in-encoder scorer's parameters in their own optimizer group, the rest at
    --learning_rate."""
    flags = ["--use_gs", "false", "--pooler_type", "avg", "--prune_layers", "1", "--prune_keep_rates", "0.5",
             "--prune_scorer", "learned", "--learning_rate", "1e-5", "--scorer_learning_rate", "1e-3"]
    trainer = train.setup(train_args(tiny_bert_dir, unsup_file, tmp_path / "o", *flags))
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    rates = {names[id(p)]: group["lr"] for group in trainer.create_optimizer().param_groups for p in group["params"]}
    assert len(rates) == sum(1 for p in trainer.model.parameters() if p.requires_grad)
    assert any(name.startswith("layer_scorer.") for name in rates)
    for name, lr in rates.items():
        assert lr == (1e-3 if name.startswith("layer_scorer.") else 1e-5), name


@pytest.mark.parametrize("flags", [[], ["--prune_layers", "1", "--prune_keep_rates", "0.5", "--prune_scorer", "idf"]])
def test_a_scorer_learning_rate_without_a_learned_scorer_is_refused(tiny_bert_dir, unsup_file, tmp_path, capsys,
                                                                    flags):
    argv = train_args(tiny_bert_dir, unsup_file, tmp_path / "o", "--use_gs", "false", "--pooler_type", "avg",
                      "--scorer_learning_rate", "1e-3", *flags)
    assert "--scorer_learning_rate is the learning rate of the in-encoder learned scorer" in cli_error(capsys, argv)
