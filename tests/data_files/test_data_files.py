"""simcse_gs.data_files: finding the data, and fetching what a fresh machine lacks, against a local file server.

Never the real network: a ``ThreadingHTTPServer`` on 127.0.0.1 serves the files (honouring HTTP range requests, or
ignoring them like a server that always sends the whole file), and ``$SIMCSE_GS_DATA_URL`` points the fetcher at it.
"""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import senteval
from simcse_gs import data_files
from simcse_gs.data_files import (
    SNLI_TRIPLES_SHA256,
    STS_SHA256,
    WIKI_SAMPLE,
    ChecksumError,
    DataError,
    build_snli_triples,
    fetch_sts,
    fetch_wiki_sample,
    resolve_train_file,
)
from tests.conftest import NLI, REPO, WIKI, run_script


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        wanted = self.headers.get("Range")
        server.requests.append((self.path, wanted))
        body = server.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        if wanted and server.honor_range:
            start, end = (int(x) for x in wanted.removeprefix("bytes=").split("-"))
            part = body[start : end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{start + len(part) - 1}/{len(body)}")
        else:
            part = body
            self.send_response(200)
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        try:
            self.wfile.write(part)
            server.sent.append(len(part))
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading (a range the server ignored)
            server.sent.append(-1)

    def log_message(self, *args):
        pass


@pytest.fixture()
def file_server(monkeypatch):
    """A local server of ``server.files`` (name -> bytes) at ``$SIMCSE_GS_DATA_URL``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.requests, server.sent, server.honor_range = {}, [], [], True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(data_files.URL_ENV, f"http://127.0.0.1:{server.server_port}")
    yield server
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wiki_head() -> bytes:
    if not WIKI.is_file():
        pytest.skip(f"training data not found ({WIKI}): put it in data/ or set SIMCSE_GS_DATA (README)")
    return WIKI.read_bytes()


def remote_wiki1m(head: bytes) -> bytes:
    """What SimCSE's wiki1m looks like to a range request: the sample's lines, then a line that the 1,280,000th
    byte cuts in the middle, then more lines."""
    cut_line = b"Y" * (WIKI_SAMPLE.n_bytes - len(head)) + b" and the rest of this sentence.\n"
    return head + cut_line + b"Another sentence of the remaining million.\n" * 2000


# ---------------------------------------------------------------------------------------------- the wiki sample


@pytest.mark.parametrize("honor_range", [True, False])
def test_the_wiki_sample_is_a_range_request_cut_at_the_last_line_and_checked(file_server, tmp_path, capsys,
                                                                             honor_range):
    head = _wiki_head()
    file_server.files[WIKI_SAMPLE.source] = remote_wiki1m(head)
    file_server.honor_range = honor_range
    path = fetch_wiki_sample(tmp_path / "data")
    assert path == tmp_path / "data" / WIKI_SAMPLE.name and path.read_bytes() == head
    assert hashlib.sha256(path.read_bytes()).hexdigest() == WIKI_SAMPLE.sha256
    assert file_server.requests == [(f"/{WIKI_SAMPLE.source}", f"bytes=0-{WIKI_SAMPLE.n_bytes - 1}")]
    if honor_range:  # only the 1.28 MB asked for crossed the wire
        assert file_server.sent == [WIKI_SAMPLE.n_bytes]
    err = capsys.readouterr().err
    assert "100%" in err and WIKI_SAMPLE.name in err  # the progress bar
    assert "11914 lines, SHA-256 verified" in err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [WIKI_SAMPLE.name]


def test_a_sample_with_another_checksum_is_not_installed(file_server, tmp_path):
    head = _wiki_head()
    file_server.files[WIKI_SAMPLE.source] = remote_wiki1m(head.replace(b"YMCA", b"YWCA", 1))
    with pytest.raises(ChecksumError, match=r"SHA-256 [0-9a-f]{64} of the downloaded lines, expected 423e5611"):
        fetch_wiki_sample(tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []  # no sample, no .part file
    file_server.files[WIKI_SAMPLE.source] = head[:1000]  # a truncated file: fewer bytes than asked for
    with pytest.raises(ChecksumError, match="gave 1000 bytes, expected at least 1280000"):
        fetch_wiki_sample(tmp_path / "data")


def test_offline_is_said_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(data_files.URL_ENV, f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(DataError, match=r"could not download .* This machine looks offline"):
        fetch_wiki_sample(tmp_path / "data")
    monkeypatch.setenv(data_files.DATA_ENV, str(tmp_path / "data"))
    monkeypatch.setenv(data_files.SHARED_ENV, str(tmp_path / "no-shared-copy"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data_files.locations, "DATA_DIR", tmp_path / "no-repo-data")
    assert data_files.main(["train_file", f"data/{WIKI_SAMPLE.name}", "--fetch", "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert "data_files: error: could not download" in err and "TRAIN_FILE" in err and "Traceback" not in err


def test_local_copies_are_used_and_the_network_is_not_asked(file_server, tmp_path, monkeypatch, capsys, sts_data):
    own = tmp_path / "mine"
    own.mkdir()
    (own / WIKI_SAMPLE.name).write_text("a sentence\n")
    monkeypatch.setenv(data_files.DATA_ENV, str(own))
    monkeypatch.chdir(tmp_path)
    assert data_files.main(["train_file", f"data/{WIKI_SAMPLE.name}", "--fetch"]) == 0
    assert capsys.readouterr().out.strip() == str(own / WIKI_SAMPLE.name)
    monkeypatch.setenv("SENTEVAL_DATA", sts_data)
    assert data_files.main(["sts", "--fetch"]) == 0
    assert capsys.readouterr().out.strip() == senteval.resolve_task_path(sts_data)
    assert file_server.requests == []


def test_training_files_are_found_in_order_and_the_choice_is_said(tmp_path, monkeypatch, capsys):
    name = "wiki1m_for_simcse.head11914.txt"
    shared = tmp_path / "shared"
    (shared / "train" / "wiki").mkdir(parents=True)
    (shared / "train" / "wiki" / name).write_text("shared\n")
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    monkeypatch.setenv(data_files.SHARED_ENV, str(shared))
    monkeypatch.setenv(data_files.DATA_ENV, str(env_dir))
    monkeypatch.setattr(data_files.locations, "DATA_DIR", tmp_path / "repo-data")
    monkeypatch.chdir(tmp_path)
    assert resolve_train_file(f"data/{name}") == str(shared / "train" / "wiki" / name)
    assert f"training file data/{name} not found; using {shared}" in capsys.readouterr().err
    (tmp_path / "repo-data").mkdir()
    (tmp_path / "repo-data" / name).write_text("the repository's data/, seen from another folder\n")
    assert resolve_train_file(f"data/{name}") == str(tmp_path / "repo-data" / name)
    (env_dir / name).write_text("env\n")
    assert resolve_train_file(f"data/{name}") == str(env_dir / name)  # $SIMCSE_GS_DATA before the repository's
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / name).write_text("here\n")
    assert resolve_train_file(f"data/{name}") == f"data/{name}"  # the path as given wins
    assert resolve_train_file("data/unknown.txt") == "data/unknown.txt"  # nothing found: train.py names it


# ---------------------------------------------------------------------------------------------- the STS sets


def senteval_tar(sts_root: Path, tamper: str | None = None) -> bytes:
    """SimCSE's archive layout (SentEval/data/downstream/{STS,SICK}) built from an STS folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("STS", "SICK"):
            for path in sorted((sts_root / folder).rglob("*")):
                relative = path.relative_to(sts_root).as_posix()
                info = tar.gettarinfo(str(path), arcname=f"SentEval/data/downstream/{relative}")
                if path.is_file():
                    data = path.read_bytes()
                    if relative == tamper:
                        data = data.replace(b"5.000", b"4.000", 1) + b"\n"
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                else:
                    tar.addfile(info)
    return buffer.getvalue()


def test_the_sts_archive_is_checked_file_by_file_before_it_is_installed(file_server, real_sts_data, tmp_path):
    real = Path(real_sts_data)
    tampered = "STS/STS12-en-test/STS.gs.MSRvid.txt"
    file_server.files[data_files.STS_ARCHIVE] = senteval_tar(real, tamper=tampered)
    with pytest.raises(ChecksumError, match=rf"1 of the 54 STS files are missing or differ .*\({tampered}\)"):
        fetch_sts(tmp_path / "sts", progress=False)
    assert [p.name for p in (tmp_path / "sts").iterdir()] == []  # nothing installed, no temporary folder left

    file_server.files[data_files.STS_ARCHIVE] = senteval_tar(real)
    dest = fetch_sts(tmp_path / "sts", progress=False)
    assert senteval.resolve_task_path(dest) == str(dest.resolve())
    assert len(STS_SHA256) == 54
    for name, digest in STS_SHA256.items():
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == digest


def test_the_snli_triples_are_rebuilt_exactly(real_sts_data, tmp_path):
    snli = Path(real_sts_data) / "SNLI"
    if not snli.is_dir():
        pytest.skip(f"SentEval-format SNLI not found in {real_sts_data}")
    path = build_snli_triples(snli, tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SNLI_TRIPLES_SHA256
    if NLI.is_file():
        assert path.read_bytes() == NLI.read_bytes()


def test_snli_triples_pair_the_ith_entailment_with_the_ith_contradiction(tmp_path):
    snli = tmp_path / "SNLI"
    snli.mkdir()
    rows = [("p1", "e1", "entailment"), ("p1", "n1", "neutral"), ("p2", "c2", "contradiction"),
            ("p1", "c1", "contradiction"), ("p1", "e1b", "entailment"), ("p2 ", "e2", "entailment"),
            ("p3", "e3", "entailment"), ("p1, with a comma", "e4", "entailment"), ("p1, with a comma", "c4", "-")]
    for split in ("dev", "test"):
        for column, kind in enumerate(("s1", "s2", "labels")):
            (snli / f"{kind}.{split}").write_text("".join(f"{r[column]}\n" for r in rows if split == "dev"))
    text = build_snli_triples(snli, tmp_path).read_text()
    assert text == "sent0,sent1,hard_neg\np1,e1,c1\np2,e2,c2\n"


# ---------------------------------------------------------------------------------------------- quickstart


def test_quickstart_fetches_what_is_missing_then_uses_it(file_server, real_sts_data, tmp_path):
    """``bash scripts/quickstart.sh --fetch_only`` on a machine with neither data copy: both are downloaded into
    $SIMCSE_GS_DATA / $SENTEVAL_DATA and checked; a second run finds them and asks nothing."""
    file_server.files[WIKI_SAMPLE.source] = remote_wiki1m(_wiki_head())
    file_server.files[data_files.STS_ARCHIVE] = senteval_tar(Path(real_sts_data))
    env = {data_files.URL_ENV: f"http://127.0.0.1:{file_server.server_port}", data_files.DATA_ENV: str(tmp_path / "d"),
           "SENTEVAL_DATA": str(tmp_path / "sts"), data_files.SHARED_ENV: str(tmp_path / "no-shared-copy")}
    if (REPO / "data" / WIKI_SAMPLE.name).is_file():
        pytest.skip("this checkout has data/ (the quickstart would use it, rightly): nothing to fetch")
    proc = run_script("quickstart.sh", "--fetch_only", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = f"== data: training sentences {tmp_path / 'd' / WIKI_SAMPLE.name}, STS sets {tmp_path / 'sts'}"
    assert found in proc.stdout
    assert "11914 lines, SHA-256 verified" in proc.stderr and "54 files SHA-256 verified" in proc.stderr
    assert len(file_server.requests) == 2
    again = run_script("quickstart.sh", "--fetch_only", env=env)
    assert again.returncode == 0 and len(file_server.requests) == 2  # local copies used

    offline = run_script("quickstart.sh", "--fetch_only", env={**env, data_files.DATA_ENV: str(tmp_path / "empty"),
                                                               data_files.URL_ENV: f"http://127.0.0.1:{_closed_port()}"})
    assert offline.returncode == 2 and "This machine looks offline" in offline.stderr
