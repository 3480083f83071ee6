"""How long does SentEval's transfer suite take, and where does the time go (embedding vs the classifier)?

    nice python -m bench.transfer_suite --threads 2                          # packaged MiniLM, fasttest, all tasks
    python -m bench.transfer_suite --threads 2 --mode test --pooler cls_before_pooler
    python -m bench.transfer_suite --model-path outputs/unsup-gs --tasks MR SST2 --precision bf16

Runs the suite exactly as ``evaluation.py --task_set transfer`` does (the same loading, the same embedding of each
distinct sentence once in token-length order, the same classifier protocol), once, and prints per task: distinct
sentences, seconds loading the files, embedding, and training/testing the classifier, and the accuracy; then the
totals, the embedding's and the classifier's share, and the issue's targets on 2 CPU cores with the packaged
MiniLM (whole suite <= 8 min under fasttest, <= 15 min under test; the classifier's share below the embedding's).
One run, not interleaved rounds: the suite takes minutes, so on a shared machine say what else was running.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.common import machine_info, minilm_path, print_machine, print_table, quiet, report, set_threads, verdict
from simcse_gs.evaluation.evaluate import evaluate
from simcse_gs.evaluation.transfer import TRANSFER_TASKS

TARGET_S = {"fasttest": 8 * 60, "test": 15 * 60}  # issue 22, 2 CPU cores, packaged MiniLM


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", help="model folder (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--pooler", default="avg", help="pooler of plain encoders (evaluation.py --pooler)")
    parser.add_argument("--mode", default="fasttest", choices=list(TARGET_S), help="the classifier protocol")
    parser.add_argument("--tasks", nargs="+", default=list(TRANSFER_TASKS), help="default: every transfer task")
    parser.add_argument("--senteval-data", help="data/downstream folder (default: as evaluation.py finds it)")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16 (evaluation.py --precision)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="two small tasks (TREC, MRPC): a smoke test")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks = ["TREC", "MRPC"]
    quiet()
    set_threads(args.threads)
    info = machine_info()
    print_machine(info)
    path = args.model_path or minilm_path()
    argv_eval = ["--model_name_or_path", path, "--pooler", args.pooler, "--mode", args.mode, "--tasks", *args.tasks,
                 "--batch_size", str(args.batch_size), "--precision", args.precision, "--no_progress",
                 "--device", "cpu"]
    if args.senteval_data:
        argv_eval += ["--senteval_data", args.senteval_data]
    start = time.perf_counter()
    payload = evaluate(argv_eval)
    wall = time.perf_counter() - start
    record = payload["models"][0]
    results = record["results"]

    rows, per_task = [], {}
    for task in payload["tasks"]:
        t = results[task]["time"]
        per_task[task] = {"sentences": results[task]["nsentences"], **t, "acc": results[task]["acc"],
                          "devacc": results[task]["devacc"]}
        rows.append([task, results[task]["nsentences"], f"{t['load_s']:.1f}", f"{t['encode_s']:.1f}",
                     f"{t['classifier_s']:.1f}", f"{results[task]['acc']:.2f}"])
    totals = record["transfer_time"]
    avg = record["transfer"].get("avg")
    rows.append(["total", totals["sentences"], f"{totals['load_s']:.1f}", f"{totals['encode_s']:.1f}",
                 f"{totals['classifier_s']:.1f}", "-" if avg is None else f"{avg:.2f} (Avg.)"])
    print()
    print_table(["task", "sentences", "load s", "embed s", "classifier s", "acc"], rows)

    suite = totals["load_s"] + totals["encode_s"] + totals["classifier_s"]
    embed_share = totals["encode_s"] / suite if suite else 0.0
    clf_share = totals["classifier_s"] / suite if suite else 0.0
    whole = set(payload["tasks"]) >= set(TRANSFER_TASKS[:7])
    lines = [
        f"transfer suite ({args.mode}, {len(payload['tasks'])} tasks, {totals['sentences']} distinct sentences, "
        f"{info.get('nproc')} cores, threads {args.threads or 'default'}): {wall:.1f} s wall, of which embedding "
        f"{totals['encode_s']:.1f} s ({embed_share:.0%}), classifier {totals['classifier_s']:.1f} s ({clf_share:.0%}), "
        f"loading {totals['load_s']:.1f} s; {totals['sentences'] / max(totals['encode_s'], 1e-9):.0f} sentences/s",
        f"classifier share below the embedding's: {verdict(totals['classifier_s'] < totals['encode_s'])}",
    ]
    if whole and args.model_path is None:
        lines.append(f"whole suite <= {TARGET_S[args.mode] // 60} min ({args.mode}, packaged MiniLM): "
                     f"{verdict(wall <= TARGET_S[args.mode])}")
    result = {"machine": info, "args": vars(args), "wall_s": wall, "per_task": per_task, "totals": totals,
              "embed_share": embed_share, "classifier_share": clf_share, "transfer": record["transfer"]}
    return report(result, lines, args.json)


if __name__ == "__main__":
    main()
