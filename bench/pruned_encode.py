"""Does dropping tokens pay for itself? Encoding sentences/s of a token-selecting model, pruned against masked.

    python -m bench.pruned_encode --threads 2                              # MiniLM, 1-layer proxy, r = 0.8 0.7 0.6
    python -m bench.pruned_encode --model_name_or_path CKPT --rates 0.7    # a trained checkpoint (renormalised)

Three ways of encoding the same sentences, interleaved in one process (bench/common.py's timing rule):

* ``masked``: the GS model at keep budget r with the dropped tokens masked: the proxy, then every backbone layer
  over every token (what ``encode`` does without ``prune``: the "full model");
* ``pruned``: the same model, the dropped tokens removed from the input (``encode(..., prune=True)``): the proxy
  over every token, the backbone over ``r`` of them; the embeddings must equal ``masked``'s (checked, 1e-5);
* ``backbone``: the encoder alone with every token and no proxy (plain SimCSE's cost), for reference.

The ratios printed last are pruned / masked and pruned / backbone, in sentences per second. Without a checkpoint
the model is the packaged MiniLM with a ``--proxy_num_layers`` proxy made of its first layers and a random proxy
head (the timing does not depend on which tokens are dropped, only on how many).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from bench.common import (
    interleaved,
    machine_info,
    med,
    minilm_path,
    print_machine,
    print_table,
    quiet,
    read_sentences,
    report,
    set_threads,
    spread,
    verdict,
)
from simcse_gs.model.encoding import encode_in_length_order
from simcse_gs.model.keep import KeepStatsAccumulator
from simcse_gs.model_folder import max_input_length

TARGET = 1.2  # issue: pruned encoding >= 1.2x the full model's sentences/s at r <= 0.8


def build_model(args: argparse.Namespace):
    from simcse_gs.model import SimCSEGSModel

    if args.model_name_or_path:
        return SimCSEGSModel.from_pretrained(args.model_name_or_path)
    path = args.model_path or minilm_path()
    torch.manual_seed(0)
    model = SimCSEGSModel.from_backbone(path, use_gs=True, pooler_type="cls", mlp_only_train=True,
                                        proxy_num_layers=args.proxy_num_layers, gs_attn_renorm=True,
                                        gs_estimator="topk", gs_target_keep_rate=0.7)
    with torch.no_grad():
        model.proxy.head.weight.normal_(0, 0.5)
    return model


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", help="a trained simcse-gs checkpoint (renormalised attention)")
    parser.add_argument("--model-path", help="backbone folder for the untrained model (default: packaged MiniLM)")
    parser.add_argument("--proxy_num_layers", type=int, default=1)
    parser.add_argument("--rates", default="0.8,0.7,0.6", help="keep budgets r, comma-separated")
    parser.add_argument("--sentences", type=int, default=1024)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="a few sentences, one round (smoke test)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.sentences, args.reps, args.warmup = 64, 1, 0
    quiet()
    set_threads(args.threads)
    info = machine_info()
    print_machine(info)
    model = build_model(args).eval()
    rates = [float(r) for r in args.rates.split(",")]
    sentences = read_sentences(args.sentences)
    bs = args.batch_size
    print(f"{len(sentences)} sentences, batch {bs}, proxy layers {model.proxy.encoder.config.num_hidden_layers}, "
          f"backbone layers {model.backbone.config.num_hidden_layers}, rates {rates}", flush=True)

    limit = max_input_length(model.tokenizer, model.backbone.config)

    @torch.inference_mode()
    def backbone_only(_round: int) -> torch.Tensor:  # the same backbone and pooler, every token, no proxy
        return encode_in_length_order(
            model.tokenizer, sentences,
            lambda b: model.embed(b["input_ids"], b["attention_mask"], b.get("token_type_ids")),
            model.backbone.config.hidden_size, torch.device("cpu"), bs, limit)

    rows, result = [], {"machine": info, "rates": {}, "args": vars(args)}
    lines = []
    for rate in rates:
        fns = {
            "masked": lambda _r, rate=rate: model.encode(sentences, batch_size=bs, keep_budget=rate),
            "pruned": lambda _r, rate=rate: model.encode(sentences, batch_size=bs, keep_budget=rate, prune=True),
            "backbone": backbone_only,
        }
        stats = KeepStatsAccumulator()
        masked = model.encode(sentences, batch_size=bs, keep_budget=rate, keep_stats=stats)
        diff = float((model.encode(sentences, batch_size=bs, keep_budget=rate, prune=True) - masked).abs().max())
        times = interleaved(fns, args.reps, args.warmup)
        speed = {name: len(sentences) / med(t) for name, t in times.items()}
        kept = stats.compute()["keep_rate"]
        result["rates"][rate] = {"times_s": times, "sentences_per_s": speed, "kept": kept, "max_abs_diff": diff}
        rows.append([rate, f"{kept:.3f}", *(f"{speed[n]:.1f} ({spread(times[n])} s)" for n in fns),
                     f"{speed['pruned'] / speed['masked']:.3f}", f"{speed['pruned'] / speed['backbone']:.3f}",
                     f"{diff:.1e}"])
        ok = speed["pruned"] / speed["masked"] >= TARGET or rate > 0.8
        lines.append(f"r={rate}: kept {kept:.3f} of decided tokens; pruned/masked "
                     f"{speed['pruned'] / speed['masked']:.3f}x, pruned/backbone-only "
                     f"{speed['pruned'] / speed['backbone']:.3f}x; same embeddings (max |diff| {diff:.1e})"
                     + (f"; target >= {TARGET}x at r <= 0.8: {verdict(ok)}" if rate <= 0.8 else ""))
    print()
    print_table(["r", "kept", "masked sent/s", "pruned sent/s", "backbone sent/s", "pruned/masked",
                 "pruned/backbone", "max |diff|"], rows)
    return report(result, lines, args.json)


if __name__ == "__main__":
    main()
