"""Tests of the benchmark scripts on the tiny model fixtures: metrics against hand-computed values, offline tasks,
result files, and offline detection without touching the network."""

from __future__ import annotations

import contextlib
import json
import math
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mteb.models.abs_encoder import AbsEncoder
from sentence_transformers import SentenceTransformer
from transformers import AutoTokenizer

from benchmarks import common, decode_accuracy, run_all, run_mteb, scaling, throughput
from benchmarks.common import machine_info
from benchmarks.local_tasks import (
    LOCAL_TASKS,
    LeeNewsRetrieval,
    STSBenchmarkLocal,
    VaderMovieReviewsClassification,
    vader_cache_dir,
    vader_ground_truth,
)
from glae_st.evaluation import exact_match, token_f1, token_recall, words

ARTICLES = [
    "Rain fell in the north. The river rose overnight. Roads were closed near the bridge. Crews worked all day.",
    "Stocks fell sharply on Monday. Banks led the losses. The dollar was steady against the yen.",
]


# ---------------------------------------------------------------------------------------------------- decode metrics
def test_tokenize_splits_words_and_punctuation_lower_cased():
    assert words("Don't stop, Bob!") == ["don", "'", "t", "stop", ",", "bob", "!"]


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("The cat sat.", "the cat sat on the mat", 0.6),  # 3 common of 4 predicted and 6 reference tokens
        ("the the the", "the cat", 0.4),  # repeats count once per reference occurrence: P = 1/3, R = 1/2
        ("sat cat the", "the cat sat", 1.0),  # a bag of tokens: order is ignored
        ("dogs bark", "the cat sat", 0.0),
        ("", "", 1.0),
        ("", "the cat", 0.0),
    ],
)
def test_token_f1_matches_hand_computed_values(prediction: str, reference: str, expected: float):
    assert token_f1(prediction, reference) == pytest.approx(expected)


def test_token_recall_counts_the_reference_words_that_come_back():
    assert token_recall("the cat the dog and more words", "The cat sat, the end.") == pytest.approx(3 / 7)
    assert token_recall("", "a b") == 0.0
    assert token_recall("anything", "") == 1.0


def test_exact_match_ignores_whitespace_runs_but_not_case():
    assert exact_match("  The cat\n sat. ", "The cat sat.")
    assert not exact_match("the cat sat.", "The cat sat.")
    assert not exact_match("The cat sat", "The cat sat.")


def test_fidelity_of_perfect_and_partial_decodes():
    references = ["The quick brown fox jumps over the lazy dog.", "Stocks fell sharply on Monday."]
    perfect = decode_accuracy.fidelity(references, references)
    assert perfect == {
        "n": 2,
        "exact_match": 1.0,
        "token_f1": 1.0,
        "bleu": pytest.approx(100),
        "chrf": pytest.approx(100),
    }
    partial = decode_accuracy.fidelity([references[0], "Stocks rose."], references)
    assert partial["exact_match"] == 0.5
    assert partial["token_f1"] == pytest.approx((1 + 2 * (2 / 3) * (2 / 6) / (2 / 3 + 2 / 6)) / 2)
    assert 0 < partial["bleu"] < 100 and 0 < partial["chrf"] < 100


@pytest.mark.parametrize(("n_tokens", "bucket"), [(1, 8), (8, 8), (9, 16), (200, 256), (256, 256), (257, None)])
def test_bucket_of_uses_inclusive_upper_bounds(n_tokens: int, bucket: int | None):
    assert decode_accuracy.bucket_of(n_tokens) == bucket


def test_add_noise_is_relative_to_each_vectors_scale():
    rng = np.random.default_rng(0)
    embeddings = np.stack([np.full(4096, 3.0), np.full(4096, -0.5)]).astype(np.float32)
    assert decode_accuracy.add_noise(embeddings, 0.0, rng) is embeddings
    noise = decode_accuracy.add_noise(embeddings, 0.2, rng) - embeddings
    assert noise.std(axis=1) == pytest.approx([0.2 * 3.0, 0.2 * 0.5], rel=0.05)


def test_held_out_texts_are_bucketed_by_their_token_count(tiny_backbone: str):
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    texts = decode_accuracy.held_out_texts(tokenizer, per_bucket=2, articles=ARTICLES)
    assert texts, "no texts"
    for text in texts:
        assert text.n_tokens == len(tokenizer(text.text, add_special_tokens=False)["input_ids"])
        assert text.bucket == decode_accuracy.bucket_of(text.n_tokens)
    counts = {bucket: sum(text.bucket == bucket for text in texts) for bucket in decode_accuracy.BUCKETS}
    assert max(counts.values()) <= 2
    assert any(text.text.count(".") > 1 for text in texts), "runs of several sentences are candidates too"


def test_evaluate_scores_a_faithful_autoencoder_as_perfect(tiny_backbone: str):
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    texts = decode_accuracy.held_out_texts(tokenizer, per_bucket=3, articles=ARTICLES)
    lookup = [text.text for text in texts]
    autoencoder = decode_accuracy.Autoencoder(
        name="lookup",
        encode=lambda batch: np.array([[lookup.index(text)] for text in batch], dtype=np.float32),
        decode=lambda vectors, max_new_tokens: [lookup[round(float(v[0]))] for v in vectors],
        vectors_per_text=2,
    )
    results = decode_accuracy.evaluate(autoencoder, texts)["0.0"]
    assert results["overall"]["exact_match"] == 1.0 and results["overall"]["n"] == len(texts)
    short = [text for text in texts if text.n_tokens <= decode_accuracy.SHORT_TEXT_TOKENS]
    assert 0 < len(short) < len(texts)
    assert results["short"]["n"] == len(short) and results["short"]["exact_match"] == 1.0
    for bucket, metrics in results["buckets"].items():
        in_bucket = [text.n_tokens for text in texts if text.bucket == int(bucket)]
        assert metrics["n"] == len(in_bucket)
        assert metrics["tokens_per_vector"] == pytest.approx(np.mean(in_bucket) / 2)
    bucket_seconds = {int(bucket): metrics["decode_seconds"] for bucket, metrics in results["buckets"].items()}
    assert all(seconds > 0 for seconds in bucket_seconds.values())
    assert results["overall"]["decode_seconds"] == pytest.approx(sum(bucket_seconds.values()))
    short_seconds = [s for bucket, s in bucket_seconds.items() if bucket <= decode_accuracy.SHORT_TEXT_TOKENS]
    assert results["short"]["decode_seconds"] == pytest.approx(sum(short_seconds))


def test_decode_benchmark_on_tiny_glae_writes_table_and_plot(
    tiny_model: SentenceTransformer, tiny_backbone: str, tmp_path: Path
):
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    texts = decode_accuracy.held_out_texts(tokenizer, per_bucket=1, articles=ARTICLES)
    autoencoder = decode_accuracy.glae_autoencoder(tiny_model, "tiny", batch_size=4, num_beams=2)
    systems = {"tiny": decode_accuracy.evaluate(autoencoder, texts, noise_levels=(0.0, 0.5), max_new_tokens=3)}
    for sigma in ("0.0", "0.5"):
        overall = systems["tiny"][sigma]["overall"]
        assert overall["n"] == len(texts) and 0 <= overall["token_f1"] <= 1
    reranked = decode_accuracy.glae_autoencoder(tiny_model, "tiny (rerank 2)", batch_size=4, num_candidates=2)
    systems[reranked.name] = decode_accuracy.evaluate(reranked, texts, noise_levels=(0.0, 0.5), max_new_tokens=3)
    decode_accuracy.plot(systems, tmp_path / "fidelity.png")  # length, noise and decode-time panels
    assert (tmp_path / "fidelity.png").read_bytes().startswith(b"\x89PNG")
    table = decode_accuracy.format_table(systems)
    assert table.count("| tiny | 0.5 |") == len(systems["tiny"]["0.5"]["buckets"]) + 2  # + "≤32 together", "all"
    saved = tmp_path / "saved" / "decode_accuracy.json"
    saved.parent.mkdir()
    saved.write_text(json.dumps({"config": {}, "systems": systems}))
    assert decode_accuracy.main(["--replot", str(saved)])["systems"] == systems
    assert saved.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(SystemExit, match="--replot .*missing.json: cannot read it as a decode_accuracy.json"):
        decode_accuracy.main(["--replot", str(tmp_path / "missing.json")])


def test_decode_reuse_keeps_other_systems_only_for_the_same_texts_and_settings(tmp_path: Path):
    config = {"texts_per_bucket": 100, "buckets": {"8": 24}, "noise": [0.0], "max_new_tokens": None, "seed": 0}
    earlier = tmp_path / "decode_accuracy.json"
    encoders = {"glae": {"max_seq_length": 64}, "glae-untrained": {"max_seq_length": 32}}
    systems = {"glae": "old", "glae-untrained": "kept"}
    earlier.write_text(json.dumps({"config": {**config, "encoders": encoders}, "systems": systems}))
    assert decode_accuracy.reusable_systems(earlier, config, exclude={"glae": "new"}) == (
        {"glae-untrained": "kept"},
        {"glae-untrained": {"max_seq_length": 32}},
    )
    with pytest.raises(SystemExit, match="seed is 0, this run's is 1"):
        decode_accuracy.reusable_systems(earlier, {**config, "seed": 1}, exclude={})
    earlier.write_text("not json")
    with pytest.raises(SystemExit, match="cannot read it"):
        decode_accuracy.reusable_systems(earlier, config, exclude={})


# ---------------------------------------------------------------------------------------------------- offline tasks
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
    from datasets import Dataset, DatasetDict

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


@pytest.fixture
def vader_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cached copy of a small movieReviewSnippets ground-truth file (no download)."""
    monkeypatch.setenv("GLAE_ST_CACHE", str(tmp_path))
    folder = vader_cache_dir()
    folder.mkdir(parents=True)
    lines = [f"{i}\t{2.5 if i % 2 else -1.5}\tSnippet number {i}." for i in range(1, 21)]
    lines += ["21\t0.0\tA neutral snippet.", "22\t3.0\tSnippet number 1."]  # neutral, and a duplicate text
    (folder / "movieReviewSnippets_GroundTruth.txt").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return folder


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


# ---------------------------------------------------------------------------------------------------- offline detection
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


# ---------------------------------------------------------------------------------------------------- result files
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


def test_throughput_measure_times_repeats(tiny_model: SentenceTransformer, tiny_backbone: str):
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    short = throughput.benchmark_texts(tokenizer, "short", 10, articles=ARTICLES)
    assert short and all(abs(len(tokenizer(t)["input_ids"]) - 15) <= throughput.SHORT_TOLERANCE for t in short)
    result = throughput.measure(tiny_model, short, batch_size=2, repeats=2, warmup=1)
    assert result["texts"] == len(short) and len(result["seconds"]) == 2
    assert result["sentences_per_second"] == pytest.approx(len(short) / np.median(result["seconds"]))


def test_scaling_runs_every_engine_in_its_own_process_and_gives_the_single_process_vectors(saved_model_dir: Path):
    texts = [f"Sentence {i} about {'rain' if i % 2 else 'stocks'}." for i in range(12)]
    rows = scaling.run(list(scaling.ENGINES), [2], texts, batch_size=4, model_name=str(saved_model_dir))
    assert [(row["engine"], row["workers"]) for row in rows] == [("single", 1), ("st-pool", 2), ("ray", 2)]
    assert rows[0]["speedup_vs_single"] == 1.0 and rows[0]["max_abs_diff_vs_single"] == 0.0
    for row in rows:
        assert row["texts"] == 12 and row["sentences_per_second"] == pytest.approx(12 / row["seconds"])
        assert row["max_abs_diff_vs_single"] < 1e-4
    table = scaling.format_table(rows).splitlines()
    assert len(table) == 2 + len(rows) and table[3].startswith("| st-pool | 2 |")


def test_report_renders_every_section(tmp_path: Path):
    machine = machine_info()
    metrics = {
        "n": 1,
        "exact_match": 1.0,
        "token_f1": 1.0,
        "bleu": 100.0,
        "chrf": 100.0,
        "mean_tokens": 6.0,
        "tokens_per_vector": 6.0,
    }
    results = {
        "mteb/summary.json": {
            "command": "python benchmarks/run_mteb.py --limit 8",
            "online": False,
            "limit": 8,
            "tasks": {"STSBenchmarkLocal": {"type": "STS", "main_score": "cosine_spearman"}},
            "models": {"glae-st/glae": {"revision": "4b91f0878a7a", "scores": {"STSBenchmarkLocal": 0.8203}}},
            "machine": machine,
        },
        "decode/decode_accuracy.json": {
            "command": "python benchmarks/decode_accuracy.py --limit 8",
            "config": {
                "texts_per_bucket": 8,
                "buckets": {"8": 1},
                "encoders": {"glae": {"max_seq_length": 64, "long_text": "truncate"}},
                "reused": {"from": "old/decode_accuracy.json", "systems": ["glae"]},
            },
            "systems": {"glae": {"0.0": {"buckets": {"8": metrics}, "overall": metrics, "examples": {}}}},
            "machine": machine,
        },
        run_all.RESULT_FILES["audit"]: {
            "command": "python benchmarks/inversion_audit.py --fit-texts 100",
            "audited_texts": 3,
            "glae_own": {"token_f1": 0.5, "exact_match": 0.0, "names_recovered": None, "numbers_recovered": 1.0},
            "models": {
                "all-MiniLM-L6-v2": {
                    "fit": {"texts": 1000},
                    "overall": {"token_f1": 0.3, "exact_match": 0.0, "names_recovered": 0.25, "numbers_recovered": 0.5},
                }
            },
            "machine": machine,
        },
        "scaling/scaling.json": {
            "command": "python benchmarks/scaling.py --texts 8",
            "config": {"texts": 8, "batch_size": 4, "cores": 2},
            "results": [
                {
                    "engine": "single",
                    "workers": 1,
                    "sentences_per_second": 10.0,
                    "startup_seconds": 0.0,
                    "speedup_vs_single": 1.0,
                    "max_abs_diff_vs_single": 0.0,
                },
            ],
            "machine": machine,
        },
    }
    for name, payload in results.items():
        (tmp_path / name).parent.mkdir(parents=True)
        (tmp_path / name).write_text(json.dumps(payload))
    report = run_all.render_report(tmp_path, tmp_path / "RESULTS.md")
    assert "| glae-st/glae | 4b91f0878a7a | 82.03 |" in report
    assert "| glae | 0 | ≤8 | 1 | 6.0 | 100.0 | 100.0 | 100.0 | 100.0 |" in report
    assert (
        "Tokens read per text (longer texts are truncated, or read in chunks if iterative): glae: 64 (truncate)."
        in report
    )
    assert "The rows of glae come from an earlier run on the same texts" in report
    assert "![Decoding fidelity vs text length](decode/decode_accuracy.png)" in report
    assert "## Encoding throughput\n\nNot run." in report
    assert "python benchmarks/run_mteb.py --limit 8\npython benchmarks/decode_accuracy.py --limit 8" in report
    assert "| all-MiniLM-L6-v2 | 1,000 | 30.0 | 0.0 | 25.0 | 50.0 |" in report
    assert "| GLAE itself (its own embeddings) | - | 50.0 | 0.0 | n/a | 100.0 |" in report
    assert "| single | 1 | 10.0 | 1.00x | 0.0 | 0.0e+00 |" in report
    assert "| inversion audit |" in report and "| corpus scale |" in report


def test_long_text_continuation_nll_is_the_language_model_loss(tiny_model):
    """A context without memory is the plain LM: its continuation NLL equals the causal LM's own loss."""
    from benchmarks import long_text
    from glae_st.long_text import BoundedContext, compress_context

    module = tiny_model[0]
    ids = module.tokenizer(ARTICLES[0], add_special_tokens=False)["input_ids"]
    prefix, target = ids[:20], ids[20:30]
    with torch.no_grad():
        (nll,) = long_text.continuation_nll(module, [BoundedContext(None, prefix)], [target])
        labels = torch.tensor([[-100] * 20 + target])
        expected = module.causal_lm(torch.tensor([prefix + target]), labels=labels).loss.item()
        (with_memory,) = long_text.continuation_nll(module, compress_context(module, [prefix], window=8), [target])
    assert nll == pytest.approx(expected, rel=1e-4)
    assert with_memory != pytest.approx(nll, rel=1e-4)  # the memory vector and decode prompt change the context


def test_long_text_tables_render(tmp_path: Path):
    from benchmarks import long_text

    summary = {
        "memory": [
            {"tokens": 64, "mode": "load-only", "chunk": 64, "seconds": 0.1, "peak_rss_mb": 800.0},
            {"tokens": 100_000, "mode": "iterative", "chunk": 256, "seconds": 90.0, "peak_rss_mb": 1300.0},
            {"tokens": 8_000, "mode": "single-pass", "chunk": 8_000, "seconds": 60.0, "peak_rss_mb": 2000.0},
        ],
        "lm": [
            {
                "prefix": 1024,
                "articles": 2,
                "results": {
                    "truncate": {"nll": 3.0, "perplexity": 20.1, "context_tokens": 64},
                    "glae-memory": {"nll": 2.9, "perplexity": 18.2, "context_tokens": 64},
                },
            }
        ],
        "retrieval": {"iterative": {"ndcg_at_10": 0.5, "accuracy_at_1": 0.25}},
        "fidelity": [{"tokens": 256, "mode": "iterative", "texts": 12, "token_recall": 0.4}],
    }
    table = long_text.format_tables(summary)
    assert "| 100,000 | iterative | 256 | 90.0 | 1300 | 500 |" in table
    assert "| 1024 | truncate | 64 | 3.000 | 20.1 |" in table
    assert "| 1024 | glae-memory | 64 + 1 vector | 2.900 | 18.2 |" in table
    assert "| iterative | 50.0 | 25.0 |" in table
    assert "| 256 | iterative | 12 | 40.0 |" in table
    assert long_text.format_tables({"retrieval": summary["retrieval"]}).startswith("| long-document retrieval |")
    long_text.plot_memory(summary["memory"], tmp_path / "memory.png")
    assert (tmp_path / "memory.png").stat().st_size > 0


def test_long_text_generate_continues_held_out_prefixes_with_their_true_continuation(
    tiny_model, monkeypatch: pytest.MonkeyPatch
):
    from benchmarks import long_text
    from glae_st import corpora

    articles = [("short", "Too short."), ("long", " ".join(ARTICLES * 3)), ("long2", " ".join(ARTICLES[::-1] * 3))]
    monkeypatch.setattr(corpora, "news_split_articles", lambda split: articles)
    module = tiny_model[0]
    examples = long_text.generate_run(module, n_texts=2, prefix=40, window=8, max_new_tokens=5)
    assert len(examples) == 2
    for example, (_, text) in zip(examples, articles[1:]):
        ids = module.tokenizer(" ".join(text.split()), add_special_tokens=False)["input_ids"]
        assert example["prefix_end"] == module.tokenizer.decode(ids[32:40])
        assert example["true_continuation"] == module.tokenizer.decode(ids[40:45])
        assert isinstance(example["generated"], str)
    table = long_text.format_tables({"generate": examples})
    assert f"...{examples[0]['prefix_end']}" in table and f"  generated: {examples[1]['generated']}" in table


def test_long_document_queries_come_from_deep_inside_held_out_articles(monkeypatch: pytest.MonkeyPatch):
    from benchmarks import local_tasks
    from glae_st import corpora

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


def test_long_text_refuses_a_window_not_shorter_than_the_prefix(capsys: pytest.CaptureFixture[str]):
    from benchmarks import long_text

    with pytest.raises(SystemExit) as exit_info:
        long_text.main(["--window", "256", "--prefixes", "1024", "256"])
    assert exit_info.value.code == 2
    assert "error: --window (256) must be shorter than --prefixes (256)." in capsys.readouterr().err


def test_long_text_knows_only_the_held_out_splits(capsys: pytest.CaptureFixture[str]):
    from benchmarks import long_text

    with pytest.raises(SystemExit) as exit_info:
        long_text.main(["--split", "train", "--parts", "lm"])  # training articles are not held out
    assert exit_info.value.code == 2
    assert "argument --split: invalid choice: 'train' (choose from 'dev', 'test')" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("glae", "glae"),
        ("runs/autoregembed-smollm2-135m", "autoregembed-smollm2-135m"),
        ("runs/brown/final", "brown/final"),
        ("runs/brown/checkpoint-300", "brown/checkpoint-300"),
    ],
)
def test_display_name_keeps_the_run_of_final_and_checkpoint_folders(name: str, label: str):
    assert common.display_name(name) == label


def test_decode_benchmark_refuses_models_that_would_share_a_label():
    with pytest.raises(SystemExit, match="share a label"):
        decode_accuracy.main(["--models", "runs/a/final", "other/a/final"])


def test_decode_benchmark_refuses_a_beam_width_below_one():
    with pytest.raises(SystemExit, match=r"--num-beams must be at least 1, got 0"):
        decode_accuracy.main(["--models", "glae", "--num-beams", "0"])
    with pytest.raises(SystemExit, match=r"--refinement-steps must be at least 0, got -1"):
        decode_accuracy.main(["--models", "glae", "--refinement-steps", "-1"])


def test_decode_benchmark_decodes_greedily_or_with_the_model_setting_and_the_command_line_wins(
    tiny_model: SentenceTransformer,
):
    tiny_model[0].decoding = {"num_candidates": 16, "refinement_steps": 1}
    greedy = {"num_beams": 1, "num_candidates": 1, "refinement_steps": 0}
    plain = decode_accuracy.parse_args(["--models", "glae"])
    assert decode_accuracy.decoding_setting(tiny_model, plain) == greedy
    assert decode_accuracy.setting_label(greedy) == ""
    own_args = decode_accuracy.parse_args(["--models", "glae", "--model-decoding"])
    own = decode_accuracy.decoding_setting(tiny_model, own_args)
    assert own == {"num_beams": 1, "num_candidates": 16, "refinement_steps": 1}
    assert decode_accuracy.setting_label(own) == " (rerank 16) (refine 1)"
    mixed = decode_accuracy.parse_args(["--models", "glae", "--model-decoding", "--refinement-steps", "0"])
    assert decode_accuracy.decoding_setting(tiny_model, mixed) == {**own, "refinement_steps": 0}


def test_throughput_decode_timing_scores_the_decodes_and_tables_show_every_ratio(tiny_model: SentenceTransformer):
    texts = ["A cat sits.", "Stocks fell."]
    decoded = throughput.measure_decode(tiny_model, texts, batch_size=2, repeats=2, max_new_tokens=3)
    assert decoded["texts"] == 2 and len(decoded["seconds"]) == 2
    assert decoded["texts_per_second"] == pytest.approx(2 / np.median(decoded["seconds"]))
    assert 0.0 <= decoded["token_f1"] <= 1.0 and decoded["exact_match"] == 0.0  # 3 tokens cannot spell either text
    encode = {"texts": 2, "sentences_per_second": 10.0, "peak_rss_mb": 1.0, "compute_dtype": "torch.bfloat16"}
    results = {
        "encode/short": {
            "glae": {**encode, "speedup_vs_glae_fp32": 2.0, "speedup_vs_mean_pooling": 4.0, "speedup_vs_minilm": 0.25}
        },
        "decode/short": {"glae": {**decoded, "peak_rss_mb": 1.0, "compute_dtype": "torch.bfloat16"}},
        "quality": {"glae": {"stsb_test_spearman": 80.0, "compute_dtype": "torch.bfloat16", "peak_rss_mb": 1.0}},
    }
    table = throughput.format_table(results)
    assert "| encode | short (~15 tokens) | glae | bfloat16 | 2 | 10.0 | 2.00x | 4.00x | 0.25x | 1 |" in table
    assert f"| glae | bfloat16 | 80.00 | {100 * decoded['token_f1']:.1f} | 0.0 % |" in table


def test_trec_and_bible_tasks_build_mteb_layouts_from_the_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from benchmarks import local_tasks
    from glae_st import corpora
    from training import data as training_data

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
    bible = local_tasks.BibleKJVWEBBitextMining()
    bible.load_data()
    assert bible.dataset["test"]["sentence1"] == ["Verse 0 thou art.", "Verse 20 thou art."]
    assert bible.dataset["test"]["sentence2"] == ["Verse 0 you are.", "Verse 20 you are."]
    training_pairs = training_data.bible_paraphrase_pairs(seed=0)
    held_out = set(bible.dataset["test"]["sentence1"]) | set(bible.dataset["test"]["sentence2"])
    assert len(training_pairs) == 36 and not held_out & (
        set(training_pairs["anchor"]) | set(training_pairs["positive"])
    )
