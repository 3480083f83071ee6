"""Fixtures of the transfer-task tests: tiny data sets in each task's file format, and cheap deterministic encoders.

Every toy sentence carries one class keyword (``good``/``bad``, ``fact``/``feel``, ...) among filler words; the
keyword encoder puts each keyword on its own dimension (filler words on hashed ones, with a small weight), so every
toy task is linearly separable and a correct evaluation scores 100%.
"""

from __future__ import annotations

import random
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

KEYWORDS = ("good", "bad", "fact", "feel", "yes", "no", "what", "who", "where", "when", "why", "how", "same", "other",
            "not")
FILLER = "the a film movie plot story it was is and of to very quite rather this that one scene".split()
TOY_DIM = 32
PER_CLASS = 24
TREC_WORDS = {"ABBR": "what", "DESC": "why", "ENTY": "how", "HUM": "who", "LOC": "where", "NUM": "when"}


def keyword_batcher(params, batch):
    """Keywords on dimensions 0..14 (weight 1), filler words hashed onto 15..31 (weight 0.1)."""
    out = np.zeros((len(batch), TOY_DIM), dtype=np.float32)
    for row, tokens in enumerate(batch):
        for token in tokens:
            if token in KEYWORDS:
                out[row, KEYWORDS.index(token)] += 1.0
            else:
                out[row, len(KEYWORDS) + zlib.crc32(token.encode()) % (TOY_DIM - len(KEYWORDS))] += 0.1
    return out


def hashed_bow_batcher(params, batch, dim: int = 384):
    """Cheap deterministic encoder for the real data: lower-cased words hashed into ``dim`` buckets."""
    out = np.zeros((len(batch), dim), dtype=np.float32)
    for row, tokens in enumerate(batch):
        for token in tokens:
            out[row, zlib.crc32(token.lower().encode()) % dim] += 1.0
    return out


def toy_sentence(rng: random.Random, keyword: str) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(1, 6))]
    words.insert(rng.randint(0, len(words)), keyword)
    return " ".join(words)


def write_transfer_data(root: Path, per_class: int = PER_CLASS, seed: int = 0) -> Path:
    """All eight transfer tasks in SentEval's layout and file formats, with the quirks of the real files."""
    rng = random.Random(seed)

    def lines(keyword: str, n: int = per_class) -> list[str]:
        return [toy_sentence(rng, keyword) for _ in range(n)]

    def write(path: str, text: str | bytes) -> None:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))

    # MR: latin-1 (a byte that is not UTF-8), one sentence per line
    write("MR/rt-polarity.pos", ("\n".join(lines("good")) + "\ncaf\xe9 good\n").encode("latin-1"))
    write("MR/rt-polarity.neg", "\n".join(lines("bad")) + "\n")
    # CR: a blank line is a sample too (SentEval keeps it, as an empty sentence)
    write("CR/custrev.pos", "\n".join(lines("good")) + "\n\n")
    write("CR/custrev.neg", "\n".join(lines("bad")) + "\n")
    write("SUBJ/subj.objective", "\n".join(lines("fact")) + "\n")
    write("SUBJ/subj.subjective", "\n".join(lines("feel")) + "\n")
    write("MPQA/mpqa.pos", "\n".join(lines("yes")) + "\n")
    write("MPQA/mpqa.neg", "\n".join(lines("no")))  # no final newline
    for split in ("train", "dev", "test"):
        rows = [f"{s} \t1" for s in lines("good")] + [f"{s} \t0" for s in lines("bad")]
        rng.shuffle(rows)
        write(f"SST/binary/sentiment-{split}", "\n".join(rows) + "\n")
    for name in ("train_5500.label", "TREC_10.label"):
        rows = [f"{coarse}:fine {toy_sentence(rng, word)} ?" for coarse, word in TREC_WORDS.items()
                for _ in range(per_class // 2)]
        rng.shuffle(rows)
        write(f"TREC/{name}", ("\n".join(rows) + "\nNUM:date when was caf\xe9 built ?\n").encode("latin-1"))
    for split in ("train", "test"):
        rows = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        for i in range(2 * per_class):
            label = i % 2
            a = toy_sentence(rng, "same" if label else "good")
            b = toy_sentence(rng, "same" if label else "bad")
            rows.append(f"{label}\t{1000 + i}\t{2000 + i}\t{a}\t{b}")
        write(f"MRPC/msr_paraphrase_{split}.txt", "\r\n".join(rows) + "\r\n")
    sick = {"train": "SICK_train.txt", "dev": "SICK_trial.txt", "test": "SICK_test_annotated.txt"}
    for split, name in sick.items():
        rows = ["pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"]
        judgments = {"ENTAILMENT": ("same", "same"), "CONTRADICTION": ("same", "not"), "NEUTRAL": ("good", "bad")}
        for _ in range(per_class):
            for judgment, (wa, wb) in judgments.items():
                rows.append(f"{len(rows)}\t{toy_sentence(rng, wa)}\t{toy_sentence(rng, wb)}\t3.5\t{judgment}")
        newline = "\r\n" if split == "test" else "\n"  # the real test file has CRLF line ends
        write(f"SICK/{name}", newline.join(rows) + newline)
    return root


def write_evaluation_data(root: Path, sts_pairs_from: Path) -> Path:
    """A whole toy data/downstream folder: the eight transfer tasks, STS-B copied from ``sts_pairs_from`` (a folder
    with STS/), and SICK/ (shared by SICK-E and SICK-R) with relatedness scores that vary, so that SICK-R's
    correlation is defined."""
    write_transfer_data(root)
    shutil.copytree(Path(sts_pairs_from) / "STS", root / "STS")
    for path in (root / "SICK").iterdir():
        newline = "\r\n" if b"\r\n" in path.read_bytes() else "\n"
        lines = path.read_text(encoding="utf-8").splitlines()
        cells = [line.split("\t") for line in lines[1:]]
        rows = [lines[0], *("\t".join([*c[:3], str(1 + i % 5), c[4]]) for i, c in enumerate(cells))]
        path.write_text(newline.join(rows) + newline, encoding="utf-8", newline="")
    return root


@pytest.fixture()
def transfer_root(tmp_path) -> Path:
    return write_transfer_data(tmp_path / "downstream")


# A quick classifier setting for the toy data: SentEval's loop, learning fast (its final fits early-stop on 5% of a
# few dozen rows, i.e. one or two sentences, so a slow learner would stop before it has learnt).
QUICK = {"kfold": 2, "classifier": {"nhid": 0, "optim": "adam,lr=0.1", "batch_size": 8, "tenacity": 2, "epoch_size": 2,
                                    "max_epoch": 30}}


@pytest.fixture(scope="session")
def real_transfer_data() -> str:
    """The real transfer-task data, found as the scripts find it: $SENTEVAL_DATA, else SentEval/data/downstream,
    else the shared copy beside the checkout (simcse_gs.data_files). Skipped, saying how to get it, where absent."""
    from simcse_gs.data_files import resolve_transfer_data

    path = resolve_transfer_data(None, log=False)
    if path is None:
        pytest.skip("real transfer-task data not found; set SENTEVAL_DATA to a folder with MR/ CR/ SUBJ/ MPQA/ "
                    "SST/binary/ TREC/ MRPC/, or run python -m simcse_gs.data_files transfer --fetch")
    return path
