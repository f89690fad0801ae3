"""``python -m benchmarks.long_documents``: the modes, the passes each needs, and the dev rule that picks one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from benchmarks import long_documents, long_documents_bootstrap

NEWS = [
    (
        "Rain fell in the north overnight and the river rose. Roads near the old bridge were closed by the police. "
        "Crews worked all day to clear the mud, and schools stayed shut until the water went down again."
    ),
    (
        "Stocks fell sharply on Monday as banks led the losses. The dollar was steady against the yen, and oil "
        "prices slipped for a third day while traders waited for the central bank to say what it would do next."
    ),
    (
        "The team won the final in extra time after a late goal. Fans filled the streets of the city to cheer the "
        "players, who had lost the same match the year before, and the coach thanked the crowd at the town hall."
    ),
]


def task(scores: dict[str, float]) -> dict[str, Any]:
    return {"modes": {mode: {"ndcg_at_10": score} for mode, score in scores.items()}}


def test_the_rule_takes_the_best_mean_over_kinds_among_modes_nowhere_below_truncation():
    results = {
        "start": task({"truncate": 80, "chunk_mean": 78, "lead2_mean": 82, "best-chunk": 99}),
        "start-titles": task({"truncate": 80, "chunk_mean": 90, "lead2_mean": 81, "best-chunk": 99}),
        "middle": task({"truncate": 50, "chunk_mean": 95, "lead2_mean": 90, "best-chunk": 99}),
        "deep": task({"truncate": 5, "chunk_mean": 60, "lead2_mean": 58, "best-chunk": 99}),
    }
    # chunk_mean has the best mean but falls below truncation on one start task; best-chunk is a reference
    assert long_documents.selected_mode(results) == "lead2_mean"
    results["start"]["modes"]["chunk_mean"]["ndcg_at_10"] = 80
    assert long_documents.selected_mode(results) == "chunk_mean"
    # the two start tasks count as one kind: a mode strong on both starts does not win on them twice
    kinds = {"start": (100, 68), "start-titles": (100, 68), "middle": (40, 68), "deep": (40, 68)}
    by_kind = {name: task({"truncate": 0, "starts": a, "even": b}) for name, (a, b) in kinds.items()}
    assert long_documents.selected_mode(by_kind) == "even"  # 68 against (100 + 40 + 40) / 3; per task it would lose


def test_another_models_modes_join_the_choice_under_their_own_name():
    ours = {"start": task({"truncate": 70, "chunk_mean": 72})}
    other = {
        "model": "runs/stage/final",
        "results": {"start": task({"truncate": 70, "iterative": 75, "best-chunk": 90})},
    }
    merged = long_documents.with_other_model(ours, other)
    assert list(merged["start"]["modes"]) == ["truncate", "chunk_mean", "iterative@runs/stage/final"]
    assert long_documents.selected_mode(merged) == "iterative@runs/stage/final"
    with pytest.raises(ValueError, match="two runs give the mode names iterative@runs/stage/final"):
        long_documents.with_other_model(merged, other)
    with pytest.raises(ValueError, match="same tasks"):
        long_documents.with_other_model({**ours, "deep": ours["start"]}, other)


def test_lead_mean_weighs_the_first_chunk_and_is_the_vector_of_a_one_chunk_document():
    chunks = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    np.testing.assert_allclose(long_documents.lead_mean(chunks, 2), [0.5, 0.5])
    np.testing.assert_allclose(long_documents.lead_mean(chunks, 1), chunks.mean(axis=0))
    np.testing.assert_allclose(long_documents.lead_mean(chunks[:1], 3), chunks[0])


@pytest.mark.parametrize("passes", [{"first"}, {"first", "rest"}, {"first", "rest", "iterative"}])
def test_only_the_passes_the_modes_need_are_run(tiny_model: SentenceTransformer, passes: set[str]):
    tiny_model[0].max_seq_length = 16
    read = long_documents.glae_vectors(tiny_model, NEWS, batch_size=2, passes=passes)
    chunks_per_document = [len(chunks) for chunks in read["chunks"]]
    assert (max(chunks_per_document) > 1) == ("rest" in passes) and read["mean_chunks"] > 1
    assert (read["iterated"][0] is None) == ("iterative" not in passes)
    assert {part for part, seconds in read["seconds"].items() if seconds > 0} == passes
    first = tiny_model[0].embed_token_ids(
        [tiny_model[0].tokenizer(NEWS[0], add_special_tokens=False).input_ids[:16]], iterative=False
    )
    np.testing.assert_allclose(read["chunks"][0][0], first[0].float().numpy(), atol=1e-5)


@pytest.fixture
def news_tasks(tiny_model: SentenceTransformer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every task of the benchmarks is three queries on :data:`NEWS`, read by the tiny model in chunks of 16."""
    tiny_model[0].max_seq_length = 16
    monkeypatch.setattr(long_documents, "load_glae", lambda name: tiny_model)
    monkeypatch.setattr(long_documents_bootstrap, "load_glae", lambda name: tiny_model)
    queries = ["Roads were closed.", "Banks led the losses.", "The team won the final."]
    monkeypatch.setattr(long_documents, "TASKS", dict.fromkeys(long_documents.TASKS, lambda split: (queries, NEWS)))


@pytest.mark.usefixtures("news_tasks")
def test_a_dev_run_scores_the_chosen_modes_and_names_its_choice(tmp_path: Path):
    earlier = tmp_path / "earlier.json"
    long_documents.main(["--split", "dev", "--output-dir", str(tmp_path), "--modes", "chunk_mean", "lead2_mean"])
    (tmp_path / "long_documents_dev.json").rename(earlier)
    long_documents.main(
        ["--split", "dev", "--output-dir", str(tmp_path), "--modes", "iterative", "--select-among", str(earlier)]
    )
    report = json.loads((tmp_path / "long_documents_dev.json").read_text())
    assert report["command"].startswith("python -m benchmarks.long_documents --split dev")
    assert list(report["results"]["deep"]["modes"]) == ["truncate", "iterative", long_documents.MINILM]
    merged = long_documents.with_other_model(report["results"], json.loads(earlier.read_text()))
    assert report["selected_mode"] == long_documents.selected_mode(merged)  # chosen among both runs' modes
    assert {"chunk_mean@glae", "lead2_mean@glae"} <= set(merged["deep"]["modes"])
    assert report["selected_among"] == [str(earlier)]


def test_the_paired_bootstrap_brackets_a_shift_and_is_zero_for_the_same_scores():
    rng = np.random.default_rng(1)
    scores = [rng.random(200), rng.random(50)]
    assert long_documents_bootstrap.paired_bootstrap(scores, scores, samples=200) == [0.0, 0.0, 0.0]
    point, low, high = long_documents_bootstrap.paired_bootstrap([s + 0.1 for s in scores], scores, samples=200)
    assert point == low == high == 10.0  # every query moved by the same amount: no uncertainty
    noisy = [s + rng.normal(0.05, 0.2, len(s)) for s in scores]
    point, low, high = long_documents_bootstrap.paired_bootstrap(noisy, scores, samples=500)
    assert low < point < high and low < 5.0 < high  # the interval holds the true shift (seeded)


def test_the_bootstrap_averages_over_kinds_of_query_as_the_rule_does():
    shifted = [np.full(10, 0.3), np.full(10, 0.3), np.full(10, 0.0)]
    zeros = [np.zeros(10)] * 3
    kinds = ["start", "start", "middle"]
    assert long_documents_bootstrap.paired_bootstrap(shifted, zeros, kinds, samples=50)[0] == 15.0  # (30 + 0) / 2
    assert long_documents_bootstrap.paired_bootstrap(shifted, zeros, samples=50)[0] == 20.0  # per task: 60 / 3


@pytest.mark.usefixtures("news_tasks")
def test_a_select_among_file_of_another_split_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    test_run = tmp_path / "test.json"
    test_run.write_text(json.dumps({"split": "test", "model": "glae", "results": {}}))
    with pytest.raises(SystemExit) as exit_info:
        long_documents.main(["--split", "dev", "--select-among", str(test_run), "--output-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "not a dev run of this benchmark" in capsys.readouterr().err


@pytest.mark.usefixtures("news_tasks")
def test_the_bootstrap_command_compares_modes_on_the_same_queries(tmp_path: Path):
    report = long_documents_bootstrap.main(
        ["--output-dir", str(tmp_path), "--modes", "chunk_mean", "chunk_mean", "truncate"]
    )
    same = report["differences [point, 2.5 %, 97.5 %]"]["chunk_mean - chunk_mean"]
    assert all(row == [0.0, 0.0, 0.0] for row in same.values())
    assert set(report["differences [point, 2.5 %, 97.5 %]"]["chunk_mean - truncate"]) == {
        "mean over kinds",
        "start",
        "middle",
        "deep",
    }
    assert (tmp_path / "bootstrap_test.json").is_file()


def test_the_bootstrap_needs_two_modes(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        long_documents_bootstrap.main(["--modes", "chunk_mean"])
    assert exit_info.value.code == 2
    assert "--modes needs the mode to compare and at least one other" in capsys.readouterr().err
