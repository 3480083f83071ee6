"""``python -m simcse_gs.data_files``: find (or fetch) the data files; prints the path a script then uses."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..cli import RUN_FAILURE, USAGE_ERROR, fail
from . import __doc__ as PACKAGE_DOC
from .download import WIKI_SAMPLE, ChecksumError, DataError, fetch_wiki_sample
from .locations import DATA_ENV, PROG, resolve_sts_data, resolve_train_file, train_file_candidates
from .snli import SNLI_TRIPLES, build_snli_triples
from .sts import fetch_sts
from .transfer import fetch_transfer, resolve_transfer_data


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simcse_gs.data_files {train_file NAME | sts | transfer} [--fetch]``, ``... snli_triples SNLI_DIR``:
    print the path to use (stdout); messages and the progress bar go to stderr."""
    parser = argparse.ArgumentParser(prog=PROG, description=PACKAGE_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    train = sub.add_parser("train_file", help="find (or with --fetch download) a training file; prints its path")
    train.add_argument("path", help=f"a path or basename, e.g. data/{WIKI_SAMPLE.name}")
    sts = sub.add_parser("sts", help="find (or with --fetch download) the STS sets; prints the folder")
    sts.add_argument("--senteval_data", default=None, help="the folder to use (default: $SENTEVAL_DATA, ...)")
    transfer = sub.add_parser("transfer", help="find (or with --fetch download) SentEval's transfer tasks (MR, CR, "
                              "SUBJ, MPQA, SST2, TREC, MRPC); prints the folder")
    transfer.add_argument("--senteval_data", default=None, help="the folder to use (default: $SENTEVAL_DATA, ...)")
    for p in (train, sts, transfer):
        p.add_argument("--fetch", action="store_true", help="download what is missing (needs the network)")
        p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    triples = sub.add_parser("snli_triples", help=f"build {SNLI_TRIPLES} from SentEval-format SNLI dev/test")
    triples.add_argument("snli_dir", help="folder with s1.dev, s2.dev, labels.dev, s1.test, s2.test, labels.test")
    args = parser.parse_args(argv)
    try:
        if args.what == "snli_triples":
            found = str(build_snli_triples(args.snli_dir))
        elif args.what == "train_file":
            found = resolve_train_file(args.path)
            if not Path(found).is_file():
                if not (args.fetch and Path(args.path).name == WIKI_SAMPLE.name):
                    where = ", ".join(str(c) for c in train_file_candidates(args.path))
                    raise DataError(f"training file {args.path} not found (looked in: {where}). Run bash "
                                    "scripts/download_data.sh for SimCSE's full files, or set TRAIN_FILE / "
                                    f"${DATA_ENV}.")
                found = str(fetch_wiki_sample(progress=not args.no_progress))
        elif args.what == "transfer":
            found = resolve_transfer_data(args.senteval_data)
            if found is None:
                named = args.senteval_data or os.environ.get("SENTEVAL_DATA")
                if not args.fetch:
                    raise DataError(f"SentEval transfer tasks not found{f' in {named}' if named else ''}: set "
                                    "SENTEVAL_DATA (or --senteval_data) to a folder with MR/ CR/ SUBJ/ MPQA/ "
                                    "SST/binary/ TREC/ MRPC/, or download them with python -m simcse_gs.data_files "
                                    "transfer --fetch (checksums verified)")
                found = str(fetch_transfer(named or None, progress=not args.no_progress))
        else:
            found = resolve_sts_data(args.senteval_data)
            if found is None:
                if not args.fetch:
                    named = args.senteval_data or os.environ.get("SENTEVAL_DATA")
                    raise DataError(f"STS data not found{f' in {named}' if named else ''}: set SENTEVAL_DATA (or "
                                    "--senteval_data) to the folder with STS/ and SICK/, or download them with "
                                    "python -m simcse_gs.data_files sts --fetch (checksums verified)")
                found = str(fetch_sts(args.senteval_data or os.environ.get("SENTEVAL_DATA") or None,
                                      progress=not args.no_progress))
    except DataError as err:
        return fail(PROG, err, USAGE_ERROR)
    except (ChecksumError, OSError) as err:
        return fail(PROG, err, RUN_FAILURE)
    print(found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
