"""Iterative embedding of long texts (paper Fig. 3) on the tiny model: the recurrence, computed by hand."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from benchmarks import long_documents
from glae_st import GLAEEmbedding
from glae_st.encoding import LEAD_CHUNK_WEIGHT

LONG = "The quick brown fox jumps over the lazy dog. " * 3 + "Rain is expected in the north tomorrow."
SHORT = "A cat sits on the mat."


@pytest.fixture
def iterative_model(tiny_backbone) -> SentenceTransformer:
    torch.manual_seed(0)
    return SentenceTransformer(
        modules=[GLAEEmbedding(tiny_backbone, max_seq_length=8, long_text="iterative")], device="cpu"
    )


def test_recurrence_matches_the_hand_computation(iterative_model, fig3_by_hand):
    expected, chunk_count = fig3_by_hand(iterative_model[0], LONG)
    assert chunk_count >= 3
    torch.testing.assert_close(
        iterative_model.encode([LONG], convert_to_tensor=True)[0], expected, atol=1e-5, rtol=1e-5
    )


def test_texts_with_different_chunk_counts_batch_like_singles(iterative_model):
    texts = [LONG, SHORT, LONG[:60]]
    batched = iterative_model.encode(texts)
    singles = np.stack([iterative_model.encode([text])[0] for text in texts])
    np.testing.assert_allclose(batched, singles, atol=1e-5, rtol=1e-5)
    iterative_model[0].padding_side = "right"
    np.testing.assert_allclose(iterative_model.encode(texts), batched, atol=1e-5, rtol=1e-5)


def test_one_chunk_texts_are_embedded_as_in_truncate_mode(iterative_model, tiny_backbone):
    truncating = SentenceTransformer(modules=[GLAEEmbedding(tiny_backbone, max_seq_length=8)], device="cpu")
    truncating[0].bridge.load_state_dict(iterative_model[0].bridge.state_dict())
    text = "A cat sits."
    np.testing.assert_allclose(iterative_model.encode([text]), truncating.encode([text]), atol=1e-6)


def test_long_text_mode_is_saved_and_checked(iterative_model, tiny_backbone, tmp_path):
    import glae_st

    iterative_model.save(str(tmp_path / "iterative"))
    assert glae_st.load_model(str(tmp_path / "iterative"))[0].long_text == "iterative"
    with pytest.raises(ValueError, match="long_text must be one of"):
        GLAEEmbedding(tiny_backbone, long_text="chunked")  # type: ignore[arg-type]


def test_bad_chunk_sizes_and_chunks_are_refused(iterative_model):
    module = iterative_model[0]
    for size in (0, -1):
        with pytest.raises(ValueError, match=r"max_seq_length \(the chunk size\) must be a positive integer"):
            iterative_model.max_seq_length = size
    with pytest.raises(ValueError, match="does not fit the backbone's context"):
        iterative_model.max_seq_length = module.max_text_tokens + 1
    assert module.max_seq_length == 8  # a refused size changes nothing
    previous = iterative_model.encode([SHORT], convert_to_tensor=True)
    with pytest.raises(ValueError, match="Chunk 0 has 0 tokens"):
        module.iterate(previous, [[]])
    with pytest.raises(ValueError, match=f"Chunk 0 has {module.max_text_tokens + 1} tokens"):
        module.iterate(previous, [[5] * (module.max_text_tokens + 1)])
    with pytest.raises(ValueError, match="only whitespace"):
        iterative_model.encode([LONG, " \n\t "])


def test_the_default_chunk_is_the_backbone_context(tiny_backbone):
    module = GLAEEmbedding(tiny_backbone)
    assert module.max_seq_length == module.max_text_tokens
    assert module.max_text_tokens == 512 - len(module.iterate_prefix_ids) - 1 - len(module.iterate_suffix_ids) - len(
        module.encode_suffix_ids
    )


def test_training_through_the_recurrence_teaches_it_to_carry_every_chunk(wide_tiny_backbone, train_toy_autoencoder):
    """Fig. 3 training: with long_text="iterative" the reconstruction target is the whole text, so after a few
    steps the embedding built chunk by chunk decodes back to all of it."""
    import glae_st

    torch.manual_seed(0)
    module = GLAEEmbedding(wide_tiny_backbone, max_seq_length=6, long_text="iterative")
    texts = ["The quick brown fox jumps over the lazy dog.", "Rain is expected in the north tomorrow."]
    features = module.preprocess(texts)
    assert all(len(chunks) >= 1 for chunks in features["continuation_ids"])  # every text spans several chunks
    assert module.text_token_ids(features) == [module.tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    model, value = train_toy_autoencoder(module, texts)
    assert value < 0.05
    assert glae_st.decode(model, model.encode(texts), max_new_tokens=16) == texts


def test_fig3_sft_rows_cover_every_chunk_after_the_first(tiny_backbone):
    from training.data import EMBEDDING_PLACEHOLDER, fig3_sft_rows

    module = GLAEEmbedding(tiny_backbone, max_seq_length=8)
    rows = fig3_sft_rows([LONG, SHORT], module.tokenizer, chunk_tokens=8)
    chunks = -(-len(module.tokenizer(LONG, add_special_tokens=False).input_ids) // 8)
    assert rows["chunk_index"] == list(range(1, chunks))  # SHORT fits in one chunk: no row
    assert rows[0]["input"].startswith(
        "Encode these embedding and text into 1-word length embedding: <embedding>" + EMBEDDING_PLACEHOLDER
    )
    assert rows[0]["response"] == "<embedding>"


def test_iterative_encoding_warns_unless_the_model_was_trained_for_the_recurrence(iterative_model, caplog):
    with caplog.at_level(logging.WARNING):
        iterative_model.encode([LONG, LONG], batch_size=1)
    assert caplog.text.count("not trained for the recurrence") == 1  # once per encode call
    caplog.clear()
    iterative_model[0].trained_recurrence = True
    with caplog.at_level(logging.WARNING):
        iterative_model.encode([LONG])
    assert "not trained for the recurrence" not in caplog.text


def chunk_vectors_of(module: GLAEEmbedding, text: str) -> torch.Tensor:
    """The embeddings of ``text``'s chunks of ``max_seq_length`` tokens, each as a short text."""
    ids = module.tokenizer(text, add_special_tokens=False).input_ids
    size = module.max_seq_length
    return module.embed_token_ids([ids[i : i + size] for i in range(0, len(ids), size)], iterative=False).float()


ONE_CHUNK_TEXTS = ["A cat sits.", "Rain today."]
"""Texts of one chunk of 8 tokens."""


def test_chunk_mean_keeps_one_chunk_texts_to_the_bit_and_averages_longer_ones(lora_model):
    module = lora_model[0]
    module.max_seq_length = 8
    long = "The quick brown fox jumps over the lazy dog. " * 3
    lora_model.eval()
    truncated_short = lora_model.encode(ONE_CHUNK_TEXTS, convert_to_tensor=True)
    truncated = lora_model.encode(ONE_CHUNK_TEXTS + [long], convert_to_tensor=True)
    module.long_text = "chunk_mean"
    assert torch.equal(lora_model.encode(ONE_CHUNK_TEXTS, convert_to_tensor=True), truncated_short)
    averaged = lora_model.encode(ONE_CHUNK_TEXTS + [long], convert_to_tensor=True)
    # in a batch with a long text's chunks, a short text's row meets the same kernels on more rows
    assert torch.allclose(averaged[:2], truncated[:2], atol=1e-5)
    chunk_vectors = chunk_vectors_of(module, long)
    assert len(chunk_vectors) > 1
    cosine = torch.nn.functional.cosine_similarity(averaged[2], chunk_vectors.float().mean(dim=0), dim=0)
    assert cosine > 0.9999
    assert torch.isclose(averaged[2].norm(), chunk_vectors.float().norm(dim=1).mean(), rtol=1e-4)
    assert not torch.allclose(averaged[2], truncated[2])


def test_lead_mean_counts_the_first_chunk_twice_as_the_benchmark_scored_it(lora_model):
    """long_text="lead_mean": one-chunk texts keep their vectors to the bit; a longer text points where the
    benchmark's lead2_mean of its chunk vectors points (the mode chosen on dev is the mode the library computes),
    at the chunks' mean norm, and closer to its first chunk than chunk_mean is."""
    module = lora_model[0]
    module.max_seq_length = 8
    long = "The quick brown fox jumps over the lazy dog. Stocks fell on Monday in a quiet market. " * 2
    lora_model.eval()
    truncated_short = lora_model.encode(ONE_CHUNK_TEXTS, convert_to_tensor=True)
    chunk_vectors = chunk_vectors_of(module, long)
    assert len(chunk_vectors) > 2
    module.long_text = "chunk_mean"
    averaged = lora_model.encode([long], convert_to_tensor=True)[0]
    module.long_text = "lead_mean"
    assert torch.equal(lora_model.encode(ONE_CHUNK_TEXTS, convert_to_tensor=True), truncated_short)
    lead = lora_model.encode([long], convert_to_tensor=True)[0]
    expected = torch.from_numpy(long_documents.lead_mean(chunk_vectors.numpy(), LEAD_CHUNK_WEIGHT))
    assert torch.nn.functional.cosine_similarity(lead, expected, dim=0) > 0.9999
    assert torch.isclose(lead.norm(), chunk_vectors.norm(dim=1).mean(), rtol=1e-4)
    first = chunk_vectors[0]
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(lead, first, dim=0) > cosine(averaged, first, dim=0)


def test_an_unknown_long_text_mode_is_refused_on_assignment(tiny_model):
    with pytest.raises(ValueError, match="chunk_mean"):
        tiny_model[0].long_text = "iterativ"
    assert tiny_model[0].long_text == "truncate"


def test_chunk_mean_features_give_back_every_token_of_each_text(tiny_model):
    module = tiny_model[0]
    module.max_seq_length = 4
    module.long_text = "chunk_mean"
    texts = ["The quick brown fox jumps over the lazy dog again.", "A cat.", "Rain is expected in the north."]
    features = module.preprocess(texts)
    assert sum(features["chunk_counts"]) == len(features["input_ids"]) > len(texts)
    assert module.text_token_ids(features) == [module.tokenizer(text, add_special_tokens=False).input_ids for text in texts]
