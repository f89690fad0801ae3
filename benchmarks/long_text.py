"""Long texts with GLAE (paper section 5): memory of iterative embedding, and bounded-context language modelling.

**Memory.** One held-out text of N tokens (Lee news articles joined, N up to 100,000) is embedded by the GLAE
default with ``long_text="iterative"`` (chunks of ``--chunk`` tokens, paper Fig. 3), each N in a fresh
process; the process's peak resident memory and the time are recorded. For contrast, the same text is read in one
pass (``long_text="truncate"`` with ``max_seq_length = N``) while it fits in the backbone's context.

**Bounded context vs truncation.** For held-out articles, the model predicts the next ``--continuation`` tokens
after a prefix of ``--prefix`` tokens, seeing (teacher forcing, per-token NLL and perplexity of the true tokens):

- ``full``: the whole prefix (plain LM, unbounded context; the reference);
- ``truncate``: only the last ``--window`` tokens (plain LM with a fixed context);
- ``glae-memory``: the last ``--window`` tokens after the GLAE embedding of everything before them in the decode
  prompt's slot, the context that :func:`glae_st.generate_long` keeps (paper Fig. 2).

Writes ``<output-dir>/long_text.json`` and ``long_text_memory.png``. Example (from the repository root)::

    python benchmarks/long_text.py --limit 16
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    GLAE,
    command_line,
    lee_articles,
    load_glae,
    machine_info,
    peak_rss_mb,
    results_dir,
    smollm2_folder,
    write_json,
)
from glae_st.long_text import BoundedContext, compress_context, context_embeds
from glae_st.module import GLAEEmbedding

MEMORY_LENGTHS = (64, 1_000, 10_000, 100_000)
"""Text lengths (backbone tokens) of the memory measurement."""
CONTEXTS = ("full", "truncate", "glae-memory")
DEFAULT_ARTICLES = 64


def long_token_ids(tokenizer: PreTrainedTokenizerBase, n_tokens: int) -> list[int]:
    """The first ``n_tokens`` tokens of the held-out Lee articles joined (repeated when they run out)."""
    ids: list[int] = []
    articles = lee_articles()
    while len(ids) < n_tokens:
        for article in articles:
            ids += tokenizer(article + "\n", add_special_tokens=False)["input_ids"]
            if len(ids) >= n_tokens:
                break
    return ids[:n_tokens]


def _embed_once(token_ids: list[int], mode: str, chunk: int) -> dict[str, Any]:
    """Child-process body: load the default, embed one text of ``token_ids`` in ``mode``, report time and memory."""
    module: GLAEEmbedding = load_glae(GLAE)[0]
    module.eval()
    module.max_seq_length = len(token_ids) if mode == "single-pass" else chunk
    loaded_rss = peak_rss_mb()
    start = time.perf_counter()
    with torch.inference_mode():
        embedding = module.embed_token_ids([token_ids], iterative=mode == "iterative") if mode != "load-only" else None
    seconds = time.perf_counter() - start
    return {
        "tokens": len(token_ids),
        "mode": mode,
        "chunk": module.max_seq_length if mode == "iterative" else len(token_ids),
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_after_load_mb": loaded_rss,
        "finite": bool(embedding is None or torch.isfinite(embedding).all()),
    }


def memory_run(
    tokenizer: PreTrainedTokenizerBase, lengths: Sequence[int], max_single_pass: int, chunk: int
) -> list[dict[str, Any]]:
    """Peak memory and time of iterative and single-pass embedding for each length, each in a fresh process."""
    text = long_token_ids(tokenizer, max(lengths))
    jobs = [(64, "load-only")] + [(n, "iterative") for n in lengths]
    jobs += [(n, "single-pass") for n in lengths if n <= max_single_pass]
    context = multiprocessing.get_context("spawn")
    results = []
    for n_tokens, mode in tqdm(jobs, desc="Long-text memory"):
        with context.Pool(1) as pool:
            results.append(pool.apply(_embed_once, (text[:n_tokens], mode, chunk)))
    return results


def continuation_nll(
    module: GLAEEmbedding, contexts: Sequence[BoundedContext], targets: Sequence[list[int]]
) -> list[float]:
    """Mean NLL per token of each target continuation after its context (teacher forcing, one text at a time)."""
    embed_tokens = module.causal_lm.get_input_embeddings()
    losses = []
    for context, target in zip(contexts, targets):
        prompt, _ = context_embeds(module, [context])
        target_ids = torch.tensor(target, device=module.device)
        inputs = torch.cat([prompt[0], embed_tokens(target_ids)])[None]
        logits = module.causal_lm(inputs_embeds=inputs).logits[0, prompt.shape[1] - 1 : -1]
        losses.append(torch.nn.functional.cross_entropy(logits.float(), target_ids).item())
    return losses


def quality_run(
    module: GLAEEmbedding,
    tokenizer: PreTrainedTokenizerBase,
    n_articles: int,
    prefix: int,
    window: int,
    continuation: int,
) -> dict[str, Any]:
    """Per-token NLL and perplexity of the true continuation under the three contexts of :data:`CONTEXTS`."""
    documents = []
    for article in lee_articles():
        ids = tokenizer(article, add_special_tokens=False)["input_ids"]
        if len(ids) >= prefix + continuation:
            documents.append((ids[:prefix], ids[prefix : prefix + continuation]))
        if len(documents) == n_articles:
            break
    prefixes, targets = [p for p, _ in documents], [t for _, t in documents]
    contexts = {
        "full": [BoundedContext(None, p) for p in prefixes],
        "truncate": [BoundedContext(None, p[-window:]) for p in prefixes],
    }
    module.eval()
    results: dict[str, Any] = {}
    with torch.inference_mode():
        contexts["glae-memory"] = compress_context(module, prefixes, window)
        for name in tqdm(CONTEXTS, desc="Continuation NLL"):
            losses = continuation_nll(module, contexts[name], targets)
            mean = sum(losses) / len(losses)
            results[name] = {"nll": mean, "perplexity": math.exp(mean), "context_tokens": len(contexts[name][0].window)}
    return {"articles": len(documents), "results": results}


def plot_memory(results: Sequence[dict[str, Any]], path: Path) -> None:
    """Peak memory above the loaded model against text length, iterative vs single pass (log x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = next(r["peak_rss_mb"] for r in results if r["mode"] == "load-only")
    figure, axis = plt.subplots(figsize=(6, 4))
    for mode in ("iterative", "single-pass"):
        rows = [r for r in results if r["mode"] == mode]
        axis.plot([r["tokens"] for r in rows], [r["peak_rss_mb"] - loaded for r in rows], marker="o", label=mode)
    axis.set_xscale("log")
    axis.set_xlabel("text length (tokens)")
    axis.set_ylabel("peak memory above the loaded model (MiB)")
    axis.set_title("GLAE embedding of one long text")
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def format_tables(summary: dict[str, Any]) -> str:
    """Markdown tables of both measurements."""
    lines = [
        "| tokens | mode | chunk | seconds | peak RSS (MiB) | above loaded model (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    memory = summary["memory"]
    loaded = next(r["peak_rss_mb"] for r in memory if r["mode"] == "load-only")
    for r in memory:
        if r["mode"] != "load-only":
            lines.append(
                f"| {r['tokens']:,} | {r['mode']} | {r['chunk']} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | "
                f"{r['peak_rss_mb'] - loaded:.0f} |"
            )
    quality = summary["quality"]
    lines += ["", "| context | text tokens seen | continuation NLL/token | perplexity |", "|---|---|---|---|"]
    for name, r in quality["results"].items():
        seen = r["context_tokens"] if name != "glae-memory" else f"{r['context_tokens']} + 1 vector"
        lines.append(f"| {name} | {seen} | {r['nll']:.3f} | {r['perplexity']:.1f} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help=f"Articles in the quality measurement (default {DEFAULT_ARTICLES}).")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(MEMORY_LENGTHS))
    parser.add_argument("--max-single-pass", type=int, default=8_000, help="Longest text also read in one pass.")
    parser.add_argument("--chunk", type=int, default=256, help="Chunk size of the memory measurement's iterative runs.")
    parser.add_argument("--prefix", type=int, default=256, help="Prefix tokens before the continuation.")
    parser.add_argument("--window", type=int, default=64, help="Recent tokens kept verbatim.")
    parser.add_argument("--continuation", type=int, default=32, help="Continuation tokens scored.")
    parser.add_argument("--output-dir", type=Path, help="Default: benchmarks/results/long_text (limit-N with --limit).")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the command line; return what is also written to ``<output-dir>/long_text.json``."""
    args = parse_args(argv)
    if args.window >= args.prefix:
        raise ValueError(f"--window ({args.window}) must be shorter than --prefix ({args.prefix}).")
    output_dir = args.output_dir or results_dir(args.limit) / "long_text"
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder())
    memory = memory_run(tokenizer, args.lengths, args.max_single_pass, args.chunk)
    module = load_glae(GLAE)[0]
    quality = quality_run(
        module, tokenizer, args.limit or DEFAULT_ARTICLES, args.prefix, args.window, args.continuation
    )
    summary = {
        "command": command_line(__file__, argv),
        "config": {
            "memory_chunk": args.chunk,
            "prefix": args.prefix,
            "window": args.window,
            "continuation": args.continuation,
            "quality_chunk": module.max_seq_length,
        },
        "memory": memory,
        "quality": quality,
        "machine": machine_info(),
    }
    write_json(output_dir / "long_text.json", summary)
    plot_memory(memory, output_dir / "long_text_memory.png")
    print(format_tables(summary))
    return summary


if __name__ == "__main__":
    main()
