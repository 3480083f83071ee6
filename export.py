"""Export a checkpoint as a sentence-transformers + Hugging Face folder (a GS model keeps its proxy).

    python export.py --model_name_or_path outputs/unsup-simcse --output_dir exported/unsup-simcse
    python export.py --model_name_or_path outputs/unsup-gs --output_dir exported/unsup-gs   # trust_remote_code
    python export.py --model_name_or_path outputs/avg-top2 --output_dir exported/avg-top2 --format hf

See :mod:`simcse_gs.export` and docs/RESEARCH_TOOLS.md. Errors follow :mod:`simcse_gs.cli`: a bad checkpoint or
output folder prints ``export.py: error: ...`` and exits 2; a failure while writing the export exits 1.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from simcse_gs.cli import RUN_FAILURE, USAGE_ERROR, fail
from simcse_gs.export import FORMATS, export_model
from simcse_gs.model_folder import ModelFolderError

PROG = "export.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True, help="A checkpoint folder written by train.py.")
    parser.add_argument("--output_dir", required=True, help="The export folder (new or empty).")
    parser.add_argument("--format", choices=FORMATS, default="st",
                        help="st: Hugging Face + sentence-transformers files (default); hf: Hugging Face files only.")
    parser.add_argument("--overwrite", action="store_true", help="Write into a non-empty --output_dir.")
    parser.add_argument("--drop_proxy", action="store_true",
                        help="GS checkpoints: export the backbone alone with stock classes (no custom code). It keeps "
                             "every token, so its embeddings differ from the GS model's.")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # printed below, prominently
        try:
            result = export_model(args.model_name_or_path, args.output_dir, args.format, args.overwrite,
                                  args.drop_proxy)
        except (ValueError, ModelFolderError, FileExistsError) as err:  # a bad checkpoint, pooler or --output_dir
            return fail(PROG, err, USAGE_ERROR)
        except OSError as err:  # the disk, while writing
            return fail(PROG, err, RUN_FAILURE)
    for message in result.warnings:
        print(f"WARNING: {message}", file=sys.stderr)
    pooling = f", sentence-transformers pooling '{result.st_pooling}'" if result.st_pooling else ""
    dense = " + Dense(tanh) MLP" if result.dense else ""
    if result.st_module:
        pooling = (f", sentence-transformers module {result.st_module} (proxy and inference keep rule; load with "
                   "trust_remote_code=True)")
    print(f"Exported pooler '{result.pooler_type}'{pooling}{dense} to {result.output_dir}:")
    for name in result.files:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
