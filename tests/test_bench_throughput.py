"""``python -m benchmarks.throughput``: timed encodes and decodes of the tiny model, and the table of every ratio."""

from __future__ import annotations

from sentence_transformers import SentenceTransformer
from transformers import AutoTokenizer

from benchmarks import throughput


def test_throughput_measure_times_repeats(
    tiny_model: SentenceTransformer, tiny_backbone: str, news_articles: list[str]
):
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    short = throughput.benchmark_texts(tokenizer, "short", 10, articles=news_articles)
    assert short and all(abs(len(tokenizer(t)["input_ids"]) - 15) <= throughput.SHORT_TOLERANCE for t in short)
    result = throughput.measure(tiny_model, short, batch_size=2, repeats=2, warmup=1)
    assert result["texts"] == len(short) and len(result["seconds"]) == 2
    seconds = result["seconds"]
    assert len(short) / max(seconds) <= result["sentences_per_second"] <= len(short) / min(seconds)  # a repeat's rate


def test_throughput_decode_timing_scores_the_decodes_and_tables_show_every_ratio(tiny_model: SentenceTransformer):
    texts = ["A cat sits.", "Stocks fell."]
    decoded = throughput.measure_decode(tiny_model, texts, batch_size=2, repeats=2, max_new_tokens=3)
    assert decoded["texts"] == 2 and len(decoded["seconds"]) == 2
    assert 2 / max(decoded["seconds"]) <= decoded["texts_per_second"] <= 2 / min(decoded["seconds"])
    assert 0.0 <= decoded["token_f1"] <= 1.0 and decoded["exact_match"] == 0.0  # 3 tokens cannot spell either text
    encode = {"texts": 2, "sentences_per_second": 10.0, "peak_rss_mb": 1.0, "compute_dtype": "torch.bfloat16"}
    results = {
        "encode/short": {
            "glae": {**encode, "speedup_vs_glae_fp32": 2.0, "speedup_vs_mean_pooling": 4.0, "speedup_vs_minilm": 0.25}
        },
        "decode/short": {
            "glae": {**decoded, "token_f1": 0.25, "peak_rss_mb": 1.0, "compute_dtype": "torch.bfloat16"}
        },
        "quality": {"glae": {"stsb_test_spearman": 80.0, "compute_dtype": "torch.bfloat16", "peak_rss_mb": 1.0}},
    }
    table = throughput.format_table(results)
    assert "| encode | short (~15 tokens) | glae | bfloat16 | 2 | 10.0 | 2.00x | 4.00x | 0.25x | 1 |" in table
    assert "| glae | bfloat16 | 80.00 | 25.0 | 0.0 % |" in table  # STS-B x100, decode token F1 x100, exact match
