"""Small helpers shared across glae_st: argument checks, the decode settings, and the tqdm lock of pool workers."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import torch


def check_positive_int(name: str, value: Any) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a positive int (booleans are refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def validate_texts(inputs: Any) -> list[str]:
    """Check that ``inputs`` is a list of non-empty strings; say which item is wrong and how to fix it."""
    if isinstance(inputs, str):
        raise TypeError("Expected a list of strings, got a single string; wrap it in a list: [text].")
    texts = list(inputs)
    if not texts:
        raise ValueError("Got an empty list of texts; pass at least one non-empty string.")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"Item {index} is a {type(text).__name__} ({text!r:.60}), not a string; GLAE embeds text only. "
                "Convert it with str() or drop it."
            )
        if not text.strip():
            raise ValueError(
                f"Item {index} is empty or only whitespace; an empty text has nothing to embed. Drop it or replace "
                "it with a placeholder text."
            )
    return texts


GREEDY_DECODING: dict[str, int] = {"num_beams": 1, "num_candidates": 1, "refinement_steps": 0}
"""The settings of :func:`glae_st.decode` that a model's ``decoding`` may choose, at the values of plain greedy
decoding (what a setting that neither the call nor the model gives falls back to)."""


def resolve_decoding(own: dict[str, int] | None = None, **given: int | None) -> dict[str, int]:
    """Every setting of :data:`GREEDY_DECODING`: as ``given`` where that is not None, else as ``own`` (a model's
    ``decoding``) says, else greedy."""
    return {
        name: given[name] if given.get(name) is not None else (own or {}).get(name, greedy)
        for name, greedy in GREEDY_DECODING.items()
    }


def check_decoding_setting(name: str, value: Any) -> None:
    """Raise a ValueError unless ``name`` is one of :data:`GREEDY_DECODING` with a count it accepts."""
    if name not in GREEDY_DECODING:
        raise ValueError(f"Unknown decoding setting {name!r}; the settings are {list(GREEDY_DECODING)}.")
    if name != "refinement_steps":
        check_positive_int(name, value)
    elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"refinement_steps must be a non-negative integer, got {value!r}.")


def padded_positions(attention_mask: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Position ids that skip padding (on either side, or inside a row) and start at ``offset``, and the index of
    each row's last real token."""
    position_ids = (offset + attention_mask.cumsum(dim=1) - 1).clamp(min=offset)
    arange = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return position_ids, (attention_mask * arange).argmax(dim=1)


@contextlib.contextmanager
def peft_deprecations_silenced() -> Iterator[None]:
    """Hide the FutureWarning that peft's own call of transformers' deprecated ``is_gradient_checkpointing`` raises
    (peft 0.18-0.21 with transformers 5): the user cannot act on it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def thread_only_progress_lock() -> None:
    """In a child process, give tqdm a thread lock instead of its default multiprocessing one.

    sentence-transformers' pool workers open (disabled) progress bars, and tqdm's first bar creates a
    multiprocessing lock, a named semaphore registered with the resource tracker; the pool then ends its workers
    with SIGTERM, so the semaphore is never unregistered and Python prints "There appear to be N leaked semaphore
    objects" at exit (with any model, one per worker). A worker's bars never share a terminal line with another
    process's, so a thread lock is all they need.
    """
    if multiprocessing.current_process().name != "MainProcess":  # named before a spawned child unpickles its args
        from tqdm import tqdm

        tqdm.set_lock(threading.RLock())
