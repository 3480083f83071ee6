"""SentEval's transfer tasks (MR, CR, SUBJ, MPQA, SST2, TREC, MRPC): fetched from the sources SentEval's
``data/downstream/get_transfer_data.bash`` downloads, converted to its layout as that script does, and checked file by
file (:data:`TRANSFER_SHA256`) before anything is installed.

What the script does, per task (and what :func:`convert` does here, in Python):

* MR, CR, SUBJ, MPQA: the raw files of Sida Wang's ``datasmall_NB_ACL12.zip`` go through ``cat -v | sed -f
  tokenizer.sed`` (:func:`cat_v`, :func:`ptb_tokenize`): control and non-ASCII bytes become ``^X`` / ``M-x``, then
  Penn-Treebank-style splitting of punctuation and clitics;
* TREC: ``train_5500.label`` and ``TREC_10.label`` with every backtick and single quote deleted;
* SST2 (``PrincetonML/SIF``'s ``sentiment-*``) and MRPC (SentEval's copies of Microsoft's files): as downloaded.

SICK (for SICK-E) comes with the STS sets (:func:`simcse_gs.data_files.fetch_sts`).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .download import URL_ENV, ChecksumError, data_url, download, sha256_of
from .locations import DEFAULT_STS_DIR, say, shared_data_root

BINCLASSIF_ZIP = "datasmall_NB_ACL12.zip"
SENTEVAL_S3 = "https://dl.fbaipublicfiles.com/senteval/senteval_data"
SST_URL = "https://raw.githubusercontent.com/PrincetonML/SIF/master/data"
TREC_URL = "http://cogcomp.cs.illinois.edu/Data/QA/QC"

# Downloaded file name (also its name under $SIMCSE_GS_DATA_URL, a mirror) -> SentEval's URL.
TRANSFER_SOURCES: dict[str, str] = {
    BINCLASSIF_ZIP: f"{SENTEVAL_S3}/{BINCLASSIF_ZIP}",
    **{f"sentiment-{split}": f"{SST_URL}/sentiment-{split}" for split in ("train", "dev", "test")},
    **{f"{name}.label": f"{TREC_URL}/{name}.label" for name in ("train_5500", "TREC_10")},
    **{f"msr_paraphrase_{split}.txt": f"{SENTEVAL_S3}/msr_paraphrase_{split}.txt" for split in ("train", "test")},
}
# Installed file -> (downloaded file, member of the zip or None, conversion).
_BINARY_MEMBERS = {
    "MR/rt-polarity.pos": "rt10662/rt-polarity.pos",
    "MR/rt-polarity.neg": "rt10662/rt-polarity.neg",
    "CR/custrev.pos": "customerr/custrev.pos",
    "CR/custrev.neg": "customerr/custrev.neg",
    "SUBJ/subj.subjective": "subj/subj.subjective",
    "SUBJ/subj.objective": "subj/subj.objective",
    "MPQA/mpqa.pos": "mpqa/mpqa.pos",
    "MPQA/mpqa.neg": "mpqa/mpqa.neg",
}
TASK_FOLDERS = ("MR", "CR", "SUBJ", "MPQA", "SST/binary", "TREC", "MRPC")


# ---------------------------------------------------------------------------------------------- conversions


def _visible(byte: int) -> bytes:
    """How GNU ``cat -v`` shows one byte other than newline and tab."""
    prefix = b"M-" if byte >= 128 else b""
    byte &= 0x7F
    if byte < 32:
        return prefix + bytes((0x5E, byte + 64))  # ^@ .. ^_
    return prefix + (b"^?" if byte == 127 else bytes((byte,)))


_CAT_V = {byte: _visible(byte) for byte in range(256) if byte not in (0x09, 0x0A)}
_NONPRINTING = re.compile(rb"[^\t\n\x20-\x7e]")


def cat_v(data: bytes) -> bytes:
    """GNU ``cat -v``: every byte but newline and tab made printable (``^X`` for control, ``M-`` for the high bit)."""
    return _NONPRINTING.sub(lambda match: _CAT_V[match.group()[0]], data)


# SentEval's tokenizer.sed (Robert MacIntyre's Penn Treebank sed script), rule by rule, applied in order to a line.
_PTB_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r'^"'), "`` "),  # opening double quotes
    (re.compile(r'([ (\[{<])"'), r"\1 `` "),
    (re.compile(r"\.\.\."), " ... "),
    (re.compile(r"[,;:@#$%&]"), r" \g<0> "),
    (re.compile(r"([^.])([.])([\])}>\"']*) *$"), r"\1 \2\3 "),  # a final period only
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"[\][(){}<>]"), r" \g<0> "),
    (re.compile(r"--"), " -- "),
    (re.compile(r"$"), " "),  # pad the line with a space at both ends
    (re.compile(r"^"), " "),
    (re.compile(r'"'), " '' "),  # closing double quotes
    (re.compile(r"([^'])' "), r"\1 ' "),  # possessive or closing single quote
    (re.compile(r"'([sSmMdD]) "), r" '\1 "),  # it's, I'm, we'd
    *((re.compile(f"{clitic} "), f" {clitic} ") for clitic in ("'ll", "'re", "'ve", "n't", "'LL", "'RE", "'VE", "N'T")),
    (re.compile(r" ([Cc])annot "), r" \1an not "),
    (re.compile(r" ([Dd])'ye "), r" \1' ye "),
    (re.compile(r" ([Gg])imme "), r" \1im me "),
    (re.compile(r" ([Gg])onna "), r" \1on na "),
    (re.compile(r" ([Gg])otta "), r" \1ot ta "),
    (re.compile(r" ([Ll])emme "), r" \1em me "),
    (re.compile(r" ([Mm])ore'n "), r" \1ore 'n "),
    (re.compile(r" '([Tt])is "), r" '\1 is "),
    (re.compile(r" '([Tt])was "), r" '\1 was "),
    (re.compile(r" ([Ww])anna "), r" \1an na "),
    (re.compile(r"  *"), " "),  # squeeze spaces
    (re.compile(r"^ *"), ""),  # no leading space (the trailing one stays, as with sed)
]


def ptb_tokenize(line: str) -> str:
    """One line through SentEval's ``tokenizer.sed`` (every rule global, in the script's order)."""
    for pattern, replacement in _PTB_RULES:  # anchored rules match once, as in sed
        line = pattern.sub(replacement, line)
    return line


def tokenize_file(data: bytes) -> bytes:
    """``cat -v FILE | sed -f tokenizer.sed``: line by line; a last line without a newline keeps none (GNU sed)."""
    text = cat_v(data).decode("ascii")
    lines = text.split("\n")
    last = lines.pop()  # "" when the file ends with a newline
    out = "".join(ptb_tokenize(line) + "\n" for line in lines)
    if last:
        out += ptb_tokenize(last)
    return out.encode("ascii")


def trec_clean(data: bytes) -> bytes:
    """SentEval's ``sed -i -e "s/\\`//g"`` and ``sed -i -e "s/'//g"`` on the TREC files (bytes, any encoding)."""
    return data.replace(b"`", b"").replace(b"'", b"")


def _as_is(data: bytes) -> bytes:
    return data


@dataclass(frozen=True)
class _Target:
    source: str  # a key of TRANSFER_SOURCES
    member: str | None  # a path inside the zip
    convert: Callable[[bytes], bytes]


TARGETS: dict[str, _Target] = {
    **{path: _Target(BINCLASSIF_ZIP, member, tokenize_file) for path, member in _BINARY_MEMBERS.items()},
    **{f"SST/binary/sentiment-{s}": _Target(f"sentiment-{s}", None, _as_is) for s in ("train", "dev", "test")},
    **{f"TREC/{name}.label": _Target(f"{name}.label", None, trec_clean) for name in ("train_5500", "TREC_10")},
    **{f"MRPC/msr_paraphrase_{s}.txt": _Target(f"msr_paraphrase_{s}.txt", None, _as_is) for s in ("train", "test")},
}


# ---------------------------------------------------------------------------------------------- finding and fetching


def has_transfer_data(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds every file of :data:`TRANSFER_SHA256` (not hashed: a local copy is the user's)."""
    return all((Path(folder) / name).is_file() for name in TRANSFER_SHA256)


def resolve_transfer_data(explicit: str | None = None, log: bool = True) -> str | None:
    """The folder with the transfer tasks: ``explicit`` (``--senteval_data``) > ``$SENTEVAL_DATA`` >
    ``SentEval/data/downstream`` > the shared copy ``$SIMCSE_SHARED_DATA/downstream``. ``None`` when the named
    folder (or, when none is named, every one) lacks them: a folder that was named is never silently replaced."""
    named = explicit or os.environ.get("SENTEVAL_DATA")
    if named:
        return str(Path(named).expanduser().resolve()) if has_transfer_data(Path(named).expanduser()) else None
    if has_transfer_data(DEFAULT_STS_DIR):
        return str(DEFAULT_STS_DIR.resolve())
    shared = shared_data_root() / "downstream"
    if has_transfer_data(shared):
        if log:
            say(f"transfer tasks: using the shared copy {shared}")
        return str(shared.resolve())
    return None


def source_url(name: str) -> str:
    """SentEval's URL for a source, or the mirror's (``$SIMCSE_GS_DATA_URL/<name>``) when one is set."""
    return data_url(name) if os.environ.get(URL_ENV) else TRANSFER_SOURCES[name]


def _zip_member(archive: zipfile.ZipFile, member: str, url: str) -> bytes:
    """A member by its path's tail (``rt10662/rt-polarity.pos``), whatever folder the zip puts it under."""
    for info in archive.infolist():
        if not info.is_dir() and (info.filename == member or info.filename.endswith("/" + member)):
            return archive.read(info)
    raise ChecksumError(f"{url} has no {member}; nothing was installed")


def convert(sources: dict[str, bytes]) -> dict[str, bytes]:
    """SentEval's layout (:data:`TARGETS`) from the downloaded files (``{name: content}``)."""
    out: dict[str, bytes] = {}
    archives: dict[str, zipfile.ZipFile] = {}
    try:
        for path, target in TARGETS.items():
            data = sources[target.source]
            if target.member is not None:
                if target.source not in archives:
                    try:
                        archives[target.source] = zipfile.ZipFile(io.BytesIO(data))
                    except zipfile.BadZipFile as err:
                        raise ChecksumError(f"{source_url(target.source)} is not a readable zip archive ({err}); "
                                            "nothing was installed") from None
                data = _zip_member(archives[target.source], target.member, source_url(target.source))
            out[path] = target.convert(data)
    finally:
        for archive in archives.values():
            archive.close()
    return out


def fetch_transfer(dest: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Download the seven tasks' sources, convert them, check all 15 files, then install them into ``dest``
    (default ``SentEval/data/downstream``): ``MR/ CR/ SUBJ/ MPQA/ SST/binary/ TREC/ MRPC/``, each replaced whole."""
    dest = Path(dest) if dest else DEFAULT_STS_DIR
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        sources: dict[str, bytes] = {}
        for name in TRANSFER_SOURCES:
            part = Path(tmp) / name
            download(source_url(name), part, progress=progress)
            sources[name] = part.read_bytes()
            part.unlink()
        files = convert(sources)
        staged = Path(tmp) / "x"
        for path, data in files.items():
            (staged / path).parent.mkdir(parents=True, exist_ok=True)
            (staged / path).write_bytes(data)
        bad = [name for name, digest in TRANSFER_SHA256.items() if sha256_of(staged / name) != digest]
        if bad:
            raise ChecksumError(
                f"{len(bad)} of the {len(TRANSFER_SHA256)} transfer-task files differ from the copy this project's "
                f"numbers were measured on ({', '.join(bad[:3])}{' …' if len(bad) > 3 else ''}); nothing was "
                "installed. A source changed, or the download was altered."
            )
        for folder in TASK_FOLDERS:
            target = dest / folder
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staged / folder), str(target))
    say(f"{dest}: MR, CR, SUBJ, MPQA, SST2, TREC, MRPC installed, {len(TRANSFER_SHA256)} files SHA-256 verified")
    return dest


# The files the transfer tasks read, with the SHA-256 of the copy this project's numbers were measured on (the
# shared data manifest, Group 4). Generated from that copy.
TRANSFER_SHA256 = {
    "MR/rt-polarity.pos": "34e5b0da2d491e46b700b00afe735aaae0962bcfe4f7f22b2d8077e714fa370f",
    "MR/rt-polarity.neg": "c4ac36eaa8adc8ee31c31f69594bfbe68d83ef5b6db53f1f19b28c0be52f3999",
    "CR/custrev.pos": "91a20a4ffeb5d38a39a4087bb247e16538aff21e7d621ae59738379f39f21732",
    "CR/custrev.neg": "ec94532766f6f962094841ab3bee2ad6f232f996c3756825a91e78bcc294750f",
    "SUBJ/subj.subjective": "274c2ffe59c204dc4df779848561786f59a98cc20dda3cfdd7d9f76a4f730710",
    "SUBJ/subj.objective": "d8ccd43f1674f1c17e4ab717564e3561cfb719b0db4cfb19e5677427c68ff8a1",
    "MPQA/mpqa.pos": "7487dbb74c77383e60b292845495163a9e21fb70a4fdacdda933413e43163f0d",
    "MPQA/mpqa.neg": "8da6e035fa4cea02f0555091096b29a6b3995ff0adf41fad25008dcee066b79e",
    "SST/binary/sentiment-train": "10a92a297ec38e262386e5a2713b4bc70e5d18ced88b7f54bd171a26e5b34ab5",
    "SST/binary/sentiment-dev": "9a6c7403b71a9b762158387afe4431253ae10cdfb2319b5275289f3766f48291",
    "SST/binary/sentiment-test": "4fefd1cd67526cf87ebc7fafc3afc21cc7cfa6ae53b45e74f77f9456e3c62752",
    "TREC/train_5500.label": "8bd6e79493f43bbd22c364587366a1dced54e1e31259eaa92721a0f526031116",
    "TREC/TREC_10.label": "86ad53c8fc9d397ab2f4be7c967d8efb470b260140557d3e57afad69d1b88b76",
    "MRPC/msr_paraphrase_train.txt": "f3d26d73bb3510032f80836e2e81cf32c71863f8dd6151aa80a125c2c799a557",
    "MRPC/msr_paraphrase_test.txt": "51a1f197d8786712d2f0d97700f5be653b7488a96cde00e158159350d23e3d90",
}
