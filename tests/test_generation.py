"""Bounded-context generation (paper Fig. 2) on the tiny model: bounded context, batching, and the short-text case."""

from __future__ import annotations

import pytest
import torch
from sentence_transformers import SentenceTransformer

import glae_st
from glae_st import GLAEEmbedding
from glae_st.long_text import compress_context

LONG = "The quick brown fox jumps over the lazy dog. " * 12
SHORT = "A cat sits on the mat."


@pytest.fixture
def chunked_model(tiny_backbone) -> SentenceTransformer:
    torch.manual_seed(0)
    return SentenceTransformer(modules=[GLAEEmbedding(tiny_backbone, max_seq_length=8)], device="cpu")


def prefill_lengths(module: GLAEEmbedding) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    """Record the length of every prompt the decoder reads (calls with an empty KV cache)."""
    lengths: list[int] = []

    def record(_: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        cache = kwargs.get("past_key_values")
        if cache is None or cache.get_seq_length() == 0:
            inputs = kwargs.get("inputs_embeds")
            lengths.append(
                (inputs if inputs is not None else kwargs.get("input_ids", args[0] if args else None)).shape[1]
            )

    return lengths, module.decoder.register_forward_pre_hook(record, with_kwargs=True)


def test_the_context_never_exceeds_window_plus_chunk(chunked_model):
    module = chunked_model[0]
    lengths, hook = prefill_lengths(module)
    try:
        continuation = glae_st.generate_long(chunked_model, [LONG], max_new_tokens=40, window=12)
    finally:
        hook.remove()
    prompt_tokens = len(module.continue_prefix_ids) + 1 + len(module.continue_suffix_ids)
    assert len(module.tokenizer(LONG, add_special_tokens=False).input_ids) > 5 * (12 + 8)
    assert lengths and max(lengths) <= prompt_tokens + 12 + 8
    assert isinstance(continuation[0], str)


def test_a_batch_generates_like_single_texts(chunked_model):
    texts = [LONG, SHORT, LONG[:70]]
    batched = glae_st.generate_long(chunked_model, texts, max_new_tokens=30, window=10)
    singles = [glae_st.generate_long(chunked_model, [text], max_new_tokens=30, window=10)[0] for text in texts]
    assert batched == singles
    assert all(len(chunked_model[0].tokenizer(text).input_ids) >= 25 for text in batched)


def test_a_text_within_the_window_continues_like_plain_greedy_generation(chunked_model):
    module = chunked_model[0]
    ids = module.tokenizer(SHORT, add_special_tokens=False, return_tensors="pt").input_ids
    plain = module.causal_lm.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
    expected = module.tokenizer.decode(plain[0, ids.shape[1] :], skip_special_tokens=True)
    assert glae_st.generate_long(chunked_model, [SHORT], max_new_tokens=6, window=64) == [expected]


def test_the_memory_is_the_iterative_embedding_of_the_tokens_before_the_window(chunked_model):
    module = chunked_model[0]
    ids = module.tokenizer(LONG, add_special_tokens=False).input_ids
    (context,) = compress_context(module, [ids], window=10)
    assert context.window == ids[-10:]
    module.long_text = "iterative"
    expected = chunked_model.encode([module.tokenizer.decode(ids[:-10])], convert_to_tensor=True)[0]
    torch.testing.assert_close(context.memory, expected, atol=1e-5, rtol=1e-5)


def test_bad_arguments_are_refused(chunked_model):
    for bad in (0, -5, 1.5):
        with pytest.raises(ValueError, match="window must be a positive integer"):
            glae_st.generate_long(chunked_model, [SHORT], window=bad)
        with pytest.raises(ValueError, match="max_new_tokens must be a positive integer"):
            glae_st.generate_long(chunked_model, [SHORT], max_new_tokens=bad)
    with pytest.raises(ValueError, match="exceed the backbone's context of 512"):
        glae_st.generate_long(chunked_model, [SHORT], window=510)
    with pytest.raises(ValueError, match="only whitespace"):
        glae_st.generate_long(chunked_model, [SHORT, "   "])
