"""``python -m benchmarks.decode_accuracy``: fidelity by length bucket and noise level, the held-out texts, the tiny
model's table and plot, reuse of earlier results, the decode setting, and the argument checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer
from transformers import AutoTokenizer

from benchmarks import decode_accuracy


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
    # "Stocks rose." keeps 2 of its 3 tokens and 2 of the reference's 6: token F1 4/9, and 1 for the perfect decode
    assert partial["token_f1"] == pytest.approx(13 / 18)
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


def test_held_out_texts_are_bucketed_by_their_token_count(tiny_backbone: str, news_articles: list[str]):
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    texts = decode_accuracy.held_out_texts(tokenizer, per_bucket=2, articles=news_articles)
    assert texts, "no texts"
    for text in texts:
        assert text.n_tokens == len(tokenizer(text.text, add_special_tokens=False)["input_ids"])
        assert text.bucket == decode_accuracy.bucket_of(text.n_tokens)
    counts = {bucket: sum(text.bucket == bucket for text in texts) for bucket in decode_accuracy.BUCKETS}
    assert max(counts.values()) <= 2
    assert any(text.text.count(".") > 1 for text in texts), "runs of several sentences are candidates too"


def test_evaluate_scores_a_faithful_autoencoder_as_perfect(tiny_backbone: str, news_articles: list[str]):
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    texts = decode_accuracy.held_out_texts(tokenizer, per_bucket=3, articles=news_articles)
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
        lower = max((bound for bound in decode_accuracy.BUCKETS if bound < int(bucket)), default=0)
        assert lower / 2 < metrics["tokens_per_vector"] <= int(bucket) / 2  # texts of the bucket, two vectors each
    bucket_seconds = {int(bucket): metrics["decode_seconds"] for bucket, metrics in results["buckets"].items()}
    assert all(seconds > 0 for seconds in bucket_seconds.values())
    assert results["overall"]["decode_seconds"] == pytest.approx(sum(bucket_seconds.values()))
    short_seconds = [s for bucket, s in bucket_seconds.items() if bucket <= decode_accuracy.SHORT_TEXT_TOKENS]
    assert results["short"]["decode_seconds"] == pytest.approx(sum(short_seconds))


def test_decode_benchmark_on_tiny_glae_writes_table_and_plot(
    tiny_model: SentenceTransformer, tiny_backbone: str, news_articles: list[str], tmp_path: Path
):
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    texts = decode_accuracy.held_out_texts(tokenizer, per_bucket=1, articles=news_articles)
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
