"""``python -m benchmarks.run_mteb``: task selection and trimming offline, Hub detection without the network, and the
mteb result files and summary of a run on the tiny model."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path

import pytest

from benchmarks import run_mteb
from benchmarks.local_tasks import LOCAL_TASKS, LeeNewsRetrieval, STSBenchmarkLocal, VaderMovieReviewsClassification


def test_limit_task_trims_every_layout(vader_cache: Path):
    sts = STSBenchmarkLocal()
    run_mteb.limit_task(sts, 5)
    assert sts.dataset["test"].num_rows == 5

    classification = VaderMovieReviewsClassification()
    classification.test_size = 6
    run_mteb.limit_task(classification, 4)
    assert classification.dataset["train"].num_rows == 4 and classification.dataset["test"].num_rows == 4

    retrieval = LeeNewsRetrieval()
    run_mteb.limit_task(retrieval, 3)
    split = retrieval.dataset["default"]["test"]
    assert len(split["queries"]) == 3 and len(split["relevant_docs"]) == 3
    relevant = {doc for docs in split["relevant_docs"].values() for doc in docs}
    assert relevant <= set(split["corpus"]["id"]) and len(split["corpus"]) == 6


def test_select_tasks_offline():
    assert [task.metadata.name for task in run_mteb.select_tasks(None, None, None, online=False)] == [
        task.metadata.name for task in LOCAL_TASKS
    ]
    assert [t.metadata.name for t in run_mteb.select_tasks(None, ["Retrieval"], None, online=False)] == [
        "LeeNewsRetrieval"
    ]
    with pytest.raises(ValueError, match="only the local tasks"):
        run_mteb.select_tasks(["STS12"], None, None, online=False)
    with pytest.raises(ValueError, match="needs the Hugging Face Hub"):
        run_mteb.select_tasks(None, None, "MTEB(eng, v2)", online=False)


def test_hub_offline_env_answers_without_network(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", lambda *args, **kwargs: pytest.fail("network was used"))
    assert run_mteb.hub_reachable() is False


def test_hub_reachable_uses_a_short_timeout(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def unreachable(address: tuple[str, int], timeout: float) -> None:
        calls.append((address, timeout))
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    start = time.perf_counter()
    assert run_mteb.hub_reachable() is False
    assert time.perf_counter() - start < 1
    assert calls == [(("huggingface.co", 443), 3.0)]

    monkeypatch.setattr(socket, "create_connection", lambda address, timeout: contextlib.nullcontext())
    assert run_mteb.hub_reachable() is True


def test_run_mteb_writes_mteb_results_and_summary(saved_model_dir: Path, tmp_path: Path):
    output = tmp_path / "mteb"
    summary = run_mteb.main(
        [
            "--models",
            str(saved_model_dir),
            "--tasks",
            "STSBenchmarkLocal",
            "--limit",
            "8",
            "--offline",
            "--output-dir",
            str(output),
        ]
    )
    ((model, evaluated),) = summary["models"].items()
    score = evaluated["scores"]["STSBenchmarkLocal"]
    assert model == "glae-st/glae" and -1 <= score <= 1
    task_file = output / "results" / "glae-st__glae" / evaluated["revision"] / "STSBenchmarkLocal.json"
    task_result = json.loads(task_file.read_text())
    assert task_result["task_name"] == "STSBenchmarkLocal"
    assert task_result["scores"]["test"][0]["main_score"] == pytest.approx(score, abs=1e-6)  # mteb rounds to 6 digits
    assert json.loads((output / "summary.json").read_text())["models"] == summary["models"]
