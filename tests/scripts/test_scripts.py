"""The shell entry points, run for real on a tiny random BERT and tiny STS data: quickstart.sh (the README's main
job) and run_experiment.sh (behind reproduce.sh, gumbel_softmax.sh and cpu_results.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from simcse_gs.sharing.model_card import read_card_facts
from tests.conftest import REPO, run_script


@pytest.mark.slow
def test_quickstart_runs_end_to_end(tiny_bert_dir, unsup_file, sts_data, tmp_path):
    out = tmp_path / "qs"
    env = {"MODEL": tiny_bert_dir, "TRAIN_FILE": unsup_file, "SENTEVAL_DATA": sts_data, "OUT": str(out),
           "STEPS": "2", "BATCH": "4"}
    proc = run_script("quickstart.sh", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for run in ("start", "unsup-simcse", "unsup-gs"):
        record = json.loads((out / run / "eval_test.json").read_text())["models"][0]
        assert set(record["simcse"]) >= {"sts12", "stsb", "sickr", "avg"}
    assert (out / "unsup-gs" / "model.safetensors").is_file()
    assert list((out / "unsup-gs" / "runs").rglob("events.out.tfevents.*"))  # tensorboard logs in the output folder
    table = (out / "results.md").read_text()
    assert all(f"| {run} |" in table for run in ("start", "unsup-simcse", "unsup-gs"))
    assert "== results" in proc.stdout and "| unsup-gs |" in proc.stdout


def test_quickstart_without_training_data_says_what_to_do(tmp_path):
    proc = run_script("quickstart.sh", env={"TRAIN_FILE": str(tmp_path / "missing.txt"), "OUT": str(tmp_path / "o")})
    assert proc.returncode == 2
    assert "error: no training sentences" in proc.stderr and "download_data.sh" in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_run_experiment_trains_evaluates_and_skips_finished_runs(tiny_bert_dir, unsup_file, sts_data, tmp_path):
    args = ("configs/cpu-minilm-unsup-gs.yaml", "--seeds", "1", "--output_root", str(tmp_path / "r"), "--model",
            tiny_bert_dir, "--train_file", unsup_file, "--senteval_data", sts_data, "--eval_flags",
            "--protocol simcse --no_progress", "--", "--max_steps", "2", "--per_device_train_batch_size", "4")
    proc = run_script("run_experiment.sh", *args, env={})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "r" / "cpu-minilm-unsup-gs" / "seed1"
    record = json.loads((run / "eval_test.json").read_text())["models"][0]
    assert record["keep_stats"]["keep_rate"] > 0 and (run / "train_log.txt").is_file()
    again = run_script("run_experiment.sh", *args, env={})
    assert again.returncode == 0 and "done already, skipping" in again.stdout


def test_run_experiment_fails_before_training_when_sts_data_is_missing(unsup_file, tmp_path):
    proc = run_script("run_experiment.sh", "configs/cpu-minilm-unsup-gs.yaml", "--train_file", unsup_file,
                      "--senteval_data", str(tmp_path / "nowhere"), "--output_root", str(tmp_path / "r"), env={})
    assert proc.returncode == 2 and "error: STS data not found" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_eval_sh_writes_results_beside_each_checkpoint(tiny_bert_dir, sts_data, tmp_path):
    ckpt = tmp_path / "encoder"
    shutil.copytree(tiny_bert_dir, ckpt)
    proc = run_script("eval.sh", str(ckpt), "--", "--pooler", "avg", "--protocol", "simcse", "--no_progress",
                      env={"SENTEVAL_DATA": sts_data})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads((ckpt / "eval_test.json").read_text())["models"][0]["pooler"] == "avg"


@pytest.mark.slow
def test_selection_experiment_runs_every_method_and_the_table_reads_it(tiny_bert_dir, unsup_file, sts_data, tmp_path):
    env = {"MODEL": tiny_bert_dir, "TRAIN_FILE": unsup_file, "SENTEVAL_DATA": sts_data, "SEEDS": "1", "RATES": "0.6",
           "STEPS": "2", "OUTPUT_ROOT": str(tmp_path / "sel"), "KEEP_DIR": str(tmp_path / "keep")}
    proc = run_script("selection_experiment.sh", env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    groups = sorted(p.name for p in (tmp_path / "keep").iterdir())
    assert groups == ["hard-concrete-r0.6", "idf-drop-r0.6", "random-drop-r0.6", "simcse-r1.0", "topk-r0.6"]
    for group in groups:
        record = json.loads((tmp_path / "keep" / group / "seed1" / "eval_test.json").read_text())["models"][0]
        assert record["max_length"] and "avg" in record["simcse"]
        if group != "simcse-r1.0":  # evaluated at the budget, pruned, in bf16
            args = json.loads((tmp_path / "keep" / group / "seed1" / "eval_test.json").read_text())["args"]
            assert args["keep_budget"] == 0.6 and args["prune"] and args["precision"] == "bf16"
            assert 0.6 <= record["keep_stats"]["keep_rate"] < 0.9
        state = json.loads((tmp_path / "keep" / group / "seed1" / "trainer_state.json").read_text())
        assert state["global_step"] == 2
    table = subprocess.run(["python", str(REPO / "scripts" / "plot_pareto.py"), str(tmp_path / "keep")],
                           capture_output=True, text=True)
    assert table.returncode == 0 and "| 0.6 |" in table.stdout


@pytest.mark.slow
def test_selection_experiment_with_a_train_rate_trains_once_and_evaluates_every_budget(
        tiny_bert_dir, unsup_file, sts_data, tmp_path):
    env = {"MODEL": tiny_bert_dir, "TRAIN_FILE": unsup_file, "SENTEVAL_DATA": sts_data, "SEEDS": "1",
           "RATES": "0.8 0.6", "TRAIN_RATE": "0.8", "METHODS": "topk idf-drop", "STEPS": "2",
           "OUTPUT_ROOT": str(tmp_path / "sel"), "KEEP_DIR": str(tmp_path / "keep")}
    proc = run_script("selection_experiment.sh", env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count(": training (") == 3  # simcse, topk at 0.8, idf-drop at 0.8: nothing trained at 0.6
    for method in ("topk", "idf-drop"):
        payload = json.loads((tmp_path / "keep" / f"{method}-r0.6" / "seed1" / "eval_test.json").read_text())
        assert payload["args"]["keep_budget"] == 0.6 and payload["args"]["prune"]
        assert payload["args"]["model_name_or_path"][0].endswith(f"{method}-r0.8/seed1")
        assert payload["models"][0]["keep_stats"]["keep_rate"] < 0.8
    table = subprocess.run(["python", str(REPO / "scripts" / "plot_pareto.py"), str(tmp_path / "keep")],
                           capture_output=True, text=True)
    assert table.returncode == 0 and "| 0.6 |" in table.stdout and "| 0.8 |" in table.stdout


@pytest.mark.slow
def test_pruning_sweep_evaluates_every_method_times_them_and_draws_the_figure(tiny_bert_dir, sts_data, tmp_path):
    out = tmp_path / "pruning"
    env = {"MODEL": tiny_bert_dir, "SENTEVAL_DATA": sts_data, "OUT": str(out), "FIGURE": str(tmp_path / "fig.png"),
           "METHODS": "attention@1=0.5 idf@1=0.5 merge@1=0.8 attention@1=0.9", "SENTENCES": "32", "REPS": "1",
           "THREADS": "1", "TRAINED": ""}
    proc = run_script("pruning_sweep.sh", env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("none", "attention@1=0.5", "idf@1=0.5", "merge@1=0.8"):
        record = json.loads((out / name / "eval_test.json").read_text())
        assert "avg" in record["models"][0]["simcse"]
    args = json.loads((out / "merge@1=0.8" / "eval_test.json").read_text())["args"]
    assert args["prune_layers"] == [1] and args["prune_keep_rates"] == [0.8] and args["prune_scorer"] == "merge"
    assert json.loads((out / "idf@1=0.5" / "eval_test.json").read_text())["args"]["idf_file"]
    assert set(json.loads((out / "speed.json").read_text())["speedup"]) == {
        "backbone", "attention@1=0.5", "idf@1=0.5", "merge@1=0.8", "attention@1=0.9"}
    assert "| `idf@1=0.5` |" in proc.stdout and (tmp_path / "fig.png").stat().st_size > 1000


@pytest.mark.slow
def test_pruned_training_trains_each_method_with_its_schedule_and_keeps_the_results(
        tiny_bert_dir, unsup_file, sts_data, tmp_path):
    env = {"MODEL": tiny_bert_dir, "TRAIN_FILE": unsup_file, "SENTEVAL_DATA": sts_data, "SEEDS": "1", "STEPS": "2",
           "LAYERS": "1", "RATES": "0.5", "OUTPUT_ROOT": str(tmp_path / "pt"), "KEEP_DIR": str(tmp_path / "keep"),
           "METHODS": "learned attention plain learned_idf"}
    proc = run_script("pruned_training.sh", env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # STEPS other than the default 500 is in the run name (-steps2), so a longer budget is a run of its own
    assert sorted(p.name for p in (tmp_path / "keep").iterdir()) == [
        "attention-l1-r0.5-steps2", "learned-l1-r0.5-steps2", "learned_idf-l1-r0.5-steps2", "plain-steps2"]
    for name, scorer, prior in (("learned-l1-r0.5-steps2", "learned", "attention"),
                                ("attention-l1-r0.5-steps2", "attention", None), ("plain-steps2", None, None),
                                ("learned_idf-l1-r0.5-steps2", "learned", "idf")):
        config = json.loads((tmp_path / "pt" / name / "seed1" / "config.json").read_text())
        assert config.get("prune_scorer") == scorer if scorer else not config.get("prune_layers")
        if scorer:
            assert config["prune_layers"] == [1] and config["prune_keep_rates"] == [0.5]
            assert config["distill_weight"] == 1.0
        if prior:
            assert config["prune_scorer_prior"] == prior
        assert "avg" in json.loads((tmp_path / "keep" / name / "seed1" / "eval_test.json").read_text())[
            "models"][0]["simcse"]
    again = run_script("pruned_training.sh", env=env, timeout=900)
    assert again.returncode == 0 and again.stdout.count("done already, skipping") == 4
    other_lr = run_script("pruned_training.sh", env={**env, "METHODS": "merge plain", "LR": "1e-4"}, timeout=900)
    assert other_lr.returncode == 0, other_lr.stdout[-3000:] + other_lr.stderr[-3000:]
    for name in ("merge-l1-r0.5-lr1e-4-steps2", "plain-lr1e-4-steps2"):  # a run of its own, beside the default rate's
        assert (tmp_path / "keep" / name / "seed1" / "eval_test.json").is_file()
        training = read_card_facts(tmp_path / "pt" / name / "seed1")["training"]
        assert training["learning_rate"] == 1e-4 and training["max_steps"] == 2
    assert json.loads((tmp_path / "pt" / "merge-l1-r0.5-lr1e-4-steps2" / "seed1" / "config.json").read_text())[
        "prune_scorer"] == "merge"
    own_rate = run_script("pruned_training.sh", env={**env, "METHODS": "learned", "SCORER_LR": "1e-2",
                                                     "DISTILL_LOSS": "similarity"}, timeout=900)
    assert own_rate.returncode == 0, own_rate.stdout[-3000:] + own_rate.stderr[-3000:]
    run = tmp_path / "pt" / "learned-l1-r0.5-similarity-slr1e-2-steps2" / "seed1"
    facts = read_card_facts(run)
    assert facts["training"]["scorer_learning_rate"] == 1e-2 and facts["pruning"]["scorer"] == "learned"
    assert json.loads((run / "config.json").read_text())["distill_loss"] == "similarity"
    bad_loss = run_script("pruned_training.sh", env={**env, "DISTILL_LOSS": "mse"}, timeout=900)
    assert bad_loss.returncode == 2 and "DISTILL_LOSS must be cosine or similarity" in bad_loss.stderr
    refused = run_script("pruned_training.sh", env={**env, "METHODS": "attention", "SCORER_LR": "1e-2"}, timeout=900)
    assert refused.returncode == 2 and "SCORER_LR is the learned head's learning rate" in refused.stderr
