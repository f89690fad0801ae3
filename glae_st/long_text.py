"""Language modelling with a bounded context (the GLAE paper's Fig. 2): everything before the last window of tokens
is folded into one GLAE embedding, so generation continues from ``Continue the text after this embedding:
<embedding>{memory}</embedding><text>{window}`` (:data:`glae_st.prompts.CONTINUE`) with a context that never grows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from sentence_transformers import SentenceTransformer
from tqdm.auto import tqdm

from glae_st import prompts
from glae_st.adapters import RECURRENCE_ADAPTER
from glae_st.decoding import glae_module
from glae_st.module import GLAEEmbedding
from glae_st.util import check_positive_int, validate_texts


@dataclass
class BoundedContext:
    """What the model sees of one text: ``memory``, the GLAE embedding of all tokens before the window (None when
    the text fits in the window), and ``window``, the ids of the most recent tokens."""

    memory: torch.Tensor | None
    window: list[int]


def compress_context(
    model: SentenceTransformer | GLAEEmbedding, token_ids: Sequence[Sequence[int]], window: int
) -> list[BoundedContext]:
    """Keep the last ``window`` tokens of each text and embed the rest into one vector (iteratively, in chunks of
    ``max_seq_length``, paper Fig. 3), batched across texts."""
    module = glae_module(model)
    contexts = [BoundedContext(None, list(ids[-window:])) for ids in token_ids]
    rows = [row for row, ids in enumerate(token_ids) if len(ids) > window]
    if rows:
        memories = module.embed_token_ids([token_ids[row][:-window] for row in rows], iterative=True)
        for row, memory in zip(rows, memories):
            contexts[row].memory = memory
    return contexts


def context_embeds(
    model: SentenceTransformer | GLAEEmbedding, contexts: Sequence[BoundedContext]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded input embeddings and attention mask of ``Continue the text after this embedding:
    <embedding>{memory}</embedding><text>{window}`` per context (only ``{window}`` when there is no memory). Every
    context is read by the adapter of the long-text prompts (the recurrence adapter where the model has one), which
    stays active for the generation that follows, so contexts with and without memory meet the same weights."""
    module = glae_module(model)
    module.use_adapter(RECURRENCE_ADAPTER)
    embed_tokens = module.causal_lm.get_input_embeddings()
    sequences = []
    for context in contexts:
        window = embed_tokens(torch.tensor(context.window, dtype=torch.long, device=module.device))
        if context.memory is not None:
            window = torch.cat([module.continue_prompt_embeds(context.memory[None])[0], window])
        sequences.append(window)
    width = max(len(sequence) for sequence in sequences)
    inputs = sequences[0].new_zeros(len(sequences), width, sequences[0].shape[-1])
    attention_mask = torch.zeros(len(sequences), width, dtype=torch.long, device=module.device)
    for row, sequence in enumerate(sequences):
        inputs[row, width - len(sequence) :] = sequence
        attention_mask[row, width - len(sequence) :] = 1
    return inputs, attention_mask


@torch.inference_mode()
def generate_long(
    model: SentenceTransformer | GLAEEmbedding,
    texts: Sequence[str],
    max_new_tokens: int = 128,
    window: int = 256,
    show_progress_bar: bool | None = None,
) -> list[str]:
    """Continue each text with a fixed-size context: the paper's "language modeling with infinite context length".

    The model sees at most ``window + max_seq_length`` text tokens: the most recent ``window`` tokens, plus the
    GLAE embedding of everything before them in the slot of the continue prompt. Whenever the window grows by
    ``max_seq_length`` generated tokens, its oldest chunk is folded into the embedding with the Fig. 3 recurrence
    (``Embed(memory + chunk)``), so memory and compute per token stay bounded however long the text gets. Texts that
    fit in the window are continued from their plain tokens. All texts generate together (greedy, KV cache within
    each round).

    Quality depends on the model having learned the recurrence and to continue after ``<text>``; compare it with
    plain truncation with ``python -m benchmarks.long_text``.

    Args:
        model: A GLAE SentenceTransformer or its :class:`GLAEEmbedding`.
        texts: The texts to continue.
        max_new_tokens: The most tokens generated per text.
        window: Recent tokens kept verbatim.
        show_progress_bar: Show a progress bar over the generated tokens; by default when generating many.

    Returns:
        The generated continuation of each text (without the text itself).

    Example::

        model = glae_st.load_model(glae_st.DEFAULT_MODEL)
        glae_st.generate_long(model, [very_long_story], max_new_tokens=200, window=128)
    """
    module = glae_module(model)
    texts = validate_texts(texts)
    check_positive_int("max_new_tokens", max_new_tokens)
    check_positive_int("window", window)
    chunk = module.max_seq_length
    limit = window + chunk
    prompt_tokens = len(module.continue_prefix_ids) + 1 + len(module.continue_suffix_ids)
    if limit + prompt_tokens > module.causal_lm.config.max_position_embeddings:
        raise ValueError(
            f"window + max_seq_length = {limit} tokens (+{prompt_tokens} of prompt) exceed the backbone's context of "
            f"{module.causal_lm.config.max_position_embeddings}; use a smaller window."
        )
    stop_ids = [module.special_token_ids[prompts.TEXT_CLOSE]]
    if module.tokenizer.eos_token_id is not None:
        stop_ids.append(module.tokenizer.eos_token_id)
    pad_id = module.tokenizer.pad_token_id if module.tokenizer.pad_token_id is not None else stop_ids[0]

    was_training = module.training
    module.eval()
    token_ids = module.tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    contexts = compress_context(module, token_ids, window)
    generated: list[list[int]] = [[] for _ in texts]
    active = list(range(len(texts)))
    produced = 0  # tokens generated so far by every active text
    if show_progress_bar is None:
        show_progress_bar = max_new_tokens > 4 * chunk
    progress = tqdm(total=max_new_tokens, desc="Generating", disable=not show_progress_bar)
    while active:
        budget = min(max_new_tokens - produced, *(limit - len(contexts[row].window) for row in active))
        with module.inference_autocast():
            inputs_embeds, attention_mask = context_embeds(module, [contexts[row] for row in active])
            new_tokens = module.generate(
                inputs_embeds,
                attention_mask,
                max_new_tokens=budget,
                do_sample=False,
                eos_token_id=stop_ids,
                pad_token_id=pad_id,
            ).tolist()
        progress.update(budget)
        produced += budget
        still_active = []
        for row, tokens in zip(active, new_tokens):
            stopped = next((index for index, token in enumerate(tokens) if token in stop_ids), None)
            tokens = tokens[:stopped] if stopped is not None else tokens[:budget]
            generated[row] += tokens
            contexts[row].window += tokens
            if stopped is None and produced < max_new_tokens:
                still_active.append(row)
        _fold_full_windows(module, [contexts[row] for row in still_active], window)
        active = still_active
    progress.close()
    module.train(was_training)
    return [module.tokenizer.decode(tokens, skip_special_tokens=True) for tokens in generated]


def _fold_full_windows(module: GLAEEmbedding, contexts: Sequence[BoundedContext], window: int) -> None:
    """Once any context is full, fold the tokens before the last ``window`` of every context into its memory
    (batched), so that all windows restart at the same length and the next round generates a whole chunk."""
    if all(len(context.window) < window + module.max_seq_length for context in contexts):
        return
    full = [context for context in contexts if len(context.window) > window]
    first = [context for context in full if context.memory is None]
    later = [context for context in full if context.memory is not None]
    if first:
        memories = module.embed_token_ids([context.window[:-window] for context in first], iterative=True)
        _update(first, memories, window)
    if later:
        memories = module.iterate(
            torch.stack([context.memory for context in later]), [context.window[:-window] for context in later]
        )
        _update(later, memories, window)


def _update(contexts: Sequence[BoundedContext], memories: torch.Tensor, window: int) -> None:
    for context, memory in zip(contexts, memories):
        context.memory = memory
        context.window = context.window[-window:]
