"""How sure a difference between two long-text modes is: a paired bootstrap over the queries of
``benchmarks.long_documents``.

Each task's queries are resampled with replacement (10,000 times, seeded). Each time, the difference of the two modes'
mean nDCG@10 is taken per task, then averaged over the kinds of query (the start tasks count once, as in the
selection rule). That gives the point difference and a 95 % interval (x100) for the mean over kinds and for each
task alone. Only the chunk passes run (no iterative mode). Writes
``<output-dir>/bootstrap_<split>.json``. Example::

    python -m benchmarks.long_documents_bootstrap --split test --modes lead2_mean chunk_mean truncate
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import long_documents
from benchmarks.common import GLAE, command_line, load_glae, machine_info, results_dir, write_json

SAMPLES = 10_000


def paired_bootstrap(
    first: list[np.ndarray],
    second: list[np.ndarray],
    kinds: list[str] | None = None,
    samples: int = SAMPLES,
    seed: int = 0,
) -> list[float]:
    """``[difference, low, high]`` (x100): the mean over kinds of query (``kinds``, one per task; by default each task
    its own) of the mean over that kind's tasks of ``mean(first[t]) - mean(second[t])``, per-query scores of the same
    queries in the same order, with its 95 % paired-bootstrap interval."""
    rng = np.random.default_rng(seed)
    kinds = kinds or [str(index) for index in range(len(first))]
    differences = [a - b for a, b in zip(first, second)]
    draws = np.stack([d[rng.integers(0, len(d), (samples, len(d)))].mean(axis=1) for d in differences])
    points = np.array([d.mean() for d in differences])

    def over_kinds(values: np.ndarray) -> np.ndarray:
        return np.mean([values[[k == kind for k in kinds]].mean(axis=0) for kind in dict.fromkeys(kinds)], axis=0)

    low, high = np.percentile(over_kinds(draws), [2.5, 97.5])
    return [round(100 * float(value), 2) for value in (over_kinds(points), low, high)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=GLAE, help="A GLAE model folder or name (default: the bundled default).")
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    parser.add_argument("--tasks", nargs="+", choices=list(long_documents.TASKS), default=["start", "middle", "deep"])
    one_vector = [mode for mode, parts in long_documents.TIMES.items() if "iterative" not in parts]
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=one_vector,
        default=["lead2_mean", "chunk_mean", "truncate"],
        help="The first mode, and the modes it is compared with.",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--output-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if len(args.modes) < 2:
        parser.error("--modes needs the mode to compare and at least one other.")
    model = load_glae(args.model)
    scores: dict[str, dict[str, np.ndarray]] = {}
    for name in args.tasks:
        queries, documents = long_documents.TASKS[name](args.split)
        query_vectors = long_documents.unit(model.encode(queries, batch_size=args.batch_size, convert_to_numpy=True))
        read = long_documents.glae_vectors(model, documents, args.batch_size, {"first", "rest"})
        scores[name] = {}
        for mode in args.modes:
            vectors = long_documents.mode_vectors(mode, read)
            ranks = long_documents.query_ranks(query_vectors @ long_documents.unit(vectors).T)
            scores[name][mode] = long_documents.query_ndcg(ranks)
    first, *others = args.modes
    comparisons = {
        f"{first} - {other}": {
            "mean over kinds": paired_bootstrap(
                [scores[t][first] for t in args.tasks],
                [scores[t][other] for t in args.tasks],
                [long_documents.KINDS[t] for t in args.tasks],
            ),
            **{task: paired_bootstrap([scores[task][first]], [scores[task][other]]) for task in args.tasks},
        }
        for other in others
    }
    payload = {
        "command": command_line(__file__, argv),
        "machine": machine_info(),
        "split": args.split,
        "ndcg_at_10": {t: {m: round(100 * float(v.mean()), 2) for m, v in s.items()} for t, s in scores.items()},
        "differences [point, 2.5 %, 97.5 %]": comparisons,
    }
    output_dir = args.output_dir or results_dir(None) / "long_documents"
    write_json(output_dir / f"bootstrap_{args.split}.json", payload)
    for label, rows in comparisons.items():
        for task, (point, low, high) in rows.items():
            print(f"{label:26s} {task:16s} {point:+6.2f}  [{low:+6.2f}, {high:+6.2f}]")
    return payload


if __name__ == "__main__":
    main()
