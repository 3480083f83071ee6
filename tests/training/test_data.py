"""Training files: the three layouts, tokenisation, collation, and clear errors for bad files."""

from __future__ import annotations

import logging

import pytest
from transformers import AutoTokenizer

from simcse_gs.training.data import SimCSECollator, TrainFileError, load_train_dataset


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir):
    return AutoTokenizer.from_pretrained(tiny_bert_dir)


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_unsupervised_text_file_gives_one_sentence_per_example(tmp_path, tokenizer):
    ds = load_train_dataset(write(tmp_path, "a.txt", "first sentence\n\nsecond one here\n   \nthird\n"), tokenizer)
    assert len(ds) == 3  # blank lines dropped (with a warning)
    assert all(len(ex["input_ids"]) == 1 for ex in ds)


def test_triples_csv_keeps_three_sentences_in_order(tmp_path, tokenizer):
    ds = load_train_dataset(write(tmp_path, "t.csv", 'sent0,sent1,hard_neg\na cat,"a cat, sitting",a dog\n'),
                            tokenizer, max_seq_length=8)
    ids = ds[0]["input_ids"]
    assert len(ids) == 3
    assert tokenizer.decode(ids[1], skip_special_tokens=True) == "a cat, sitting"


def test_truncation_to_max_seq_length(tmp_path, tokenizer):
    ds = load_train_dataset(write(tmp_path, "a.txt", " ".join(["word"] * 100) + "\n"), tokenizer, max_seq_length=10)
    assert len(ds[0]["input_ids"][0]) == 10


def test_collator_pads_every_sentence_to_the_batch_maximum(tmp_path, tokenizer):
    ds = load_train_dataset(write(tmp_path, "p.csv", "sent0,sent1\nshort,a much longer sentence here\nx,y\n"),
                            tokenizer)
    batch = SimCSECollator(tokenizer)([ds[0], ds[1]])
    assert batch["input_ids"].shape[:2] == (2, 2)
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["attention_mask"][1].sum() == 6  # [CLS] x [SEP] + [CLS] y [SEP]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.txt", None, "Training file not found"),
        ("empty.txt", "", "Training file is empty"),
        ("one.csv", "sent0\nhello\n", "found 1 column"),
        ("four.csv", "sent0,sent1,hard_neg,extra\na,b,c,d\n", "found 4 column"),
        ("noheader.csv", "a cat,a dog,a bird\n", "first line must be the header"),
        ("blank.txt", "\n  \n\n", "no example is left"),
        ("data.json", '{"a": 1}', "must end in .txt"),
    ],
)
def test_bad_training_files_fail_with_a_clear_message(tmp_path, tokenizer, name, content, message):
    path = str(tmp_path / name) if content is None else write(tmp_path, name, content)
    with pytest.raises(TrainFileError, match=message):
        load_train_dataset(path, tokenizer)


def test_non_utf8_file_names_the_line(tmp_path, tokenizer):
    path = write(tmp_path, "latin.txt", "fine line\ncaf\xe9 au lait\n", encoding="latin-1")
    with pytest.raises(TrainFileError, match=r"latin\.txt:2: not valid UTF-8"):
        load_train_dataset(path, tokenizer)


def test_no_training_file_at_all(tokenizer):
    with pytest.raises(TrainFileError, match="pass --train_file"):
        load_train_dataset(None, tokenizer)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("hdr.csv", "sent0,sent1\n", r"hdr\.csv: the header is there but no example follows it"),
        ("wide.csv", "sent0,sent1\na cat,a dog\na cat, sitting,a dog\n",
         r"wide\.csv:3: 3 fields, but the header has 2"),
        ("quote.csv", 'sent0,sent1\na cat,a dog\n"a cat,a dog\nx,y\n', r"quote\.csv:3: malformed csv"),
    ],
)
def test_malformed_csv_names_the_line(tmp_path, tokenizer, name, content, message):
    with pytest.raises(TrainFileError, match=message):
        load_train_dataset(write(tmp_path, name, content), tokenizer)


def test_csv_with_a_byte_order_mark_is_read(tmp_path, tokenizer):
    ds = load_train_dataset(write(tmp_path, "bom.csv", "\ufeffsent0,sent1\na cat,a dog\n"), tokenizer)
    assert len(ds) == 1 and len(ds[0]["input_ids"]) == 2


def test_empty_sentences_are_dropped_with_a_counted_warning(tmp_path, tokenizer, caplog):
    path = write(tmp_path, "gaps.csv", "sent0,sent1,hard_neg\na,b,c\n,b,c\nd,e,f\ng, ,i\nj,k,\n")
    with caplog.at_level(logging.WARNING, logger="simcse_gs.training.data"):
        ds = load_train_dataset(path, tokenizer)
    assert len(ds) == 2
    assert f"Dropped 3 of 5 examples of {path} with an empty sentence." in caplog.messages
