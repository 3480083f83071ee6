"""STS-B test through MTEB, offline, next to our own evaluator's number for the same model and pairs.

    python scripts/mteb_sts.py --model_name_or_path outputs/unsup-gs --senteval_data ../shared/data/downstream

MTEB (>= 2, ``pip install mteb``) evaluates the model as a user would run it: as a ``SentenceTransformer``
(``trust_remote_code=True`` on an export this script writes to a temporary folder, a GS model with its proxy, so
the code that runs is this package's own, not the input folder's). The task reads STS-B test from the local
SentEval files (MTEB's own STSBenchmark task downloads it from the Hub), with the sentences SentEval encodes
(whitespace-joined tokens). Our number is the STS-B test Spearman of :func:`simcse_gs.evaluation.sts.evaluate_sts` with
:meth:`SimCSEGSModel.encode`. Both are cosine Spearman x 100.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import senteval
from simcse_gs.evaluation.sts import evaluate_sts
from simcse_gs.model import SimCSEGSModel
from simcse_gs.sharing.export import export_model


def local_stsb_task(task_path: str, split: str = "test"):  # -> mteb AbsTaskSTS
    """An MTEB STS task over SentEval's STS-B files (no download)."""
    import datasets
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.task_metadata import TaskMetadata

    class LocalSTSBenchmark(AbsTaskSTS):
        min_score, max_score = 0, 5
        metadata = TaskMetadata(
            name="LocalSTSBenchmark", dataset={"path": str(task_path), "revision": "local"},
            description="STS Benchmark read from SentEval's files.", reference=None, type="STS", category="t2t",
            modalities=["text"], eval_splits=[split], eval_langs=["eng-Latn"], main_score="cosine_spearman",
            date=None, domains=None, task_subtypes=None, license=None, annotations_creators=None, dialect=None,
            sample_creation=None, bibtex_citation=None,
        )

        def load_data(self, **kwargs) -> None:  # local files instead of the Hub
            pairs = senteval.load_stsb(task_path, [split])[split]
            self.dataset = datasets.DatasetDict({split: datasets.Dataset.from_dict({
                "sentence1": [" ".join(s.split()) for s in pairs.sent1],
                "sentence2": [" ".join(s.split()) for s in pairs.sent2],
                "score": [float(x) for x in pairs.scores],
            })})
            self.data_loaded = True

    return LocalSTSBenchmark()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True,
                        help="A checkpoint folder written by train.py, or an export of one.")
    parser.add_argument("--senteval_data", default=None, help="SentEval's data folder (default: $SENTEVAL_DATA).")
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args(argv)
    try:
        import mteb
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        print(f"error: {err}; pip install mteb sentence-transformers", file=sys.stderr)
        raise SystemExit(2) from None
    task_path = senteval.resolve_task_path(args.senteval_data)

    model = SimCSEGSModel.from_pretrained(args.model_name_or_path)
    results = evaluate_sts(lambda s: model.encode(s, batch_size=args.batch_size), task_path, ["STSBenchmark"],
                           ["test"], args.batch_size)
    ours = 100 * float(results["STSBenchmark"]["test"]["spearman"])

    with tempfile.TemporaryDirectory() as tmp:
        # Export even an export: the folder then holds this package's own code, never code that came with the input.
        folder = os.path.join(tmp, "export")
        export_model(model, folder)
        st = SentenceTransformer(folder, trust_remote_code=True, device=str(model.device))  # own code
        run = mteb.evaluate(st, local_stsb_task(task_path), cache=None, show_progress_bar=False,
                            encode_kwargs={"batch_size": args.batch_size})
    theirs = 100 * float(run.task_results[0].scores["test"][0]["cosine_spearman"])
    print(f"STS-B test Spearman x 100: simcse_gs evaluator {ours:.4f} | MTEB {mteb.__version__} "
          f"(SentenceTransformer) {theirs:.4f} | difference {theirs - ours:+.2e}")
    return {"simcse_gs": ours, "mteb": theirs}


if __name__ == "__main__":
    main()
