"""Downloading with checksums: nothing is installed unless its content is the expected one.

Every download shows a progress bar, writes nothing on a failed download or checksum, and names the cause when the
machine is offline. ``$SIMCSE_GS_DATA_URL`` replaces the download location (a mirror; the tests' local server).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .locations import DATA_ENV, data_dir, say

URL_ENV = "SIMCSE_GS_DATA_URL"
SIMCSE_DATA_URL = "https://huggingface.co/datasets/princeton-nlp/datasets-for-simcse/resolve/main"


class DataError(Exception):
    """Data that is missing and cannot be fetched (offline, unreachable): a user's setup to fix (exit 2)."""


class ChecksumError(Exception):
    """A download that does not have the expected content: nothing was installed (exit 1)."""


@dataclass(frozen=True)
class Sample:
    """The first ``n_bytes`` of a remote text file, cut back to its last complete line, with a known SHA-256."""

    name: str
    source: str  # file name under the download location
    n_bytes: int
    sha256: str


WIKI_SAMPLE = Sample("wiki1m_for_simcse.head11914.txt", "wiki1m_for_simcse.txt", 1_280_000,
                     "423e56115d182ab21d4f413473f6f615888d140fec81f06a750297b5940aa190")


def data_url(name: str) -> str:
    """Where ``name`` is downloaded from: SimCSE's data repository, or the mirror in ``$SIMCSE_GS_DATA_URL``."""
    return f"{(os.environ.get(URL_ENV) or SIMCSE_DATA_URL).rstrip('/')}/{name}"


def download(url: str, target: Path, max_bytes: int | None = None, progress: bool = True,
             timeout: float = 60.0) -> int:
    """Write ``url`` (its first ``max_bytes`` only: a range request, cut short if the server ignores the range) to
    ``target``; returns the bytes written. Raises :class:`DataError` when the server cannot be reached."""
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "simcse-gs"})
    if max_bytes is not None:
        request.add_header("Range", f"bytes=0-{max_bytes - 1}")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(
            f"could not download {url} ({type(err).__name__}: {reason}). This machine looks offline, or the "
            "host is blocked. Copy the data yourself (see README, Install: Data) or point at a copy: TRAIN_FILE / "
            f"${DATA_ENV} for the training sentences, SENTEVAL_DATA for the STS sets."
        ) from None
    size = response.headers.get("Content-Length")
    total = min(int(size), max_bytes or int(size)) if size else max_bytes
    written = 0
    with response, open(target, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=target.name,
                                                  disable=not progress) as bar:
        while max_bytes is None or written < max_bytes:
            chunk = response.read(min(1 << 16, (max_bytes - written) if max_bytes else 1 << 16))
            if not chunk:
                break
            out.write(chunk)
            written += len(chunk)
            bar.update(len(chunk))
    return written


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_sample(sample: Sample, dest_dir: Path, progress: bool = True) -> Path:
    """Download ``sample`` into ``dest_dir`` (see :class:`Sample`); the file appears only once its checksum is right."""
    target = dest_dir / sample.name
    dest_dir.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        written = download(data_url(sample.source), part, sample.n_bytes, progress)
        data = part.read_bytes()
        if written < sample.n_bytes:
            raise ChecksumError(f"{data_url(sample.source)} gave {written} bytes, expected at least {sample.n_bytes}")
        data = data[: data.rfind(b"\n") + 1]  # cut back to the last complete line
        digest = hashlib.sha256(data).hexdigest()
        if digest != sample.sha256:
            raise ChecksumError(f"{sample.name}: SHA-256 {digest} of the downloaded lines, expected {sample.sha256}; "
                                "nothing was installed. The remote file changed, or the download was altered.")
        part.write_bytes(data)
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)
    lines = data.count(b"\n")
    say(f"{target}: {lines} lines, SHA-256 verified")
    return target


def fetch_wiki_sample(dest_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """The CPU-sized Wikipedia sample (:data:`WIKI_SAMPLE`) into ``dest_dir`` (default :func:`data_dir`)."""
    return fetch_sample(WIKI_SAMPLE, Path(dest_dir) if dest_dir else data_dir(), progress)
