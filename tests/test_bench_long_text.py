"""``python -m benchmarks.long_text``: continuation NLL, generation from held-out prefixes, the tables and plot, and
the argument checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sentence_transformers import SentenceTransformer

from benchmarks import long_text
from glae_st import corpora
from glae_st.long_text import BoundedContext, compress_context


def test_long_text_continuation_nll_is_the_language_model_loss(
    tiny_model: SentenceTransformer, news_articles: list[str]
):
    """A context without memory is the plain LM: its continuation NLL equals the causal LM's own loss."""
    module = tiny_model[0]
    ids = module.tokenizer(news_articles[0], add_special_tokens=False)["input_ids"]
    prefix, target = ids[:20], ids[20:30]
    with torch.no_grad():
        (nll,) = long_text.continuation_nll(module, [BoundedContext(None, prefix)], [target])
        labels = torch.tensor([[-100] * 20 + target])
        expected = module.causal_lm(torch.tensor([prefix + target]), labels=labels).loss.item()
        (with_memory,) = long_text.continuation_nll(module, compress_context(module, [prefix], window=8), [target])
    assert nll == pytest.approx(expected, rel=1e-4)
    assert with_memory != pytest.approx(nll, rel=1e-4)  # the memory vector and decode prompt change the context


def test_long_text_tables_render(tmp_path: Path):
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
    tiny_model: SentenceTransformer, news_articles: list[str], monkeypatch: pytest.MonkeyPatch
):
    long_articles = [" ".join(news_articles * 3), " ".join(news_articles[::-1] * 3)]
    articles = [("short", "Too short."), ("long", long_articles[0]), ("long2", long_articles[1])]
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


def test_long_text_refuses_a_window_not_shorter_than_the_prefix(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        long_text.main(["--window", "256", "--prefixes", "1024", "256"])
    assert exit_info.value.code == 2
    assert "error: --window (256) must be shorter than --prefixes (256)." in capsys.readouterr().err


def test_long_text_knows_only_the_held_out_splits(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        long_text.main(["--split", "train", "--parts", "lm"])  # training articles are not held out
    assert exit_info.value.code == 2
    assert "argument --split: invalid choice: 'train' (choose from 'dev', 'test')" in capsys.readouterr().err
