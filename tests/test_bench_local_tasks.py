"""benchmarks/local_tasks.py: the offline mteb tasks (STS-B, VADER, Lee retrieval, long documents, TREC, Bible
mining) load from installed packages, score a hand-computed case, and hold out what training reads."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datasets import Dataset, DatasetDict
from mteb.models.abs_encoder import AbsEncoder

from benchmarks import local_tasks
from benchmarks.local_tasks import (
    LeeNewsRetrieval,
    STSBenchmarkLocal,
    VaderMovieReviewsClassification,
    vader_ground_truth,
)
from glae_st import corpora
from training import data as training_data


class FixedEncoder(AbsEncoder):
    """An mteb encoder that returns a given vector per text."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def encode(self, inputs: Any, **kwargs: Any) -> np.ndarray:
        return np.array([self.vectors[text] for batch in inputs for text in batch["text"]], dtype=np.float32)


def test_sts_task_scores_cosine_spearman_of_a_hand_computed_case():
    cosines, gold = [0.9, 0.1, 0.5, 0.7], [5.0, 1.0, 4.0, 2.0]
    task = STSBenchmarkLocal()
    vectors = {}
    rows = {"sentence1": [], "sentence2": [], "score": gold}
    for index, cosine in enumerate(cosines):
        vectors[f"a{index}"], vectors[f"b{index}"] = [1.0, 0.0], [cosine, math.sqrt(1 - cosine**2)]
        rows["sentence1"].append(f"a{index}")
        rows["sentence2"].append(f"b{index}")
    task.dataset, task.data_loaded = DatasetDict({"test": Dataset.from_dict(rows)}), True
    scores = task.evaluate(FixedEncoder(vectors), encode_kwargs={"batch_size": 4})["default"]
    # ranks: cosine 4,1,2,3 and gold 4,1,3,2 -> sum d^2 = 2 -> rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert scores["cosine_spearman"] == pytest.approx(0.8)
    assert scores["main_score"] == pytest.approx(0.8)


def test_local_sts_and_retrieval_tasks_load_offline():
    sts = STSBenchmarkLocal()
    sts.load_data()
    assert sts.dataset["test"].num_rows == 1379
    assert sts.dataset["test"].column_names == ["sentence1", "sentence2", "score"]
    assert 0 <= min(sts.dataset["test"]["score"]) and max(sts.dataset["test"]["score"]) <= 5

    retrieval = LeeNewsRetrieval()
    retrieval.load_data()
    split = retrieval.dataset["default"]["test"]
    documents = dict(zip(split["corpus"]["id"], split["corpus"]["text"], strict=True))
    assert len(split["queries"]) == len(documents) > 250
    for query_id, lead in zip(split["queries"]["id"], split["queries"]["text"], strict=True):
        (document_id,) = split["relevant_docs"][query_id]
        assert lead not in documents[document_id]


def test_vader_classification_task_labels_the_sign_and_splits_stratified(vader_cache: Path):
    assert vader_ground_truth()[0] == (2.5, "Snippet number 1.")
    task = VaderMovieReviewsClassification()
    task.test_size = 6
    task.load_data()
    train, test = task.dataset["train"], task.dataset["test"]
    assert (train.num_rows, test.num_rows) == (14, 6)
    assert sorted(test["label"]) == [0, 0, 0, 1, 1, 1]
    labelled = {row["text"]: row["label"] for split in (train, test) for row in split}
    assert "A neutral snippet." not in labelled
    assert labelled["Snippet number 1."] == 1 and labelled["Snippet number 2."] == 0


def test_vader_download_failure_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GLAE_ST_CACHE", str(tmp_path))

    def fail(command: list[str], **kwargs: Any) -> None:
        raise subprocess.CalledProcessError(1, command, stderr="no network")

    monkeypatch.setattr(subprocess, "run", fail)
    with pytest.raises(RuntimeError, match="pip download"):
        vader_ground_truth()


def test_long_document_queries_come_from_deep_inside_held_out_articles(monkeypatch: pytest.MonkeyPatch):
    words = [f"w{i}" for i in range(600)]
    articles = tuple((f"t{n}", " ".join(f"{n}{w}" for w in words[: 200 + 20 * n])) for n in range(30))
    monkeypatch.setattr(corpora, "news_articles", lambda: articles)
    queries, documents = local_tasks.long_document_queries()
    assert len(queries) == 3 - 1  # test articles 0, 10, 20; article 0 has 200 < 250 words
    for query, document in zip(queries, documents):
        assert len(document.split()) == min(local_tasks.LONG_DOCUMENT_WORDS, len(document.split()))
        position = document.split().index(query.split()[0])
        assert position >= local_tasks.QUERY_START_WORDS and query in document
        assert len(query.split()) == local_tasks.QUERY_WORDS
    assert documents[0].startswith("10w0 ") and documents[1].startswith("20w0 ")
    dev_queries, dev_documents = local_tasks.long_document_queries("dev")
    assert [document.split()[0] for document in dev_documents] == ["5w0", "15w0", "25w0"]  # dev articles 5, 15, 25
    task = local_tasks.NewsLongDocumentRetrieval().filter_eval_splits(["dev"])
    task.load_data()
    assert list(task.dataset["default"]["dev"]["corpus"]["text"]) == dev_documents
    assert list(task.dataset["default"]["dev"]["queries"]["text"]) == dev_queries


def test_trec_and_bible_tasks_build_mteb_layouts_from_the_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "data").mkdir()
    questions = [f"NUM:date When did event {i} happen ?" for i in range(12)]
    questions += [f"HUM:ind Who wrote book {i} ?" for i in range(12)] + ["HUM:ind Who wrote book 0 ?", "broken line"]
    (tmp_path / "data" / "question_labels.txt").write_text("\n".join(questions) + "\n")
    monkeypatch.setattr(local_tasks.corpora, "package_dir", lambda package, hint: tmp_path)
    assert len(local_tasks.trec_questions()) == 24  # the duplicate and the unlabelled line are dropped
    trec = local_tasks.TRECQuestionClassification()
    trec.test_size = 6
    trec.load_data()
    assert trec.dataset["test"].num_rows == 6 and sorted(trec.dataset["test"]["label"]) == [0, 0, 0, 1, 1, 1]
    assert trec.dataset["train"].features["label"].names == ["HUM", "NUM"]

    verses = tuple((f"Verse {i} thou art.", f"Verse {i} asv.", f"Verse {i} you are.") for i in range(40))
    monkeypatch.setattr(local_tasks.corpora, "bible_parallel_verses", lambda: verses)
    assert [row[0] for row in corpora.bible_verse_split("test")] == ["Verse 0 thou art.", "Verse 20 thou art."]
    assert len(corpora.bible_verse_split("train")) == 36
    with pytest.raises(ValueError, match="split must be 'train', 'dev' or 'test', got 'validation'"):
        corpora.bible_verse_split("validation")
    bible = local_tasks.BibleKJVWEBBitextMining()
    bible.load_data()
    assert bible.dataset["test"]["sentence1"] == ["Verse 0 thou art.", "Verse 20 thou art."]
    assert bible.dataset["test"]["sentence2"] == ["Verse 0 you are.", "Verse 20 you are."]
    training_pairs = training_data.bible_paraphrase_pairs(seed=0)
    held_out = set(bible.dataset["test"]["sentence1"]) | set(bible.dataset["test"]["sentence2"])
    assert len(training_pairs) == 36 and not held_out & (
        set(training_pairs["anchor"]) | set(training_pairs["positive"])
    )
