"""Turning GLAE embeddings back into text: batched generation from vectors with the KV cache."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from tqdm.auto import trange
from transformers import LogitsProcessor, LogitsProcessorList

from glae_st import prompts
from glae_st.module import GLAEEmbedding
from glae_st.util import check_decoding_setting, check_positive_int, resolve_decoding

logger = logging.getLogger(__name__)

FAR_NORM_FACTOR = 1000.0
"""A vector whose norm is this many times larger or smaller than the model's typical embedding norm
(``embedding_norm``) is warned about: it is no embedding of this model and decodes to text that means nothing."""
LOW_ROUND_TRIP = 0.1
"""A decoded text whose round-trip cosine is below this is warned about: it does not encode back to its vector."""


def warn_far_vectors(module: GLAEEmbedding, vectors: torch.Tensor) -> None:
    """Log a warning naming the rows whose norm is zero, or :data:`FAR_NORM_FACTOR` times off the model's typical
    norm (1e-6 to 1e12 when the model records none)."""
    norms = vectors.float().norm(dim=1)
    typical = module.embedding_norm
    low, high = (typical / FAR_NORM_FACTOR, typical * FAR_NORM_FACTOR) if typical else (1e-6, 1e12)
    far = torch.nonzero((norms < low) | (norms > high) | ~torch.isfinite(norms)).flatten().tolist()
    if far:
        logger.warning(
            "Embeddings in rows %s have norms %s, far from this model's embeddings (%s): they are no embeddings of "
            "this model and decode to text that does not encode back to them.",
            far[:10],
            [f"{norms[row].item():.3g}" for row in far[:10]],
            f"about {typical:.4g}" if typical else "no embedding_norm recorded",
        )


def warn_low_round_trips(scores: list[float]) -> None:
    """Log a warning naming the rows whose decoded text has a round-trip cosine near 0 (below
    :data:`LOW_ROUND_TRIP`)."""
    low = [row for row, score in enumerate(scores) if score < LOW_ROUND_TRIP]
    if low:
        logger.warning(
            "The texts decoded from rows %s have round-trip cosine %s (near 0 or below): they do not encode back to "
            "their vectors, which are likely no embeddings of this model (zero, random or far-off vectors).",
            low[:10],
            [round(scores[row], 3) for row in low[:10]],
        )


class NonFiniteScoresError(ValueError):
    """Generation met NaN scores: the model's weights are damaged (most often the backbone cache)."""


class RefuseNaNScores(LogitsProcessor):
    """A logits processor for ``generate``: raise :class:`NonFiniteScoresError` at the first step with NaN scores,
    instead of decoding text from them (-inf is kept: it is how tokens are ruled out)."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if bool(torch.isnan(scores).any()):
            from glae_st.backbone import damaged_weights_hint

            raise NonFiniteScoresError(
                f"Decoding met NaN in the model's next-token scores. {damaged_weights_hint()}"
            )
        return scores


def glae_module(model: SentenceTransformer | GLAEEmbedding) -> GLAEEmbedding:
    """The :class:`GLAEEmbedding` inside a SentenceTransformer (its first module), or the module itself."""
    if isinstance(model, GLAEEmbedding):
        return model
    if isinstance(model, SentenceTransformer) and len(model) and isinstance(model[0], GLAEEmbedding):
        return model[0]
    raise TypeError(
        f"Expected a GLAE SentenceTransformer (first module GLAEEmbedding), got {type(model).__name__}. "
        "Load one with glae_st.load_model(glae_st.DEFAULT_MODEL)."
    )


def validate_embeddings(embeddings: Any, dimension: int) -> torch.Tensor:
    """Return ``embeddings`` as a float tensor of shape (n, dimension), or raise an error that says what is wrong."""
    if isinstance(embeddings, (str, bytes)):
        raise TypeError("decode() takes embeddings (a 2-D array of floats), not text; encode the text first.")
    if isinstance(embeddings, torch.Tensor):
        tensor = embeddings.detach()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(embeddings))
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"Could not read embeddings of type {type(embeddings).__name__} as a 2-D array of floats: {exc}"
            ) from exc
    if tensor.numel() == 0 and tensor.ndim < 2:
        raise ValueError(
            f"No embeddings were given (got an empty {type(embeddings).__name__}); decode() takes a batch of shape "
            f"(n, {dimension}) with n >= 1, as model.encode() returns it."
        )
    if not tensor.is_floating_point():
        raise TypeError(
            f"Embeddings must be floating point, got dtype {tensor.dtype}. Pass the float arrays that "
            "model.encode() returns (integer ids or booleans are not embeddings)."
        )
    if tensor.ndim == 1:
        raise ValueError(
            f"Got one vector of shape {tuple(tensor.shape)}; decode() takes a batch of shape (n, {dimension}). "
            "Wrap it: embeddings[None] or [embedding]."
        )
    if tensor.ndim != 2:
        raise ValueError(f"Embeddings must have shape (n, {dimension}), got {tuple(tensor.shape)}.")
    if tensor.shape[0] == 0:
        raise ValueError("Got no embeddings (shape (0, d)); pass at least one.")
    if tensor.shape[1] != dimension:
        raise ValueError(
            f"Embeddings have size {tensor.shape[1]}, but this model's embeddings have size {dimension}. Were they "
            "made by another model, or with truncate_dim? Decode with the model that encoded them, at full size."
        )
    finite = torch.isfinite(tensor).all(dim=1)
    if not finite.all():
        bad_rows = torch.nonzero(~finite).flatten().tolist()
        raise ValueError(f"Embeddings contain NaN or inf in rows {bad_rows[:10]}; they cannot be decoded.")
    return tensor


def looks_normalised(vectors: torch.Tensor) -> bool:
    """Whether every row has unit L2 norm, as ``encode(..., normalize_embeddings=True)`` returns."""
    norms = vectors.float().norm(dim=1)
    return bool(torch.allclose(norms, torch.ones_like(norms), atol=1e-3))


def restore_norm(module: GLAEEmbedding, vectors: torch.Tensor) -> torch.Tensor:
    """Raw-scale embeddings for decoding: L2-normalised rows are scaled back to the model's typical norm
    (``embedding_norm``, measured when it was trained), since the bridge was trained on raw embeddings; a model
    without that measurement refuses them with an error that says how to get raw ones."""
    if not looks_normalised(vectors):
        return vectors
    if module.embedding_norm is None:
        raise ValueError(
            "These embeddings are L2-normalised, and this model records no embedding_norm to scale them back to its "
            "raw embeddings, which is what it decodes: encode with normalize_embeddings=False (the default)."
        )
    return vectors * module.embedding_norm


@torch.inference_mode()
def decode(
    model: SentenceTransformer | GLAEEmbedding,
    embeddings: Any,
    max_new_tokens: int = 64,
    num_beams: int | None = None,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
    num_candidates: int | None = None,
    refinement_steps: int | None = None,
    return_scores: bool = False,
) -> list[str] | tuple[list[str], list[float]]:
    """Generate the text that each GLAE embedding encodes.

    Each vector is placed at the ``<embedding>`` slot of ``Decode this embedding into text:
    <embedding>{vector}</embedding><text>`` (through the model's bridge) and the backbone generates until
    ``</text>``, in batches, with the KV cache (``transformers`` ``generate``).

    With ``num_candidates=K > 1`` it is a round trip, as vec2text's re-embedding step (Morris et al., 2023, "Text
    Embeddings Reveal (Almost) As Much As Text"): a beam search of width K stops at the first K finished candidates
    per vector, each is encoded again, and the one whose embedding is closest (cosine) to the input wins.
    ``return_scores=True`` also returns that cosine between the input and the re-encoded text of each result: a
    confidence that users can threshold (near 1: the text encodes back to the same vector).

    ``refinement_steps=S`` adds S rounds of correction in the spirit of vec2text's iterative corrector, with no
    trained corrector: a round decodes ``v + (v - e(best))``, the input pushed away from the embedding of the best
    text so far (scaled to the input's norm), so the decoder is asked for what the best text misses; its candidates
    join the pool and the round-trip cosine still picks the winner, so a round never makes the result worse by
    that measure.

    A setting left at None takes the model's own choice (the ``decoding`` of its config, chosen on dev data, as
    ``generation_config.json`` does for ``transformers``), else :data:`GREEDY_DECODING` (greedy). For plain greedy
    decoding of any model, pass ``num_candidates=1, refinement_steps=0``.

    L2-normalised embeddings (``encode(..., normalize_embeddings=True)``) are scaled back to the model's typical
    norm (``embedding_norm`` of the module) before decoding.

    Args:
        model: A GLAE SentenceTransformer or its :class:`GLAEEmbedding` module.
        embeddings: (n, hidden) floats, as returned by ``model.encode`` (numpy, torch or nested lists).
        max_new_tokens: The most tokens generated per text.
        num_beams: Beam width; 1 is greedy decoding (raised to ``num_candidates`` when that is larger).
        batch_size: Vectors decoded together.
        show_progress_bar: Show a progress bar; by default when there is more than one batch.
        num_candidates: Candidates generated per vector (and per refinement round), reranked by round-trip cosine.
        refinement_steps: Correction rounds after the first decode; 0 keeps the first decode's candidates.
        return_scores: Also return the round-trip cosine of each text.

    Returns:
        One string per embedding; with ``return_scores``, ``(texts, scores)``.

    Example::

        model = glae_st.load_model(glae_st.DEFAULT_MODEL)
        texts, scores = glae_st.decode(model, model.encode(["A cat sits on the mat."]), return_scores=True)
        fast = glae_st.decode(model, model.encode(["A cat sits on the mat."]), num_candidates=1, refinement_steps=0)
    """
    module = glae_module(model)
    setting = resolve_decoding(
        module.decoding, num_beams=num_beams, num_candidates=num_candidates, refinement_steps=refinement_steps
    )
    check_positive_int("max_new_tokens", max_new_tokens)
    check_positive_int("batch_size", batch_size)
    for name, value in setting.items():
        check_decoding_setting(name, value)
    vectors = restore_norm(module, validate_embeddings(embeddings, module.get_embedding_dimension()))
    warn_far_vectors(module, vectors)
    if show_progress_bar is None:
        show_progress_bar = len(vectors) > batch_size
    was_training = module.training
    module.eval()
    searches = setting["num_candidates"] > 1 or setting["refinement_steps"] > 0
    texts: list[str] = []
    scores: list[float] = []
    for start in trange(0, len(vectors), batch_size, desc="Decoding", disable=not show_progress_bar):
        batch = vectors[start : start + batch_size].to(module.device)
        if not searches and not return_scores:
            texts += generate_texts(module, batch, max_new_tokens, setting["num_beams"], 1)
            continue
        best_texts, best_scores = round_trip_search(module, batch, max_new_tokens, **setting)
        texts += best_texts
        scores += best_scores
    module.train(was_training)
    warn_low_round_trips(scores)
    return (texts, scores) if return_scores else texts


def generate_texts(
    module: GLAEEmbedding, vectors: torch.Tensor, max_new_tokens: int, num_beams: int, num_return_sequences: int
) -> list[str]:
    """``num_return_sequences`` texts per vector (consecutive), decoded with a beam of ``max(num_beams,
    num_return_sequences)``.

    With several texts per vector, the beam search ends as soon as each vector has a full beam of finished hypotheses
    (``early_stopping=True``): they are candidates for the round trip, not a ranking, and waiting for better-scored
    ones (transformers' default heuristic) cost both time and round-trip fidelity on dev data.
    """
    text_close = module.special_token_ids[prompts.TEXT_CLOSE]
    pad_id = module.tokenizer.pad_token_id if module.tokenizer.pad_token_id is not None else text_close
    with module.inference_autocast():
        inputs_embeds = module.decode_prompt_embeds(vectors)
        generated = module.generate(
            inputs_embeds,
            torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=module.device),
            max_new_tokens=max_new_tokens,
            num_beams=max(num_beams, num_return_sequences),
            num_return_sequences=num_return_sequences,
            early_stopping=num_return_sequences > 1,
            do_sample=False,
            eos_token_id=text_close,
            pad_token_id=pad_id,
            logits_processor=LogitsProcessorList([RefuseNaNScores()]),
        )
    texts = []
    for row in generated.tolist():
        row = row[: row.index(text_close)] if text_close in row else row
        texts.append(module.tokenizer.decode(row, skip_special_tokens=True).strip())
    return texts


def round_trip_search(
    module: GLAEEmbedding,
    vectors: torch.Tensor,
    max_new_tokens: int,
    num_beams: int,
    num_candidates: int,
    refinement_steps: int,
) -> tuple[list[str], list[float]]:
    """The text of each vector whose embedding is closest (cosine) to it among ``num_candidates`` decodes of the
    vector and of each of ``refinement_steps`` corrected queries (see :func:`decode`), with that cosine."""
    best_texts = [""] * len(vectors)
    best_scores = torch.full((len(vectors),), -2.0)
    best_embeddings = vectors.clone()
    queries = vectors
    for step in range(refinement_steps + 1):
        candidates = generate_texts(module, queries, max_new_tokens, num_beams, num_candidates)
        cosines, again = round_trip(module, vectors.repeat_interleave(num_candidates, dim=0), candidates)
        cosines = cosines.view(len(vectors), num_candidates)
        top, column = cosines.max(dim=1)
        for row in torch.nonzero(top > best_scores).flatten().tolist():
            chosen = row * num_candidates + column[row].item()
            best_texts[row], best_scores[row] = candidates[chosen], top[row]
            best_embeddings[row] = again[chosen]
        if step < refinement_steps:
            scale = vectors.norm(dim=1, keepdim=True) / best_embeddings.norm(dim=1, keepdim=True).clamp_min(1e-6)
            queries = 2 * vectors - best_embeddings * scale
    return best_texts, best_scores.clamp_min(-1.0).tolist()


def round_trip(module: GLAEEmbedding, vectors: torch.Tensor, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The cosine between each vector and the embedding of its decoded text (-1 for an empty text), and those
    embeddings (the vector itself for an empty text)."""
    cosines = torch.full((len(texts),), -1.0)
    embeddings = vectors.clone()
    kept = [index for index, text in enumerate(texts) if text.strip()]
    if kept:
        features = module.preprocess([texts[index] for index in kept])
        features = {name: v.to(module.device) if isinstance(v, torch.Tensor) else v for name, v in features.items()}
        again = module.forward(features)["sentence_embedding"].to(vectors.dtype)
        embeddings[kept] = again
        cosines[kept] = torch.nn.functional.cosine_similarity(again.float(), vectors[kept].float(), dim=1).cpu()
    return cosines, embeddings
