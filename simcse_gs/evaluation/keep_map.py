"""Keep maps: which tokens the proxy of a GS checkpoint keeps, as data, a PNG heatmap, and an HTML page.

    from simcse_gs.evaluation.keep_map import load_gs_model, compute_keep_maps, write_keep_maps
    model = load_gs_model("outputs/unsup-gs")
    maps = compute_keep_maps(model, ["A man plays a guitar.", "Stocks fell sharply on Monday."])
    maps[0].tokens, maps[0].keep_prob, maps[0].kept      # per token: the piece, p, kept under the inference rule
    write_keep_maps(maps, "keep_map/")                   # keep_map.png, keep_map.html, keep_map.json

The probability is the proxy's deterministic keep probability p = softmax(logits)[keep] with the forced values
(special tokens 1 unless ``gs_drop_special_tokens``); ``kept`` is the inference rule (p >= 0.5, else the most
probable token), i.e. exactly what :meth:`SimCSEGSModel.encode` uses. ``decided`` marks the tokens the proxy
decides (the others are forced).
"""

from __future__ import annotations

import argparse
import html
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..cli import RUN_FAILURE, USAGE_ERROR, fail
from ..model import SimCSEGSModel
from ..model_folder import inspect_model, load_checkpoint, max_input_length

CMAP = "RdYlGn"  # red = dropped-leaning (p near 0), green = kept-leaning (p near 1)


@dataclass
class KeepMap:
    """One sentence: its tokens (as the tokenizer splits it, special tokens included) and what the proxy does."""

    sentence: str
    tokens: list[str]
    keep_prob: list[float]
    kept: list[bool]
    decided: list[bool]

    @property
    def keep_rate(self) -> float:
        """Fraction of decided tokens kept by the inference rule (nan if none is decided)."""
        n = sum(self.decided)
        return sum(k for k, d in zip(self.kept, self.decided) if d) / n if n else float("nan")


def _not_gs_message(name: str) -> str:
    return (f"{name} is not a Gumbel-Softmax checkpoint (use_gs=false): it has no token-keep proxy, so there is "
            "no keep map to draw (plain SimCSE and the random-drop control keep every token at inference). "
            "Train with --use_gs true.")


def check_gs_model(model: SimCSEGSModel, name: str = "this model") -> None:
    if not getattr(model.config, "use_gs", False) or getattr(model, "proxy", None) is None:
        raise ValueError(_not_gs_message(name))


def load_gs_model(model_name_or_path: str | os.PathLike, device: str | None = None) -> SimCSEGSModel:
    """Load a GS checkpoint folder, refusing anything else with a clear message."""
    folder = inspect_model(model_name_or_path, expect="simcse_gs",
                           hint="Keep maps need a model trained by train.py with --use_gs true.")
    if not folder.use_gs:
        raise ValueError(_not_gs_message(str(model_name_or_path)))
    return load_checkpoint(model_name_or_path, device=device)


def _display(tokenizer, token: str) -> str:
    text = tokenizer.convert_tokens_to_string([token]).strip()
    return text or token


@torch.inference_mode()
def compute_keep_maps(
    model: SimCSEGSModel, sentences: Sequence[str], batch_size: int = 32, max_length: int | None = None,
    keep_budget: float | None = None,
) -> list[KeepMap]:
    """Per-sentence tokens and keep probabilities under the proxy, in input order (the model is left as found).

    ``kept`` follows the model's inference rule, or with ``keep_budget`` r the ``ceil(r * n)`` best decided tokens.
    """
    check_gs_model(model)
    budget = model.check_inference_options(keep_budget)
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ValueError("This model has no tokenizer attached: load it with from_pretrained(checkpoint_dir).")
    was_training = model.training
    model.eval()
    limit = max_input_length(tokenizer, model.backbone.config)
    device = next(model.parameters()).device
    maps: list[KeepMap] = []
    try:
        for start in range(0, len(sentences), batch_size):
            chunk = list(sentences[start : start + batch_size])
            batch = tokenizer(chunk, truncation=True, max_length=max_length or limit, padding=True,
                              return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            types = {"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}
            _, prob, keep, decided = model.score_tokens(batch["input_ids"], batch["attention_mask"], budget, **types)
            for i, sentence in enumerate(chunk):
                real = batch["attention_mask"][i].bool()
                ids = batch["input_ids"][i][real].tolist()
                maps.append(KeepMap(
                    sentence=sentence,
                    tokens=[_display(tokenizer, t) for t in tokenizer.convert_ids_to_tokens(ids)],
                    keep_prob=[round(float(p), 6) for p in prob[i][real].float().cpu()],
                    kept=[bool(k) for k in keep[i][real].cpu()],
                    decided=[bool(d) for d in decided[i][real].cpu()],
                ))  # fmt: skip
    finally:
        model.train(was_training)
    return maps


def render_png(maps: Sequence[KeepMap], path: str | os.PathLike, title: str = "keep map") -> None:
    """Heatmap, one row per sentence and one cell per token: colour = p; dashed box + italics = dropped by the
    inference rule; grey cell = forced (not decided by the proxy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if not maps:
        raise ValueError("No sentences to draw.")
    width = max(len(m.tokens) for m in maps)
    grid = torch.full((len(maps), width), float("nan"))
    for r, m in enumerate(maps):
        for c, (p, d) in enumerate(zip(m.keep_prob, m.decided)):
            if d:
                grid[r, c] = p
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * width + 2), 0.9 * len(maps) + 1.4))
    cmap = matplotlib.colormaps[CMAP].with_extremes(bad="#dddddd")
    image = ax.imshow(grid.numpy(), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for r, m in enumerate(maps):
        for c, (token, p, kept, decided) in enumerate(zip(m.tokens, m.keep_prob, m.kept, m.decided)):
            label = token if len(token) <= 12 else token[:11] + "…"
            ax.text(c, r - 0.12, label, ha="center", va="center", rotation=90 if len(label) > 3 else 0,
                    fontsize=7, fontstyle="normal" if kept else "italic", color="black" if kept else "#444444")
            if decided:
                ax.text(c, r + 0.36, f"{p:.2f}", ha="center", va="center", fontsize=5, color="#222222")
            if not kept:
                ax.add_patch(Rectangle((c - 0.45, r - 0.45), 0.9, 0.9, fill=False, linestyle="--", linewidth=0.8))
    ax.set_yticks(range(len(maps)), [f"{i}: keep {m.keep_rate:.0%}" for i, m in enumerate(maps)], fontsize=7)
    ax.set_xticks([])
    ax.set_title(f"{title}  (colour: keep probability p; dashed/italic: dropped; grey: forced)", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01, label="p (keep)")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _colour(p: float) -> str:
    import matplotlib

    return matplotlib.colors.to_hex(matplotlib.colormaps[CMAP](p))


def render_html(maps: Sequence[KeepMap], path: str | os.PathLike, title: str = "keep map") -> None:
    """A self-contained page (inline CSS, no scripts, everything escaped): tokens coloured by p, dropped tokens
    struck through, forced tokens grey; hover a token for its probability."""
    rows = []
    for i, m in enumerate(maps):
        spans = []
        for token, p, kept, decided in zip(m.tokens, m.keep_prob, m.kept, m.decided):
            state = ("kept" if kept else "dropped") + ("" if decided else ", forced")
            cls = ("k" if kept else "d") + ("" if decided else " f")
            style = f' style="background:{_colour(p)}"' if decided else ""
            tip = html.escape(f"p={p:.3f} {state}", quote=True)
            spans.append(f'<span class="{cls}"{style} title="{tip}">{html.escape(token)}</span>')
        rows.append(
            f'<div class="s"><div class="meta">{i}: keep rate {m.keep_rate:.0%} &middot; '
            f'{html.escape(m.sentence)}</div><div class="t">{" ".join(spans)}</div></div>'
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
.s {{ margin-bottom: 1em; }} .meta {{ color: #555; font-size: 0.85em; margin-bottom: 0.2em; }}
.t span {{ display: inline-block; padding: 0.1em 0.3em; margin: 0.1em 0; border-radius: 3px; font-family: monospace; }}
.d {{ text-decoration: line-through; font-style: italic; outline: 1px dashed #333; }}
.f {{ background: #dddddd; color: #666; }}
.legend span {{ display: inline-block; width: 3em; text-align: center; font-size: 0.8em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Background: the proxy's keep probability p (red 0, yellow 0.5, green 1). Struck through: dropped by the inference
rule (p &lt; 0.5, or outside the keep budget's best ceil(r n) tokens). Grey: forced (special tokens), not decided by
the proxy. Hover a token for p.</p>
<p class="legend">{"".join(f'<span style="background:{_colour(v / 4)}">{v / 4:.2f}</span>' for v in range(5))}</p>
{"".join(rows)}
</body></html>
"""
    Path(path).write_text(page, encoding="utf-8")


def write_keep_maps(maps: Sequence[KeepMap], output_dir: str | os.PathLike, title: str = "keep map",
                    max_png_sentences: int = 50) -> dict[str, str]:
    """``keep_map.json`` (the data), ``keep_map.html`` (all sentences), ``keep_map.png`` (the first
    ``max_png_sentences``); returns their paths."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: str(out / f"keep_map.{kind}") for kind in ("json", "html", "png")}
    Path(paths["json"]).write_text(json.dumps([asdict(m) for m in maps], indent=1, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    render_html(maps, paths["html"], title)
    render_png(maps[:max_png_sentences], paths["png"], title)
    return paths


# ---------------------------------------------------------------------------------------------- command

PROG = "keep_map.py"
CLI_DOC = """Render which tokens a GS checkpoint's proxy keeps: a PNG heatmap, an HTML page, and the data as JSON.

    python scripts/keep_map.py --model_name_or_path outputs/unsup-gs \
        --sentences "A man is playing a guitar." data/some_sentences.txt --output_dir keep_map

Each --sentences value is a text file (one sentence per line) if such a file exists, else a sentence.
"""


def read_sentences(values: list[str], limit: int | None = None) -> list[str]:
    sentences: list[str] = []
    for value in values:
        if os.path.isfile(value):
            with open(value, encoding="utf-8") as f:
                sentences.extend(line.strip() for line in f if line.strip())
        else:
            sentences.append(value)
    return sentences[:limit] if limit else sentences


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """``scripts/keep_map.py``: PNG, HTML and JSON keep maps of a GS checkpoint (exit codes: simcse_gs.cli)."""
    parser = argparse.ArgumentParser(prog=prog, description=CLI_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True, help="A GS checkpoint folder written by train.py.")
    parser.add_argument("--sentences", nargs="+", required=True, help="Sentence(s) and/or text file(s).")
    parser.add_argument("--output_dir", default="keep_map", help="Where keep_map.{png,html,json} go.")
    parser.add_argument("--max_sentences", type=int, default=None, help="Use only the first N sentences.")
    parser.add_argument("--max_png_sentences", type=int, default=50, help="Rows in the PNG (the HTML has all).")
    parser.add_argument("--max_length", type=int, default=None, help="Truncate longer sentences (tokens).")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--keep_budget", type=float, default=None,
                        help="Keep the ceil(r * n) best tokens of every sentence instead of the rule p >= 0.5.")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: where the model loads, CPU).")
    args = parser.parse_args(argv)

    try:
        sentences = read_sentences(args.sentences, args.max_sentences)
        if not sentences:
            raise ValueError("--sentences gave no sentence (empty file?).")
        model = load_gs_model(args.model_name_or_path, args.device)
    except (ValueError, OSError) as err:  # no sentence, unreadable file, not a (sound) GS checkpoint
        return fail(prog, err, USAGE_ERROR)
    try:
        maps = compute_keep_maps(model, sentences, args.batch_size, args.max_length, args.keep_budget)
    except ValueError as err:  # a keep budget out of range
        return fail(prog, err, USAGE_ERROR)
    try:
        paths = write_keep_maps(maps, args.output_dir, title=f"keep map: {args.model_name_or_path}",
                                max_png_sentences=args.max_png_sentences)
    except OSError as err:
        return fail(prog, err, RUN_FAILURE)
    decided = sum(sum(m.decided) for m in maps)
    kept = sum(sum(k and d for k, d in zip(m.kept, m.decided)) for m in maps)
    print(f"{len(maps)} sentences, {decided} decided tokens, {kept / max(decided, 1):.1%} kept by the inference rule")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def console() -> int:
    """The ``simcse-gs-keep-map`` console command: :func:`main` under that name."""
    return main(prog="simcse-gs-keep-map")
