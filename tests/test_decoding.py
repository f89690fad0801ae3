"""Decoding: batched generation from vectors, clear errors on bad embeddings, and a toy model that learns it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import glae_st
from glae_st import GLAEEmbedding

TEXTS = ["A cat sits on the mat.", "Stocks fell sharply on Monday.", "Rain is expected in the north tomorrow."]


@pytest.mark.parametrize(("count", "batch_size", "num_beams"), [(1, 8, 1), (3, 2, 1), (2, 8, 2)])
def test_decode_returns_one_string_per_embedding(tiny_model, count, batch_size, num_beams):
    embeddings = tiny_model.encode(TEXTS[:count])
    texts = glae_st.decode(tiny_model, embeddings, max_new_tokens=4, batch_size=batch_size, num_beams=num_beams)
    assert len(texts) == count and all(isinstance(text, str) for text in texts)
    module_texts = glae_st.decode(tiny_model[0], torch.as_tensor(embeddings), max_new_tokens=4, num_beams=num_beams)
    assert texts == module_texts  # the module alone, and a torch tensor, decode the same


def test_decode_batches_give_the_same_text_as_one_by_one(tiny_model):
    embeddings = tiny_model.encode(TEXTS)
    together = glae_st.decode(tiny_model, embeddings, max_new_tokens=6, batch_size=3)
    alone = [glae_st.decode(tiny_model, embeddings[i : i + 1], max_new_tokens=6)[0] for i in range(3)]
    assert together == alone


def test_the_lm_head_reads_contiguous_hidden_states_and_the_hook_is_removed(tiny_model):
    # a strided (batch, 1, hidden) view makes torch.matmul copy the whole head once per row (1.8 GB in bf16 at 32 rows)
    head = tiny_model[0].causal_lm.get_output_embeddings()
    seen = []
    recorder = head.register_forward_hook(lambda _, args, output: seen.append(args[0].is_contiguous()))
    try:
        glae_st.decode(tiny_model, tiny_model.encode(TEXTS), max_new_tokens=3)
    finally:
        recorder.remove()
    assert len(seen) >= 1 and all(seen)
    assert not head._forward_pre_hooks  # generation leaves the head as it found it


@pytest.mark.parametrize(("dtype", "attention"), [("bfloat16", "eager"), ("float32", "sdpa")])
def test_bf16_generation_on_cpu_uses_eager_attention_and_restores_it(tiny_model, dtype, attention):
    module = tiny_model[0]
    before, dtype_before = module.base_lm.config._attn_implementation, module.inference_dtype
    seen = []
    recorder = module.causal_lm.get_output_embeddings().register_forward_hook(
        lambda *_: seen.append(module.base_lm.config._attn_implementation)
    )
    module.inference_dtype = dtype
    try:
        glae_st.decode(tiny_model, tiny_model.encode(TEXTS[:2]), max_new_tokens=2)
    finally:
        recorder.remove()
        module.inference_dtype = dtype_before
    assert before == "sdpa" and set(seen) == {attention}
    assert module.base_lm.config._attn_implementation == before


@pytest.mark.parametrize(
    ("make_bad", "error", "message"),
    [
        (lambda e: e[0], ValueError, r"one vector of shape \(64,\).*embeddings\[None\]"),
        (lambda e: e[:, :32], ValueError, "size 32, but this model's embeddings have size 64"),
        (lambda e: e[:0], ValueError, "no embeddings"),
        (lambda e: e[None], ValueError, r"shape \(n, 64\)"),
        (lambda e: np.where(np.arange(64) == 3, np.nan, e), ValueError, r"NaN or inf in rows \[0, 1\]"),
        (lambda e: np.full_like(e, np.inf), ValueError, "NaN or inf"),
        (lambda e: e.astype(np.int64), TypeError, "floating point, got dtype torch.int64"),
        (lambda e: "some text", TypeError, "not text"),
        (lambda e: [[1.0, 2.0], [3.0]], TypeError, "Could not read embeddings"),
    ],
)
def test_bad_embeddings_get_clear_errors(tiny_model, make_bad, error, message):
    embeddings = tiny_model.encode(TEXTS[:2])
    with pytest.raises(error, match=message):
        glae_st.decode(tiny_model, make_bad(embeddings))


def test_bad_decode_arguments_and_models(tiny_model):
    embeddings = tiny_model.encode(TEXTS[:1])
    with pytest.raises(ValueError, match="max_new_tokens must be a positive integer"):
        glae_st.decode(tiny_model, embeddings, max_new_tokens=0)
    with pytest.raises(ValueError, match="num_beams must be a positive integer"):
        glae_st.decode(tiny_model, embeddings, num_beams=0)
    with pytest.raises(TypeError, match="Expected a GLAE SentenceTransformer"):
        glae_st.decode(torch.nn.Linear(2, 2), embeddings)  # type: ignore[arg-type]


def test_float64_and_float16_embeddings_are_accepted(tiny_model):
    embeddings = tiny_model.encode(TEXTS[:1])
    reference = glae_st.decode(tiny_model, embeddings, max_new_tokens=3)
    assert glae_st.decode(tiny_model, embeddings.astype(np.float64), max_new_tokens=3) == reference
    assert len(glae_st.decode(tiny_model, embeddings.astype(np.float16), max_new_tokens=3)) == 1


def test_a_toy_model_learns_to_reconstruct_its_texts(wide_tiny_backbone, train_toy_autoencoder, tmp_path):
    """Train the tiny model on four texts with L1 + L2; decoding must then give them back, also after save/load."""
    torch.manual_seed(0)
    texts = TEXTS + ["She plays the violin every evening."]
    tiny_model, value = train_toy_autoencoder(GLAEEmbedding(wide_tiny_backbone, max_seq_length=64), texts)
    assert value < 0.05
    assert glae_st.decode(tiny_model, tiny_model.encode(texts), max_new_tokens=16) == texts
    tiny_model.save(str(tmp_path / "toy"))
    reloaded = glae_st.load_model(str(tmp_path / "toy"))
    assert glae_st.decode(reloaded, reloaded.encode(texts), max_new_tokens=16) == texts


def test_round_trip_decoding_keeps_the_candidate_closest_to_the_input(tiny_model, monkeypatch):
    from glae_st import decoding

    embeddings = tiny_model.encode(TEXTS[:2])
    greedy = glae_st.decode(tiny_model, embeddings, max_new_tokens=5)
    texts, scores = glae_st.decode(tiny_model, embeddings, max_new_tokens=5, return_scores=True)
    assert texts == greedy and len(scores) == 2 and all(-1.0 <= score <= 1.0 + 1e-6 for score in scores)
    again = tiny_model.encode([text or "x" for text in texts], convert_to_tensor=True)
    expected = torch.nn.functional.cosine_similarity(again, torch.as_tensor(embeddings))
    for text, score, cosine in zip(texts, scores, expected.tolist()):
        assert score == pytest.approx(cosine, abs=1e-4) if text else score == -1.0
    # the reranker keeps, per input, the candidate with the highest round-trip cosine among the beams
    seen: list[list[str]] = []
    real = decoding.round_trip

    def spy(module, vectors, candidates):
        seen.append(list(candidates))
        return real(module, vectors, candidates)

    monkeypatch.setattr(decoding, "round_trip", spy)
    reranked, reranked_scores = glae_st.decode(
        tiny_model, embeddings, max_new_tokens=5, num_candidates=3, return_scores=True
    )
    assert len(seen[0]) == 6  # 3 candidates for each of 2 vectors
    for row in range(2):
        candidates = seen[0][row * 3 : row * 3 + 3]
        cosines, _ = real(tiny_model[0], torch.as_tensor(embeddings[row : row + 1]).repeat(3, 1), candidates)
        assert reranked[row] == candidates[int(cosines.argmax())]
        assert reranked_scores[row] == pytest.approx(cosines.max().item(), abs=1e-5)
        assert reranked_scores[row] >= scores[row] - 1e-5 or greedy[row] not in candidates


def test_the_search_keeps_the_first_finished_candidates_and_plain_decoding_the_default_stop(tiny_model, monkeypatch):
    """Round-trip candidates are the first K hypotheses to finish (transformers' ``early_stopping=True``); greedy and
    plain beam search keep transformers' default stopping heuristic."""
    module = tiny_model[0]
    calls: list[dict] = []
    real = module.generate

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "generate", spy)
    embeddings = tiny_model.encode(TEXTS[:2])
    glae_st.decode(tiny_model, embeddings, max_new_tokens=4)
    glae_st.decode(tiny_model, embeddings, max_new_tokens=4, num_beams=3)
    glae_st.decode(tiny_model, embeddings, max_new_tokens=4, num_candidates=3)
    assert [(call["num_beams"], call["num_return_sequences"], call["early_stopping"]) for call in calls] == [
        (1, 1, False),
        (3, 1, False),
        (3, 3, True),
    ]


def test_normalised_embeddings_are_rescaled_or_refused(tiny_model):
    raw = tiny_model.encode(TEXTS[:2])
    normalised = tiny_model.encode(TEXTS[:2], normalize_embeddings=True)
    with pytest.raises(ValueError, match="L2-normalised.*normalize_embeddings=False"):
        glae_st.decode(tiny_model, normalised, max_new_tokens=4)
    norm = float(np.linalg.norm(raw, axis=1).mean())
    tiny_model[0].embedding_norm = norm
    rescaled = glae_st.decode(tiny_model, normalised, max_new_tokens=4)
    assert rescaled == glae_st.decode(tiny_model, normalised * norm, max_new_tokens=4)


def test_refinement_decodes_the_input_pushed_away_from_the_best_text_and_keeps_the_best_of_all_rounds(
    tiny_model, monkeypatch
):
    from glae_st import decoding

    embeddings = torch.as_tensor(tiny_model.encode(TEXTS[:2]))
    queries: list[torch.Tensor] = []
    rounds: list[tuple[list[str], torch.Tensor, torch.Tensor]] = []
    real_generate, real_round_trip = decoding.generate_texts, decoding.round_trip

    def generate_spy(module, vectors, *args):
        queries.append(vectors.clone())
        return real_generate(module, vectors, *args)

    def round_trip_spy(module, vectors, candidates):
        cosines, again = real_round_trip(module, vectors, candidates)
        rounds.append((list(candidates), cosines, again))
        return cosines, again

    monkeypatch.setattr(decoding, "generate_texts", generate_spy)
    monkeypatch.setattr(decoding, "round_trip", round_trip_spy)
    texts, scores = glae_st.decode(
        tiny_model, embeddings, max_new_tokens=5, num_candidates=2, refinement_steps=2, return_scores=True
    )
    assert len(queries) == 3 and torch.equal(queries[0], embeddings)
    pool = {row: [] for row in range(2)}
    for step, (candidates, cosines, again) in enumerate(rounds):
        for index, (text, cosine) in enumerate(zip(candidates, cosines.tolist())):
            pool[index // 2].append((cosine, text, again[index]))
        if step < 2:  # the next query: 2v - e(best so far), e(best) scaled to the norm of v
            for row in range(2):
                _, _, best = max(pool[row], key=lambda entry: entry[0])
                expected = 2 * embeddings[row] - best * embeddings[row].norm() / best.norm()
                assert torch.allclose(queries[step + 1][row], expected, atol=1e-4)
    for row in range(2):
        best_cosine, best_text, _ = max(pool[row], key=lambda entry: entry[0])
        assert texts[row] == best_text and scores[row] == pytest.approx(best_cosine, abs=1e-6)
    # more rounds only add candidates, so the chosen round-trip cosine never falls
    _, without = glae_st.decode(tiny_model, embeddings, max_new_tokens=5, num_candidates=2, return_scores=True)
    assert all(score >= earlier - 1e-6 for score, earlier in zip(scores, without))


def test_a_model_decodes_with_its_own_saved_setting_unless_the_call_overrides_it(tiny_model, tmp_path, monkeypatch):
    from glae_st import decoding

    embeddings = tiny_model.encode(TEXTS[:2])
    settings: list[dict[str, int]] = []
    real_search = decoding.round_trip_search

    def search_spy(module, vectors, max_new_tokens, **setting):
        settings.append(setting)
        return real_search(module, vectors, max_new_tokens, **setting)

    monkeypatch.setattr(decoding, "round_trip_search", search_spy)
    greedy = glae_st.decode(tiny_model, embeddings, max_new_tokens=4)
    assert settings == []  # no setting anywhere: plain greedy decoding, no round trip
    tiny_model[0].decoding = {"num_candidates": 3, "refinement_steps": 1}
    tiny_model.save(str(tmp_path / "chosen"))
    reloaded = glae_st.load_model(str(tmp_path / "chosen"))
    assert reloaded[0].decoding == {"num_candidates": 3, "refinement_steps": 1}
    own = glae_st.decode(reloaded, embeddings, max_new_tokens=4)
    assert settings[-1] == {"num_beams": 1, "num_candidates": 3, "refinement_steps": 1}
    assert own == glae_st.decode(tiny_model, embeddings, max_new_tokens=4, num_candidates=3, refinement_steps=1)
    glae_st.decode(reloaded, embeddings, max_new_tokens=4, num_candidates=2)
    assert settings[-1] == {"num_beams": 1, "num_candidates": 2, "refinement_steps": 1}
    calls = len(settings)
    assert glae_st.decode(reloaded, embeddings, max_new_tokens=4, num_candidates=1, refinement_steps=0) == greedy
    assert len(settings) == calls


@pytest.mark.parametrize(
    ("decoding", "error", "message"),
    [
        ({"beams": 2}, ValueError, "Unknown decoding setting 'beams'; the settings are"),
        ({"refinement_steps": -1}, ValueError, "refinement_steps must be a non-negative integer, got -1"),
        ({"num_candidates": 0}, ValueError, "num_candidates must be a positive integer, got 0"),
        ("greedy", TypeError, "decoding must be a dict of decode\\(\\) settings or None, got 'greedy'"),
    ],
)
def test_a_bad_saved_decoding_setting_is_refused(tiny_backbone, decoding, error, message):
    with pytest.raises(error, match=message):
        GLAEEmbedding(tiny_backbone, decoding=decoding)


@pytest.mark.parametrize("name", ["num_candidates", "max_new_tokens", "num_beams", "batch_size"])
def test_bad_decode_counts_are_refused(tiny_model, name):
    embeddings = tiny_model.encode(TEXTS[:1])
    with pytest.raises(ValueError, match=f"{name} must be a positive integer, got 0"):
        glae_st.decode(tiny_model, embeddings, **{name: 0})


def test_negative_refinement_steps_are_refused(tiny_model):
    with pytest.raises(ValueError, match="refinement_steps must be a non-negative integer, got -1"):
        glae_st.decode(tiny_model, tiny_model.encode(TEXTS[:1]), refinement_steps=-1)
