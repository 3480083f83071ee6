"""Fixtures of the data-file tests: the local HTTP server of test_data_files.py for every module here, and the real
transfer-task files (the shared copy, or the user's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data_files.test_data_files import file_server  # noqa: F401 (a fixture: serves name -> bytes locally)


@pytest.fixture(scope="session")
def real_transfer_data() -> Path:
    """The real transfer-task files, found as ``python -m simcse_gs.data_files transfer`` finds them; skipped,
    saying how to get them, where absent."""
    from simcse_gs.data_files import resolve_transfer_data

    path = resolve_transfer_data(None, log=False)
    if path is None:
        pytest.skip("real transfer-task data not found; set SENTEVAL_DATA to a folder with MR/ CR/ SUBJ/ MPQA/ "
                    "SST/binary/ TREC/ MRPC/, or run python -m simcse_gs.data_files transfer --fetch")
    return Path(path)
