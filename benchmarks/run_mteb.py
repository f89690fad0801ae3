"""Evaluate GLAE and its baselines on MTEB tasks and write the results in mteb's results layout.

Without the Hugging Face Hub (unreachable, or ``HF_HUB_OFFLINE=1``, or ``--offline``) the offline tasks of
:mod:`benchmarks.local_tasks` run; with it, MTEB's own tasks by name. Results go to ``<output-dir>/results/<model>/
<revision>/<task>.json`` (an mteb :class:`~mteb.cache.ResultCache`, so finished model-task pairs are not run again),
a summary to ``<output-dir>/summary.json``, and a table of main scores to the terminal.

Examples (from the repository root)::

    python -m benchmarks.run_mteb                                  # GLAE and all baselines, default tasks
    python -m benchmarks.run_mteb --limit 100                      # quick run, 100 rows per task
    python -m benchmarks.run_mteb --models glae all-minilm-l6-v2 --tasks STSBenchmarkLocal
    python -m benchmarks.run_mteb --benchmark "MTEB(eng, v2)"      # needs the Hub
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mteb
from datasets import Dataset
from mteb.abstasks import AbsTask, AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.cache import ResultCache
from mteb.evaluate import OverwriteStrategy

from benchmarks.common import command_line, machine_info, results_dir, write_json
from benchmarks.local_tasks import LOCAL_TASKS
from benchmarks.mteb_models import MODELS, model_meta
from glae_st.registry import hub_offline_reason

DEFAULT_HUB_TASKS = ("STSBenchmark", "Banking77Classification", "SciFact")
"""Tasks run when the Hub is reachable and none are named: one STS, one classification and one retrieval task."""


DEFAULT_MODELS = list(MODELS)
"""Scored when ``--models`` is not given: GLAE and the baselines."""


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub can be used (see :func:`glae_st.registry.hub_offline_reason`)."""
    return hub_offline_reason(timeout) is None


def select_tasks(
    names: Sequence[str] | None, task_types: Sequence[str] | None, benchmark: str | None, online: bool
) -> list[AbsTask]:
    """The tasks to run: a benchmark, named tasks (offline ones or, online, any MTEB task) or the defaults.

    Raises:
        ValueError: A name is unknown, a benchmark is asked for offline, or no task is left after the type filter.
    """
    local = {task.metadata.name: task for task in LOCAL_TASKS}
    if benchmark is not None:
        if not online:
            raise ValueError(f"The benchmark {benchmark!r} needs the Hugging Face Hub, which is not reachable.")
        tasks = list(mteb.get_benchmark(benchmark).tasks)
    else:
        names = list(names or (DEFAULT_HUB_TASKS if online else local))
        hub_names = [name for name in names if name not in local]
        if hub_names and not online:
            raise ValueError(f"Offline, only the local tasks {sorted(local)} can run; got {hub_names}.")
        hub = {task.metadata.name: task for task in mteb.get_tasks(tasks=hub_names)} if hub_names else {}
        tasks = [local[name]() if name in local else hub[name] for name in names]
    if task_types:
        tasks = [task for task in tasks if task.metadata.type in task_types]
    if not tasks:
        raise ValueError(f"No task has a type in {list(task_types or [])}.")
    return tasks


def limit_task(task: AbsTask, limit: int, seed: int = 42) -> None:
    """Load a task's data and keep at most ``limit`` rows of each split, for quick runs.

    Rows are drawn at random (seeded), so a classification split keeps all its labels. A retrieval split keeps its
    first ``limit`` queries, the documents relevant to them (or ranked for them, in reranking) and up to ``limit``
    other documents as distractors.
    """
    task.load_data()
    retrieval = isinstance(task, AbsTaskRetrieval)
    if retrieval:
        task.convert_v1_dataset_format_to_v2(num_proc=None)
    for splits in task.dataset.values() if retrieval or task.metadata.is_multilingual else [task.dataset]:
        for split, data in splits.items():
            splits[split] = _limit_retrieval_split(data, limit) if retrieval else _sample(data, limit, seed)


def _sample(data: Dataset, limit: int, seed: int) -> Dataset:
    return data if len(data) <= limit else data.shuffle(seed=seed).select(range(limit))


def _limit_retrieval_split(split: RetrievalSplitData, limit: int) -> RetrievalSplitData:
    queries = split["queries"].select(range(min(limit, len(split["queries"]))))
    kept = set(queries["id"])
    relevant_docs = {query: docs for query, docs in split["relevant_docs"].items() if query in kept}
    top_ranked = split["top_ranked"]
    if top_ranked is not None:
        top_ranked = {query: docs for query, docs in top_ranked.items() if query in kept}
    needed = {doc for docs in [*relevant_docs.values(), *(top_ranked or {}).values()] for doc in docs}
    corpus_ids = split["corpus"]["id"]
    distractors = [index for index, doc in enumerate(corpus_ids) if doc not in needed][:limit]
    keep = sorted({index for index, doc in enumerate(corpus_ids) if doc in needed} | set(distractors))
    return RetrievalSplitData(
        queries=queries, corpus=split["corpus"].select(keep), relevant_docs=relevant_docs, top_ranked=top_ranked
    )


def run(
    models: Sequence[str],
    tasks: Sequence[AbsTask],
    output_dir: Path,
    batch_size: int = 32,
    overwrite_strategy: str = "only-missing",
) -> dict[str, dict[str, Any]]:
    """Evaluate every model on every task, caching results in ``output_dir``.

    Returns:
        ``{model label: {"revision": ..., "scores": {task name: main score}}}``; the label includes mteb experiment
        parameters, and the revision tells which weights were scored.
    """
    cache = ResultCache(output_dir)
    results: dict[str, dict[str, Any]] = {}
    for name in models:
        meta = model_meta(name)
        result = mteb.evaluate(
            meta,
            list(tasks),
            cache=cache,
            encode_kwargs={"batch_size": batch_size, "show_progress_bar": True},
            overwrite_strategy=overwrite_strategy,
        )
        results[meta.model_name_with_experiment] = {
            "revision": meta.revision,
            "scores": {task_result.task_name: task_result.get_score() for task_result in result.task_results},
        }
    return results


def format_table(results: dict[str, dict[str, Any]], task_names: Sequence[str]) -> str:
    """A Markdown table of main scores (x100), one row per model (with its revision) and one column per task."""
    header = ["model", "revision", *task_names]
    rows = [
        [
            model,
            result["revision"],
            *(f"{100 * result['scores'][task]:.2f}" if task in result["scores"] else "-" for task in task_names),
        ]
        for model, result in results.items()
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", default=DEFAULT_MODELS, help=f"Names ({', '.join(MODELS)}) or saved GLAE folders."
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        help="Task names; by default the offline tasks or, online, " + ", ".join(DEFAULT_HUB_TASKS) + ".",
    )
    parser.add_argument("--task-types", nargs="+", help="Keep only tasks of these mteb types (e.g. STS Retrieval).")
    parser.add_argument("--benchmark", help='An mteb benchmark name, e.g. "MTEB(eng, v2)" (needs the Hub).')
    parser.add_argument("--limit", type=int, help="At most this many rows per task split, for quick runs.")
    parser.add_argument("--offline", action="store_true", help="Run the offline tasks without checking the Hub.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--overwrite-strategy", default="only-missing", choices=[strategy.value for strategy in OverwriteStrategy]
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="Default: benchmarks/results/mteb (benchmarks/results/limit-N/mteb with --limit).",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the command line; return the summary that is also written to ``<output-dir>/summary.json``."""
    args = parse_args(argv)
    output_dir = args.output_dir or results_dir(args.limit) / "mteb"
    online = not args.offline and hub_reachable()
    print("Hugging Face Hub " + ("reachable: MTEB tasks." if online else "unreachable or offline: offline tasks."))
    tasks = select_tasks(args.tasks, args.task_types, args.benchmark, online)
    if args.limit is not None:
        for task in tasks:
            limit_task(task, args.limit)
    results = run(args.models, tasks, output_dir, args.batch_size, args.overwrite_strategy)
    task_names = [task.metadata.name for task in tasks]
    summary = {
        "command": command_line(__file__, argv),
        "online": online,
        "limit": args.limit,
        "tasks": {
            task.metadata.name: {"type": task.metadata.type, "main_score": task.metadata.main_score} for task in tasks
        },
        "models": results,
        "machine": machine_info(),
    }
    write_json(output_dir / "summary.json", summary)
    print(format_table(results, task_names))
    return summary


if __name__ == "__main__":
    main()
