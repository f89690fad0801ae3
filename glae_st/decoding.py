"""Turning GLAE embeddings back into text: batched generation from vectors with the KV cache."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from tqdm.auto import trange

from glae_st import prompts
from glae_st.module import GLAEEmbedding

logger = logging.getLogger(__name__)


def glae_module(model: SentenceTransformer | GLAEEmbedding) -> GLAEEmbedding:
    """The :class:`GLAEEmbedding` inside a SentenceTransformer (its first module), or the module itself."""
    if isinstance(model, GLAEEmbedding):
        return model
    if isinstance(model, SentenceTransformer) and len(model) and isinstance(model[0], GLAEEmbedding):
        return model[0]
    raise TypeError(
        f"Expected a GLAE SentenceTransformer (first module GLAEEmbedding), got {type(model).__name__}. "
        "Load one with SentenceTransformer(glae_st.DEFAULT_MODEL)."
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
    norms = tensor.float().norm(dim=1)
    if torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
        logger.warning(
            "These embeddings look L2-normalised. GLAE decodes the raw embeddings; encode with "
            "normalize_embeddings=False (the default) to decode faithfully."
        )
    return tensor


@torch.inference_mode()
def decode(
    model: SentenceTransformer | GLAEEmbedding,
    embeddings: Any,
    max_new_tokens: int = 64,
    num_beams: int = 1,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> list[str]:
    """Generate the text that each GLAE embedding encodes.

    Each vector is placed at the ``<embedding>`` slot of ``Decode this embedding into text:
    <embedding>{vector}</embedding><text>`` (through the model's bridge) and the backbone generates until
    ``</text>``, in batches, with the KV cache (``transformers`` ``generate``).

    Args:
        model: A GLAE SentenceTransformer or its :class:`GLAEEmbedding` module.
        embeddings: (n, hidden) floats, as returned by ``model.encode`` (numpy, torch or nested lists).
        max_new_tokens: The most tokens generated per text.
        num_beams: Beam width; 1 is greedy decoding.
        batch_size: Vectors decoded together.
        show_progress_bar: Show a progress bar; by default when there is more than one batch.

    Returns:
        One string per embedding.

    Example::

        model = SentenceTransformer(glae_st.DEFAULT_MODEL)
        glae_st.decode(model, model.encode(["A cat sits on the mat."]))
    """
    module = glae_module(model)
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}.")
    if not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be a positive integer, got {num_beams!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    vectors = validate_embeddings(embeddings, module.get_embedding_dimension())
    text_close = module.special_token_ids[prompts.TEXT_CLOSE]
    pad_id = module.tokenizer.pad_token_id if module.tokenizer.pad_token_id is not None else text_close
    if show_progress_bar is None:
        show_progress_bar = len(vectors) > batch_size
    was_training = module.training
    module.eval()
    texts: list[str] = []
    for start in trange(0, len(vectors), batch_size, desc="Decoding", disable=not show_progress_bar):
        batch = vectors[start : start + batch_size].to(module.device)
        inputs_embeds = module.decode_prompt_embeds(batch)
        generated = module.causal_lm.generate(
            inputs_embeds=inputs_embeds,
            attention_mask=torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=module.device),
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
            eos_token_id=text_close,
            pad_token_id=pad_id,
        )
        for row in generated.tolist():
            row = row[: row.index(text_close)] if text_close in row else row
            texts.append(module.tokenizer.decode(row, skip_special_tokens=True).strip())
    module.train(was_training)
    return texts
