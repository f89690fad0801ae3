"""Special tokens and prompt templates of the GLAE paper (Zhang et al., 2024, Fig. 1 and Fig. 3).

Every prompt is split at the place where the variable part goes, so that the fixed part before it can be
tokenised once (and, for encoding, its key/value cache computed once):

- encode:      ``Encode this text into 1-word length embedding: <text>`` + text + ``</text><embedding>``
- decode:      ``Decode this embedding into text: <embedding>`` + vector + ``</embedding><text>`` -> text ``</text>``
- iterate:     ``Encode these embedding and text into 1-word length embedding: <embedding>`` + vector +
               ``</embedding><text>`` + chunk + ``</text><embedding>``
- continue:    ``Continue the text after this embedding: <embedding>`` + memory + ``</embedding><text>`` -> the
               text that follows (Fig. 2, bounded-context language modelling)
- correct:     ``Correct the text toward this embedding: <embedding>`` + target + ``</embedding>. The text's own
               embedding: <embedding>`` + its embedding + ``</embedding>, and what it misses: <embedding>`` + the
               difference + ``</embedding>. Text: <text>`` + text + ``</text> Corrected: <text>`` -> a better text
               ``</text>`` (the learned corrector)

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


@dataclass(frozen=True)
class CorrectionTemplate:
    """A prompt with three vector slots and a text slot: ``pieces[0]`` + target + ``pieces[1]`` + the hypothesis's
    embedding + ``pieces[2]`` + their difference + ``pieces[3]`` + the hypothesis + ``pieces[4]``."""

    pieces: tuple[str, str, str, str, str]


CORRECT = CorrectionTemplate(
    pieces=(
        f"Correct the text toward this embedding: {EMBEDDING_OPEN}",
        f"{EMBEDDING_CLOSE}. The text's own embedding: {EMBEDDING_OPEN}",
        f"{EMBEDDING_CLOSE}, and what it misses: {EMBEDDING_OPEN}",
        f"{EMBEDDING_CLOSE}. Text: {TEXT_OPEN}",
        f"{TEXT_CLOSE} Corrected: {TEXT_OPEN}",
    )
)
"""The learned corrector (after vec2text: Morris et al., 2023): the target vector, the embedding of the current
hypothesis and their difference go in the three slots, the hypothesis's tokens in ``<text>``; the model answers a
corrected ``text</text>``."""
