"""Model cards in every saved folder (train.py's output, checkpoint-N, exports), read back offline, and
``--push_to_hub`` uploading the card and the code (with the Hub faked: nothing leaves the machine)."""

from __future__ import annotations

import json
from concurrent.futures import Future
from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import ModelCard

from simcse_gs.sharing.export import export_model
from simcse_gs.sharing.model_card import read_card_facts
from tests.conftest import build

TRAIN = ["--per_device_train_batch_size", "4", "--report_to", "none", "--dataloader_num_workers", "0",
         "--logging_steps", "1", "--learning_rate", "2e-5", "--seed", "7"]


def train(model_dir: str, train_file: str, out: Path, *extra: str) -> dict:
    import train as train_py

    return train_py.main(["--model_name_or_path", model_dir, "--train_file", train_file, "--output_dir", str(out),
                          *TRAIN, *extra])


@pytest.mark.slow
def test_train_py_writes_a_card_into_every_model_folder(tiny_bert_dir, unsup_file, sts_data, tmp_path):
    run = tmp_path / "run"
    metrics = train(tiny_bert_dir, unsup_file, run, "--use_gs", "true", "--max_steps", "4", "--save_strategy",
                    "steps", "--save_steps", "2", "--eval_strategy", "steps", "--eval_steps", "2",
                    "--senteval_data", sts_data, "--gs_estimator", "st")
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    for folder, step in ((run / "checkpoint-2", 2), (run / "checkpoint-4", 4), (run, 4)):
        card = ModelCard.load(folder / "README.md")  # the Hub's own parser reads the metadata
        assert card.data.library_name == "transformers" and card.data.pipeline_tag == "sentence-similarity"
        assert "gumbel-softmax" in card.data.tags
        facts = read_card_facts(folder)
        assert facts["use_gs"] and facts["gs"]["estimator"] == "st" and facts["proxy"]["layers"] == 2
        training = facts["training"]
        assert training["train_file"] == unsup_file and training["examples"] == 24
        assert training["objective"].startswith("unsupervised") and training["max_seq_length"] == 32
        assert training["learning_rate"] == 2e-5 and training["seed"] == 7 and training["global_step"] == step
        evaluation = [h for h in history if h.get("step") == step and "eval_stsb_spearman" in h][-1]
        assert facts["sts"]["step"] == step and facts["sts"]["split"] == "dev"
        assert facts["sts"]["stsb_spearman"] == evaluation["eval_stsb_spearman"]
        assert facts["keep"]["keep_rate"] == evaluation["eval_keep_rate"]
        text = card.text
        row = " | ".join(f"{evaluation[f'eval_{k}']:.2f}" for k in ("stsb_spearman", "sickr_spearman", "avg_sts"))
        assert f"| {row} |" in text and f"dev split, at step {step}" in text
        for snippet in ("SimCSEGSModel.from_pretrained(PATH)",
                        "AutoModel.from_pretrained(PATH, trust_remote_code=True)",
                        "python export.py --model_name_or_path PATH",
                        "SentenceTransformer(EXPORT, trust_remote_code=True)",
                        "## Gumbel-Softmax settings", "| fraction kept (p >= 0.5) |"):
            assert snippet in text, snippet
    # the final folder's card holds the evaluation train.py runs after training, the same as its metrics
    assert read_card_facts(run)["sts"]["stsb_spearman"] == metrics["eval_stsb_spearman"]


def test_export_cards_carry_the_checkpoint_facts(tiny_bert_dir, unsup_file, tmp_path):
    run = tmp_path / "run"
    train(tiny_bert_dir, unsup_file, run, "--use_gs", "true", "--max_steps", "2", "--save_strategy", "no")
    source = read_card_facts(run)
    assert "sts" not in source and source["keep"]["source"].startswith("training batches")
    export_model(str(run), tmp_path / "gs")
    with pytest.warns(UserWarning, match="drops the token-keep proxy"):
        export_model(str(run), tmp_path / "dropped", drop_proxy=True)
    for name in ("gs", "dropped"):
        card = ModelCard.load(tmp_path / name / "README.md")
        assert card.data.library_name == "sentence-transformers"
        facts = read_card_facts(tmp_path / name)
        assert facts["training"] == source["training"] and facts["keep"] == source["keep"]
        assert f"from `{run}`" in card.text
    assert "SentenceTransformer(PATH, trust_remote_code=True)" in (tmp_path / "gs" / "README.md").read_text()
    assert "Warning: the token-keep proxy is not exported" in (tmp_path / "dropped" / "README.md").read_text()


def test_plain_simcse_card_without_evaluation(tiny_bert_dir, unsup_file, tmp_path):
    run = tmp_path / "run"
    train(tiny_bert_dir, unsup_file, run, "--use_gs", "false", "--max_steps", "1", "--save_strategy", "no")
    text = (run / "README.md").read_text()
    assert "Not evaluated yet" in text and "## Keep statistics" not in text and "Gumbel-Softmax settings" not in text
    assert "SentenceTransformer(EXPORT)" in text and "trust_remote_code=True)\nembeddings" not in text.split(
        "SentenceTransformer")[1]
    facts = read_card_facts(run)
    assert facts["use_gs"] is False and "proxy" not in facts and facts["training"]["global_step"] == 1
    # a folder saved outside the Trainer has no card, and that is fine to read
    build(tiny_bert_dir, use_gs=False).save_pretrained(tmp_path / "bare")
    assert read_card_facts(tmp_path / "bare") == {}


def test_a_pruned_model_card_says_how_it_prunes_not_plain_simcse(tiny_bert_dir, unsup_file, tmp_path):
    run = tmp_path / "run"
    train(tiny_bert_dir, unsup_file, run, "--use_gs", "false", "--prune_layers", "1", "--prune_keep_rates", "0.5",
          "--prune_scorer", "learned", "--prune_scorer_prior", "idf", "--distill_weight", "2", "--distill_teacher",
          "initial", "--scorer_learning_rate", "1e-2", "--max_steps", "1", "--save_strategy", "no")
    facts = read_card_facts(run)
    assert facts["pruning"] == {"layers": [1], "keep_rates": [0.5], "scorer": "learned", "scorer_prior": "idf"}
    assert facts["distillation"] == {"weight": 2.0, "loss": "cosine", "teacher": "initial"}
    assert facts["training"]["scorer_learning_rate"] == 1e-2 and facts["training"]["learning_rate"] == 2e-5
    card = ModelCard.load(run / "README.md")
    assert "token-pruning" in card.data.tags and "gumbel-softmax" not in card.data.tags
    for snippet in ("A token-pruned SimCSE sentence encoder", "## In-encoder pruning",
                    "| schedule | keep 0.5 after layer 1 |", "| scorer (`--prune_scorer`) | learned (prior: idf) |",
                    "| self-distillation | weight 2, cosine loss, initial teacher |",
                    "| learned scorer's learning rate | 0.01 |"):
        assert snippet in card.text, snippet
    assert "plain SimCSE" not in card.text


class FakeHub:
    """Stands in for huggingface_hub's HfApi: records what each upload would send, sends nothing."""

    def __init__(self):
        self.uploads: list[dict] = []

    def create_repo(self, repo_id, **kwargs):
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, repo_id, folder_path, commit_message=None, run_as_future=False, ignore_patterns=(),
                      path_in_repo=None, **kwargs):
        root = Path(folder_path)
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        files = [f for f in files if not any(fnmatch(f, pat) or fnmatch(f.split("/")[0], pat)
                                             for pat in ignore_patterns or ())]
        readme = (root / "README.md").read_text() if (root / "README.md").is_file() else None
        self.uploads.append({"repo": repo_id, "message": commit_message, "files": files, "readme": readme,
                             "path_in_repo": path_in_repo})
        if run_as_future:
            done: Future = Future()
            done.set_result(None)
            return done
        return SimpleNamespace(commit_url="fake")


@pytest.mark.slow
def test_push_to_hub_uploads_the_card_and_the_code(tiny_bert_dir, unsup_file, sts_data, tmp_path, monkeypatch):
    import transformers.trainer

    hub = FakeHub()
    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: hub)
    run = tmp_path / "run"
    train(tiny_bert_dir, unsup_file, run, "--use_gs", "true", "--max_steps", "2", "--save_strategy", "steps",
          "--save_steps", "1", "--eval_strategy", "steps", "--eval_steps", "1", "--senteval_data", sts_data,
          "--push_to_hub", "--hub_model_id", "someone/simcse-gs-test")
    messages = [u["message"] for u in hub.uploads]
    assert messages[:2] == ["Training in progress, step 1", "Training in progress, step 2"]
    assert messages[-1] == "End of training"
    for upload in hub.uploads:  # every push, including the first checkpoint's, sends a loadable repo
        assert upload["repo"] == "someone/simcse-gs-test" and upload["path_in_repo"] is None
        for name in ("README.md", "config.json", "model.safetensors", "modeling.py", "proxy.py", "attention.py",
                     "tokenizer.json"):
            assert name in upload["files"], (upload["message"], name)
        assert not any(f.startswith("checkpoint-") for f in upload["files"])
        assert upload["readme"].startswith("---\nlibrary_name: transformers") and "trust_remote_code=True" in upload[
            "readme"]
    final = hub.uploads[-1]["readme"]
    facts = read_card_facts(run)
    assert facts["training"]["global_step"] == 2 and f"at step {facts['sts']['step']}" in final
    assert "Trainer" not in final.split("---")[1]  # our card, not the Trainer's generic one
