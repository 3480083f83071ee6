"""SentEval's transfer tasks: the conversion of get_transfer_data.bash + tokenizer.sed, checked downloads, the CLI.

Never the real network: the local server of test_data_files.py (``file_server``) serves the sources, and
``$SIMCSE_GS_DATA_URL`` points the fetcher at it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from simcse_gs import data_files
from simcse_gs.data_files import TRANSFER_SHA256, TRANSFER_SOURCES, ChecksumError, fetch_transfer, ptb_tokenize
from simcse_gs.data_files.transfer import cat_v, convert, source_url, tokenize_file, trec_clean

# Hand-written lines and what SentEval's `sed -f tokenizer.sed` makes of them (derived from its rules, and checked
# against GNU sed 4.9): quotes, clitics, the final period only, split words, squeezed spaces, the trailing space.
TOKENIZED = [
    ('"Hello," she said.', "`` Hello , '' she said . "),
    ("It's a (great) film -- isn't it?", "It 's a ( great ) film -- is n't it ? "),
    ("I cannot believe we're gonna win!!", "I can not believe we 're gon na win ! ! "),
    ('the "best" movie... ever.', "the `` best '' movie ... ever . "),
    ("Mr. Smith's car costs $5,000 & more.", "Mr. Smith 's car costs $ 5 , 000 & more . "),
    ("'Tis the season; they'll wanna go.", "'T is the season ; they 'll wan na go . "),
    ("price: 20% [approx] {ok} <tag>", "price : 20 % [ approx ] { ok } < tag > "),
    ('she said "no."', "she said `` no . '' "),
    ("the kids' toys", "the kids ' toys "),
    ("wait...what", "wait ... what "),
    ("tab\tinside  spaces   here.", "tab\tinside spaces here . "),
    ("CAN'T STOP WE'LL GO", "CA N'T STOP WE 'LL GO "),
]


@pytest.mark.parametrize(("raw", "expected"), TOKENIZED)
def test_ptb_tokenize_follows_tokenizer_sed(raw, expected):
    assert ptb_tokenize(raw) == expected


def test_cat_v_and_the_file_conversion():
    assert cat_v(b"caf\xe9 na\xefve\x85\x01 del\x7f \x89x\t\n") == b"cafM-i naM-oveM-^E^A del^? M-^Ix\t\n"
    assert tokenize_file(b'first "line".\nsecond\xe9 line') == b"first `` line '' . \nsecondM-i line "
    assert tokenize_file(b"") == b""
    assert trec_clean(b"DESC:def What is `` bug '' ? it's\xf0\n") == b"DESC:def What is  bug  ? its\xf0\n"


def fake_binclassif(files: dict[str, bytes], top: str = "data/") -> bytes:
    """Sida Wang's zip layout: data/rt10662/rt-polarity.pos, data/customerr/custrev.pos, data/subj, data/mpqa."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data in files.items():
            archive.writestr(top + member, data)
    return buffer.getvalue()


FOLDERS = {"MR": "rt10662", "CR": "customerr", "SUBJ": "subj", "MPQA": "mpqa"}


def sources_from(folder: Path, edit: dict[str, tuple[bytes, bytes]] | None = None) -> dict[str, bytes]:
    """Source files that convert back into the files of ``folder`` (the conversion leaves them unchanged, except
    one SUBJ line whose raw form is known), keyed like TRANSFER_SOURCES."""
    edit = edit or {}
    binary = {}
    for name in TRANSFER_SHA256:
        task, _, base = name.partition("/")
        if task in FOLDERS:
            data = (folder / name).read_bytes()
            if name == "SUBJ/subj.objective":  # tokenizer.sed turned the raw "it''s" into "it' 's"
                data = data.replace(b"realizes it' 's a love", b"realizes it''s a love")
            old, new = edit.get(name, (b"", b""))
            binary[f"{FOLDERS[task]}/{base}"] = data.replace(old, new, 1) if old else data
    sources = {data_files.transfer.BINCLASSIF_ZIP: fake_binclassif(binary)}
    for name in TRANSFER_SOURCES:
        if name.startswith("sentiment-"):
            sources[name] = (folder / "SST/binary" / name).read_bytes()
        elif name.endswith(".label"):
            sources[name] = (folder / "TREC" / name).read_bytes()
        elif name.startswith("msr_paraphrase"):
            sources[name] = (folder / "MRPC" / name).read_bytes()
    return sources


def test_the_real_files_are_rebuilt_and_installed_with_checksums(file_server, real_transfer_data, tmp_path):
    file_server.files.update(sources_from(real_transfer_data))
    dest = tmp_path / "downstream"
    (dest / "SST" / "fine").mkdir(parents=True)  # SST/fine (not ours) is kept; SST/binary is ours
    assert fetch_transfer(dest, progress=False) == dest
    assert sorted(path for path, _ in file_server.requests) == sorted(f"/{name}" for name in TRANSFER_SOURCES)
    for name, digest in TRANSFER_SHA256.items():
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == digest
        assert (dest / name).read_bytes() == (real_transfer_data / name).read_bytes()
    assert (dest / "SST" / "fine").is_dir() and not list(dest.glob(".download-*"))
    assert data_files.resolve_transfer_data(str(dest)) == str(dest.resolve())


def test_a_changed_source_installs_nothing(file_server, real_transfer_data, tmp_path):
    file_server.files.update(sources_from(real_transfer_data, {"CR/custrev.neg": (b"bad", b"BAD")}))
    dest = tmp_path / "downstream"
    (dest / "MR").mkdir(parents=True)
    (dest / "MR" / "mine.txt").write_text("an older copy\n")
    with pytest.raises(ChecksumError, match=r"1 of the 15 transfer-task files differ .*CR/custrev\.neg.*nothing was"):
        fetch_transfer(dest, progress=False)
    assert sorted(p.name for p in dest.iterdir()) == ["MR"] and (dest / "MR" / "mine.txt").is_file()


def handmade_sources() -> dict[str, bytes]:
    raw = {f"{folder}/{base}": b'A "raw" line, isn\'t it?\nsecond line.\n'
           for task, folder in FOLDERS.items() for name in TRANSFER_SHA256 if name.startswith(task + "/")
           for base in [name.partition("/")[2]]}
    sources = {data_files.transfer.BINCLASSIF_ZIP: fake_binclassif(raw, top="datasmall/data/")}
    for name in TRANSFER_SOURCES:
        if name != data_files.transfer.BINCLASSIF_ZIP:
            sources[name] = b"DESC:def What's `this' ?\r\n" if name.endswith(".label") else b"a line\t1\r\n"
    return sources


def test_handmade_sources_are_converted_as_the_script_does_and_refused(file_server, tmp_path):
    files = convert(handmade_sources())
    assert sorted(files) == sorted(TRANSFER_SHA256)
    assert files["MR/rt-polarity.pos"] == b"A `` raw '' line , is n't it ? \nsecond line . \n"
    assert files["TREC/TREC_10.label"] == b"DESC:def Whats this ?\r\n"
    assert files["SST/binary/sentiment-dev"] == files["MRPC/msr_paraphrase_test.txt"] == b"a line\t1\r\n"
    file_server.files.update(handmade_sources())
    with pytest.raises(ChecksumError, match="15 of the 15 transfer-task files differ"):
        fetch_transfer(tmp_path / "d", progress=False)
    assert list((tmp_path / "d").iterdir()) == []


def test_a_broken_archive_is_named(file_server, tmp_path):
    sources = handmade_sources()
    sources[data_files.transfer.BINCLASSIF_ZIP] = fake_binclassif({"rt10662/rt-polarity.pos": b"x\n"})
    with pytest.raises(ChecksumError, match=r"has no rt10662/rt-polarity\.neg"):
        convert(sources)
    file_server.files.update({**sources, data_files.transfer.BINCLASSIF_ZIP: b"not a zip"})
    with pytest.raises(ChecksumError, match="not a readable zip archive"):
        fetch_transfer(tmp_path / "d", progress=False)


def test_sources_are_senteval_urls_unless_a_mirror_is_set(monkeypatch):
    monkeypatch.delenv(data_files.URL_ENV, raising=False)
    assert source_url("datasmall_NB_ACL12.zip") == (
        "https://dl.fbaipublicfiles.com/senteval/senteval_data/datasmall_NB_ACL12.zip")
    assert source_url("sentiment-train") == "https://raw.githubusercontent.com/PrincetonML/SIF/master/data/sentiment-train"
    assert source_url("TREC_10.label") == "http://cogcomp.cs.illinois.edu/Data/QA/QC/TREC_10.label"
    assert source_url("msr_paraphrase_test.txt").startswith("https://dl.fbaipublicfiles.com/senteval/")
    monkeypatch.setenv(data_files.URL_ENV, "http://mirror.example/data/")
    assert source_url("TREC_10.label") == "http://mirror.example/data/TREC_10.label"


# ---------------------------------------------------------------------------------------------- the command line


def test_cli_finds_a_copy_first_and_fetches_only_when_asked(file_server, real_transfer_data, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.delenv("SENTEVAL_DATA", raising=False)
    assert data_files.main(["transfer", "--senteval_data", str(real_transfer_data)]) == 0
    assert capsys.readouterr().out.strip() == str(real_transfer_data.resolve())
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("SENTEVAL_DATA", str(empty))  # a named folder is never silently replaced by another copy
    assert data_files.main(["transfer"]) == 2
    err = capsys.readouterr().err
    assert f"transfer tasks not found in {empty}" in err and "transfer --fetch" in err and "Traceback" not in err
    assert file_server.requests == []

    file_server.files.update(sources_from(real_transfer_data))
    assert data_files.main(["transfer", "--fetch", "--no_progress"]) == 0
    assert capsys.readouterr().out.strip() == str(empty)
    assert len(file_server.requests) == len(TRANSFER_SOURCES) and data_files.has_transfer_data(empty)
    assert data_files.main(["transfer", "--fetch"]) == 0  # now found: nothing is downloaded again
    assert len(file_server.requests) == len(TRANSFER_SOURCES)
