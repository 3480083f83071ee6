"""The data files: where they are, and fetching what a fresh machine lacks (with checksums).

* :mod:`.locations`: training files by SimCSE's basenames (``data/``, ``$SIMCSE_GS_DATA``, the shared copy) and the
  STS sets (``--senteval_data``, ``$SENTEVAL_DATA``, ``SentEval/data/downstream``, the shared copy);
* :mod:`.download`: HTTP downloads (a range request for the 1.28 MB wiki1m sample) with SHA-256 checks;
* :mod:`.sts`: SimCSE's ``senteval.tar``, 54 files checked before ``STS/`` and ``SICK/`` are installed;
* :mod:`.snli`: the CPU configs' SNLI triples, rebuilt from SentEval-format SNLI;
* :mod:`.transfer`: SentEval's transfer tasks (MR, CR, SUBJ, MPQA, SST2, TREC, MRPC) from SentEval's sources, converted
  as its ``get_transfer_data.bash`` does, 15 files checked before they are installed.

``python -m simcse_gs.data_files {train_file NAME | sts | transfer} [--fetch]`` (what the scripts call) prints the path
to use; messages and progress bars go to stderr. Nothing here imports torch or transformers.
"""

from .download import (
    SIMCSE_DATA_URL,
    URL_ENV,
    WIKI_SAMPLE,
    ChecksumError,
    DataError,
    Sample,
    download,
    fetch_sample,
    fetch_wiki_sample,
)
from .locations import (
    DATA_DIR,
    DATA_ENV,
    DEFAULT_STS_DIR,
    REPO,
    SHARED_ENV,
    TRAIN_FILES,
    data_dir,
    resolve_sts_data,
    resolve_train_file,
    shared_data_root,
    train_file_candidates,
)
from .snli import SNLI_TRIPLES, SNLI_TRIPLES_SHA256, build_snli_triples
from .sts import STS_ARCHIVE, STS_SHA256, fetch_sts
from .transfer import (
    TRANSFER_SHA256,
    TRANSFER_SOURCES,
    fetch_transfer,
    has_transfer_data,
    ptb_tokenize,
    resolve_transfer_data,
)


def main(argv=None) -> int:
    """The command line (:mod:`.__main__`), callable in-process."""
    from .__main__ import main as _main

    return _main(argv)


__all__ = [
    "DATA_DIR", "DATA_ENV", "DEFAULT_STS_DIR", "REPO", "SHARED_ENV", "SIMCSE_DATA_URL", "SNLI_TRIPLES",
    "SNLI_TRIPLES_SHA256", "STS_ARCHIVE", "STS_SHA256", "TRAIN_FILES", "TRANSFER_SHA256", "TRANSFER_SOURCES",
    "URL_ENV", "WIKI_SAMPLE", "ChecksumError", "DataError", "Sample", "build_snli_triples", "data_dir", "download",
    "fetch_sample", "fetch_sts", "fetch_transfer", "fetch_wiki_sample", "has_transfer_data", "main", "ptb_tokenize",
    "resolve_sts_data", "resolve_train_file", "resolve_transfer_data", "shared_data_root", "train_file_candidates",
]
