"""Encoding and decoding speed of GLAE (bf16 and float32) against mean pooling on the same backbone and MiniLM.

The encoders run the same held-out texts with the same batch size:

- ``glae``: the GLAE default as shipped: the prompt prefix's key/value cache computed once (``prefix_caching``) and
  ``inference_dtype="auto"`` (bfloat16 autocast on CPUs with AVX512-BF16/AMX and on bf16 GPUs, else float32);
- ``glae-fp32``: the same model computing in float32 (``inference_dtype="float32"``);
- ``glae-uncached``: float32, recomputing the prompt prefix for every text (``model[0].prefix_caching = False``);
- ``mean-pooling``: sentence-transformers ``Transformer`` + mean ``Pooling`` on the same SmolLM2 backbone (float32);
- ``minilm``: all-MiniLM-L6-v2 in float32, as its users run it.

``--decode`` also times greedy decoding of the short texts' embeddings with ``glae`` and ``glae-fp32`` (texts/s), and
``--quality`` scores both dtypes on full STS-B test (Spearman x100 of cosine) and on the decode token F1 of those
texts, so that the price of bf16 is measured in the same run.

Short texts are news sentences of about 15 backbone tokens, long ones the first 200 tokens of news articles. Each
measurement runs in a fresh process: after untimed warm-up passes, ``model.encode`` over all texts is timed
``--repeats`` times (median reported), and the process's peak resident memory (max RSS, model included) is recorded.

Writes ``<output-dir>/throughput.json``. Example (from the repository root)::

    python -m benchmarks.throughput --limit 64 --repeats 3
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from sentence_transformers import SentenceTransformer
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

import glae_st
from benchmarks.common import (
    GLAE,
    command_line,
    lee_articles,
    load_glae,
    machine_info,
    mean_pooling_model,
    minilm_folder,
    peak_rss_mb,
    results_dir,
    smollm2_folder,
    write_json,
)
from glae_st import corpora
from glae_st.corpora import split_sentences
from glae_st.evaluation import token_f1
from glae_st.util import GREEDY_DECODING

METHODS = ("glae", "glae-fp32", "glae-uncached", "mean-pooling", "minilm")
BASELINE = "mean-pooling"
REFERENCE = "minilm"
DECODERS = ("glae", "glae-fp32")
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
    elif method == REFERENCE:
        model = SentenceTransformer(str(minilm_folder()), device=device)
    else:
        model = load_glae(GLAE, device)
        model[0].prefix_caching = method != "glae-uncached"
        model[0].inference_dtype = "auto" if method == "glae" else "float32"
    model.max_seq_length = MAX_SEQ_LENGTH if method != REFERENCE else min(MAX_SEQ_LENGTH, model.max_seq_length)
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


def measure_decode(
    model: SentenceTransformer, texts: Sequence[str], batch_size: int = 32, repeats: int = 3, max_new_tokens: int = 48
) -> dict[str, Any]:
    """Time greedy ``glae_st.decode`` of the embeddings of ``texts`` (after one untimed pass) and score its output."""
    embeddings = model.encode(list(texts), batch_size=batch_size)
    decoded = glae_st.decode(model, embeddings, max_new_tokens=max_new_tokens, batch_size=batch_size, **GREEDY_DECODING)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        glae_st.decode(model, embeddings, max_new_tokens=max_new_tokens, batch_size=batch_size, **GREEDY_DECODING)
        seconds.append(time.perf_counter() - start)
    return {
        "texts": len(texts),
        "seconds": seconds,
        "texts_per_second": len(texts) / statistics.median(seconds),
        "token_f1": float(np.mean([token_f1(p, r) for p, r in zip(decoded, texts)])),
        "exact_match": float(np.mean([p == r for p, r in zip(decoded, texts)])),
    }


def stsb_test_spearman(model: SentenceTransformer, batch_size: int = 32) -> float:
    """Spearman x100 of cosine on the full STS-B test set (1,379 pairs)."""
    rows = corpora.stsb("test")
    first = model.encode([a for a, _, _ in rows], batch_size=batch_size, convert_to_tensor=True)
    second = model.encode([b for _, b, _ in rows], batch_size=batch_size, convert_to_tensor=True)
    cosines = torch.nn.functional.cosine_similarity(first, second).numpy()
    return 100 * float(spearmanr(cosines, [score for _, _, score in rows]).statistic)


def _measure_method(
    method: str, texts: list[str], batch_size: int, repeats: int, warmup: int, task: str
) -> dict[str, Any]:
    """Child-process body: load one encoder, measure it (``task``: encode, decode or quality), add peak memory."""
    model = load_encoder(method)
    if task == "encode":
        result = measure(model, texts, batch_size, repeats, warmup)
    elif task == "decode":
        result = measure_decode(model, texts, batch_size, repeats)
    else:
        result = {"stsb_test_spearman": stsb_test_spearman(model, batch_size)}
    return {
        **result,
        "compute_dtype": str(model[0].compute_dtype()) if method in DECODERS else "torch.float32",
        "peak_rss_mb": peak_rss_mb(),
    }


def run(
    jobs: Sequence[tuple[str, str, str]],
    texts_by_length: dict[str, list[str]],
    batch_size: int,
    repeats: int,
    warmup: int,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Run each ``(task, length, method)`` job in a fresh process; add speed ratios against the baselines.

    Returns:
        ``{"encode/short": {method: measurement}, "decode/short": ..., "quality": ...}``; an encode measurement has
        ``speedup_vs_mean_pooling``, ``speedup_vs_minilm`` and ``speedup_vs_glae_fp32`` when those ran.
    """
    context = multiprocessing.get_context("spawn")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for task, length, method in tqdm(jobs, desc="Throughput"):
        with context.Pool(1) as pool:
            arguments = (method, texts_by_length[length], batch_size, repeats, warmup, task)
            measurement = pool.apply(_measure_method, arguments)
        results.setdefault(task if task == "quality" else f"{task}/{length}", {})[method] = measurement
    for key, by_method in results.items():
        rate = "sentences_per_second" if key.startswith("encode") else "texts_per_second"
        for reference, name in ((BASELINE, "mean_pooling"), (REFERENCE, "minilm"), ("glae-fp32", "glae_fp32")):
            if key != "quality" and reference in by_method:
                for measurement in by_method.values():
                    measurement[f"speedup_vs_{name}"] = measurement[rate] / by_method[reference][rate]
    return results


def format_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Markdown tables: texts/s and the speed ratios per task, length and method; then the quality of both dtypes."""
    lines = [
        "| task | texts | method | compute | n | texts/s | vs glae-fp32 | vs mean pooling | vs MiniLM | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ratio(measurement: dict[str, Any], name: str) -> str:
        return f"{measurement[name]:.2f}x" if name in measurement else "-"

    for key, by_method in results.items():
        if key == "quality":
            continue
        task, length = key.split("/")
        for method, m in by_method.items():
            rate = m.get("sentences_per_second", m.get("texts_per_second"))
            lines.append(
                f"| {task} | {length} (~{LENGTHS[length]} tokens) | {method} | {m['compute_dtype'].removeprefix('torch.')} "
                f"| {m['texts']} | {rate:.1f} | {ratio(m, 'speedup_vs_glae_fp32')} | "
                f"{ratio(m, 'speedup_vs_mean_pooling')} | {ratio(m, 'speedup_vs_minilm')} | {m['peak_rss_mb']:.0f} |"
            )
    decoded = {m: r for key, by_method in results.items() if key.startswith("decode") for m, r in by_method.items()}
    if "quality" in results or decoded:
        lines += [
            "",
            "| method | compute | STS-B test Spearman | decode token F1 | decode exact match |",
            "|---|---|---|---|---|",
        ]
        for method in DECODERS:
            quality, decode = results.get("quality", {}).get(method, {}), decoded.get(method, {})
            if quality or decode:
                spearman = f"{quality['stsb_test_spearman']:.2f}" if quality else "-"
                f1 = f"{100 * decode['token_f1']:.1f}" if decode else "-"
                exact = f"{100 * decode['exact_match']:.1f} %" if decode else "-"
                dtype = (quality or decode)["compute_dtype"].removeprefix("torch.")
                lines.append(f"| {method} | {dtype} | {spearman} | {f1} | {exact} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help=f"Texts per length (default {DEFAULT_TEXTS}).")
    parser.add_argument("--lengths", nargs="+", choices=list(LENGTHS), default=list(LENGTHS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="Untimed passes over the texts first.")
    parser.add_argument("--decode", action="store_true", help="Also time greedy decoding of the short texts.")
    parser.add_argument("--quality", action="store_true", help="Also score bf16 and float32 on STS-B test.")
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
    jobs = [("encode", length, method) for length in args.lengths for method in args.methods]
    decoders = [method for method in DECODERS if method in args.methods]
    if args.decode and "short" in texts:
        jobs += [("decode", "short", method) for method in decoders]
    if args.quality:
        jobs += [("quality", args.lengths[0], method) for method in decoders]
    results = run(jobs, texts, args.batch_size, args.repeats, args.warmup)
    summary = {
        "command": command_line(__file__, argv),
        "config": {
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "target_tokens": LENGTHS,
            "decode": args.decode,
            "quality": args.quality,
        },
        "results": results,
        "machine": machine_info(),
    }
    write_json(output_dir / "throughput.json", summary)
    print(format_table(results))
    return summary


if __name__ == "__main__":
    main()
