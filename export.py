"""Export a checkpoint as a sentence-transformers + Hugging Face folder (a GS model keeps its proxy).

    python export.py --model_name_or_path outputs/unsup-simcse --output_dir exported/unsup-simcse
    python export.py --model_name_or_path outputs/unsup-gs --output_dir exported/unsup-gs   # trust_remote_code
    python export.py --model_name_or_path outputs/avg-top2 --output_dir exported/avg-top2 --format hf

See :mod:`simcse_gs.sharing.export` and docs/RESEARCH_TOOLS.md. Errors follow :mod:`simcse_gs.cli`: a bad checkpoint or
output folder prints ``export.py: error: ...`` and exits 2; a failure while writing the export exits 1.
"""

import sys

from simcse_gs.sharing.export import main

if __name__ == "__main__":
    sys.exit(main())
