"""Encoding speed of GLAE against plain mean pooling on the same backbone, for short and long texts.

Three encoders run the same held-out texts with the same batch size:

- ``glae``: the GLAE default as shipped, with the key/value cache of its prompt prefix computed once (``prefix_caching``);
- ``glae-uncached``: the same model recomputing the prompt prefix for every text (``model[0].prefix_caching = False``);
- ``mean-pooling``: sentence-transformers ``Transformer`` + mean ``Pooling`` on the same SmolLM2 backbone.

Short texts are news sentences of about 15 backbone tokens, long ones the first 200 tokens of news articles. Each
measurement runs in a fresh process: after untimed warm-up passes, ``model.encode`` over all texts is timed
``--repeats`` times (median reported), and the process's peak resident memory (max RSS, model included) is recorded.

Writes ``<output-dir>/throughput.json``. Example (from the repository root)::

    python benchmarks/throughput.py --limit 64 --repeats 3
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentence_transformers import SentenceTransformer
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from glae_st.corpora import split_sentences

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    GLAE,
    command_line,
    lee_articles,
    load_glae,
    machine_info,
    mean_pooling_model,
    peak_rss_mb,
    results_dir,
    smollm2_folder,
    write_json,
)

METHODS = ("glae", "glae-uncached", "mean-pooling")
BASELINE = "mean-pooling"
LENGTHS = {"short": 15, "long": 200}
"""Target text lengths in backbone tokens."""
MAX_SEQ_LENGTH = 256
"""Token limit set on every encoder, above the longest text, so that all of them read every token (the shipped GLAE
model may truncate earlier)."""
SHORT_TOLERANCE = 3
"""Short texts are sentences within this many tokens of the short target."""
DEFAULT_TEXTS = 128


def benchmark_texts(
    tokenizer: PreTrainedTokenizerBase, length: str, n_texts: int, articles: Sequence[str] | None = None, seed: int = 0
) -> list[str]:
    """Up to ``n_texts`` held-out texts of about ``LENGTHS[length]`` tokens (Lee news corpus by default).

    ``"short"``: whole sentences within :data:`SHORT_TOLERANCE` tokens of the target; ``"long"``: the first
    ``LENGTHS["long"]`` tokens of each article that has that many.
    """
    articles = lee_articles() if articles is None else articles
    target = LENGTHS[length]
    if length == "short":
        sentences = dict.fromkeys(sentence for article in articles for sentence in split_sentences(article))
        texts = [
            s
            for s in sentences
            if abs(len(tokenizer(s, add_special_tokens=False)["input_ids"]) - target) <= SHORT_TOLERANCE
        ]
    else:
        token_ids = [tokenizer(article, add_special_tokens=False)["input_ids"] for article in articles]
        texts = [tokenizer.decode(ids[:target]) for ids in token_ids if len(ids) >= target]
    return random.Random(seed).sample(texts, min(n_texts, len(texts)))


def load_encoder(method: str, device: str | None = None) -> SentenceTransformer:
    """The SentenceTransformer of one of :data:`METHODS`, reading up to :data:`MAX_SEQ_LENGTH` tokens per text."""
    if method == BASELINE:
        model = mean_pooling_model(device)
    else:
        model = load_glae(GLAE, device)
        model[0].prefix_caching = method == "glae"
    model.max_seq_length = MAX_SEQ_LENGTH
    return model


def measure(
    model: SentenceTransformer, texts: Sequence[str], batch_size: int = 32, repeats: int = 3, warmup: int = 1
) -> dict[str, Any]:
    """Time ``model.encode`` over all texts ``repeats`` times, after ``warmup`` untimed passes over the same texts.

    The warm-up passes see every batch shape that is timed, so one-time costs (kernel selection, allocations, the
    GLAE prefix cache) stay out of the timings.

    Returns:
        ``{"texts", "seconds": [per repeat], "sentences_per_second": texts / median seconds}``.
    """
    texts = list(texts)
    for _ in range(warmup):
        model.encode(texts, batch_size=batch_size)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.encode(texts, batch_size=batch_size)
        seconds.append(time.perf_counter() - start)
    return {"texts": len(texts), "seconds": seconds, "sentences_per_second": len(texts) / statistics.median(seconds)}


def _measure_method(method: str, texts: list[str], batch_size: int, repeats: int, warmup: int) -> dict[str, Any]:
    """Child-process body: load one encoder, measure it, and add the process's peak memory."""
    result = measure(load_encoder(method), texts, batch_size, repeats, warmup)
    return {**result, "peak_rss_mb": peak_rss_mb()}


def run(
    texts_by_length: dict[str, list[str]], methods: Sequence[str], batch_size: int, repeats: int, warmup: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """Measure every method on every text set, each in a fresh process; add speed ratios against the baseline.

    Returns:
        ``{length: {method: measurement}}``; a measurement has ``speedup_vs_mean_pooling`` when the baseline ran.
    """
    context = multiprocessing.get_context("spawn")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    jobs = [(length, method) for length in texts_by_length for method in methods]
    for length, method in tqdm(jobs, desc="Throughput"):
        with context.Pool(1) as pool:
            measurement = pool.apply(_measure_method, (method, texts_by_length[length], batch_size, repeats, warmup))
        results.setdefault(length, {})[method] = measurement
    for by_method in results.values():
        if BASELINE in by_method:
            for measurement in by_method.values():
                measurement["speedup_vs_mean_pooling"] = (
                    measurement["sentences_per_second"] / by_method[BASELINE]["sentences_per_second"]
                )
    return results


def format_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """A Markdown table: sentences/s, speed relative to mean pooling and peak memory per length and method."""
    lines = [
        "| texts | method | n | sentences/s | vs mean pooling | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for length, by_method in results.items():
        for method, m in by_method.items():
            ratio = f"{m['speedup_vs_mean_pooling']:.2f}x" if "speedup_vs_mean_pooling" in m else "-"
            lines.append(
                f"| {length} (~{LENGTHS[length]} tokens) | {method} | {m['texts']} | {m['sentences_per_second']:.1f} | "
                f"{ratio} | {m['peak_rss_mb']:.0f} |"
            )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help=f"Texts per length (default {DEFAULT_TEXTS}).")
    parser.add_argument("--lengths", nargs="+", choices=list(LENGTHS), default=list(LENGTHS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="Untimed passes over the texts first.")
    parser.add_argument(
        "--output-dir", type=Path, help="Default: benchmarks/results/throughput (.../limit-N/throughput with --limit)."
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the command line; return what is also written to ``<output-dir>/throughput.json``."""
    args = parse_args(argv)
    output_dir = args.output_dir or results_dir(args.limit) / "throughput"
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder())
    texts = {length: benchmark_texts(tokenizer, length, args.limit or DEFAULT_TEXTS) for length in args.lengths}
    results = run(texts, args.methods, args.batch_size, args.repeats, args.warmup)
    summary = {
        "command": command_line(__file__, argv),
        "config": {
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "target_tokens": LENGTHS,
        },
        "results": results,
        "machine": machine_info(),
    }
    write_json(output_dir / "throughput.json", summary)
    print(format_table(results))
    return summary


if __name__ == "__main__":
    main()
