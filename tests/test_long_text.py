"""Iterative embedding of long texts (paper Fig. 3) on the tiny model: the recurrence, computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from glae_st import GLAEEmbedding

LONG = "The quick brown fox jumps over the lazy dog. " * 3 + "Rain is expected in the north tomorrow."
SHORT = "A cat sits on the mat."


@pytest.fixture
def iterative_model(tiny_backbone) -> SentenceTransformer:
    torch.manual_seed(0)
    return SentenceTransformer(modules=[GLAEEmbedding(tiny_backbone, max_seq_length=8, long_text="iterative")], device="cpu")


def by_hand(module: GLAEEmbedding, text: str) -> torch.Tensor:
    """e_1 = Embed(chunk_1); e_k = Embed(e_{k-1} + chunk_k), each the full model's output_hidden_states[-2][-1]."""
    ids = module.tokenizer(text, add_special_tokens=False).input_ids
    chunks = [ids[i : i + 8] for i in range(0, len(ids), 8)]
    embed = module.causal_lm.get_input_embeddings()
    with torch.no_grad():
        first = torch.tensor([module.encode_prefix_ids + chunks[0] + module.encode_suffix_ids])
        state = module.causal_lm(first, output_hidden_states=True).hidden_states[-2][0, -1]
        for chunk in chunks[1:]:
            inputs = torch.cat(
                [
                    embed(torch.tensor(module.iterate_prefix_ids)),
                    module.bridge(state)[None],
                    embed(torch.tensor(module.iterate_suffix_ids + chunk + module.encode_suffix_ids)),
                ]
            )[None]
            state = module.causal_lm(inputs_embeds=inputs, output_hidden_states=True).hidden_states[-2][0, -1]
    return state, len(chunks)


def test_recurrence_matches_the_hand_computation(iterative_model):
    expected, chunk_count = by_hand(iterative_model[0], LONG)
    assert chunk_count >= 3
    torch.testing.assert_close(iterative_model.encode([LONG], convert_to_tensor=True)[0], expected, atol=1e-5, rtol=1e-5)


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
    with pytest.raises(ValueError, match="long_text must be 'truncate' or 'iterative'"):
        GLAEEmbedding(tiny_backbone, long_text="chunked")  # type: ignore[arg-type]
