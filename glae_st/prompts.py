"""Special tokens and prompt templates of the GLAE paper (Zhang et al., 2024, Fig. 1 and Fig. 3).

Every prompt is split at the place where the variable part goes, so that the fixed part before it can be
tokenised once (and, for encoding, its key/value cache computed once):

- encode:      ``Encode this text into 1-word length embedding: <text>`` + text + ``</text><embedding>``
- decode:      ``Decode this embedding into text: <embedding>`` + vector + ``</embedding><text>`` -> text ``</text>``
- iterate:     ``Encode these embedding and text into 1-word length embedding: <embedding>`` + vector +
               ``</embedding><text>`` + chunk + ``</text><embedding>``
- continue:    ``Continue the text after this embedding: <embedding>`` + memory + ``</embedding><text>`` -> the
               text that follows (Fig. 2, bounded-context language modelling)

The encode answer ``<embedding>`` is the last input token; its layer -2 hidden state is the embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

EMBEDDING_OPEN = "<embedding>"
EMBEDDING_CLOSE = "</embedding>"
TEXT_OPEN = "<text>"
TEXT_CLOSE = "</text>"
SPECIAL_TOKENS: tuple[str, ...] = (EMBEDDING_OPEN, EMBEDDING_CLOSE, TEXT_OPEN, TEXT_CLOSE)


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt with one variable slot: ``prefix`` + slot + ``suffix``."""

    prefix: str
    suffix: str


ENCODE = PromptTemplate(
    prefix=f"Encode this text into 1-word length embedding: {TEXT_OPEN}",
    suffix=f"{TEXT_CLOSE}{EMBEDDING_OPEN}",
)
"""Fig. 1, encode: the text goes in the slot; the answer token ``<embedding>`` closes the prompt."""

DECODE = PromptTemplate(
    prefix=f"Decode this embedding into text: {EMBEDDING_OPEN}",
    suffix=f"{EMBEDDING_CLOSE}{TEXT_OPEN}",
)
"""Fig. 1, decode: the vector goes in the slot (as an input embedding); the model answers ``text</text>``."""

ITERATE = PromptTemplate(
    prefix=f"Encode these embedding and text into 1-word length embedding: {EMBEDDING_OPEN}",
    suffix=f"{EMBEDDING_CLOSE}{TEXT_OPEN}",
)
"""Fig. 3: the previous embedding goes in the slot, then the next chunk and ``ENCODE.suffix`` follow."""

CONTINUE = PromptTemplate(
    prefix=f"Continue the text after this embedding: {EMBEDDING_OPEN}",
    suffix=f"{EMBEDDING_CLOSE}{TEXT_OPEN}",
)
"""Fig. 2: the memory (the embedding of everything read so far) goes in the slot; the model answers the text that
follows it. A prompt of its own, because after the decode prompt the same vector means "this text" and the first
token to predict is the text's first token, while here it is the token after the text."""
