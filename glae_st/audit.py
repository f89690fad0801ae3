"""How much of a text another model's embedding gives away: decode it with GLAE through an EmbeddingTranslator.

    from sentence_transformers import SentenceTransformer
    import glae_st
    from glae_st.audit import audit, fit_translator, fitting_texts

    glae = glae_st.load_model(glae_st.DEFAULT_MODEL)
    foreign = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
    translator = fit_translator(foreign, glae, fitting_texts(20_000), "all-MiniLM-L6-v2", "glae-smollm2-135m")
    report = audit(foreign, my_texts, translator, glae)
    report["overall"]["token_f1"]

``glae audit`` is the same from the command line.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from glae_st import corpora
from glae_st.atomic import atomic_path
from glae_st.decoding import decode, generate_texts, glae_module
from glae_st.evaluation import exact_match, token_f1
from glae_st.translator import MLP_HIDDEN_FEATURES, EmbeddingTranslator

LENGTH_BUCKETS = ((1, 16), (17, 32), (33, 64), (65, None))
"""Text lengths (GLAE backbone tokens) the report is broken down by."""
FITTING_CORPORA = {
    "news (train articles)": lambda: corpora.news_texts("train"),
    "nlp-corpus": corpora.nlp_corpus_sentences,
    "State of the Union": corpora.state_of_the_union_sentences,
    "WordNet glosses": corpora.wordnet_glosses,
    "Brown": corpora.brown_sentences,
    "Wikipedia": corpora.wikipedia_sentences,
}
"""Offline corpora a translator is fitted on; none holds the test split of the news articles, which is audited."""
_NUMBER = re.compile(r"\d[\d,.:]*\d|\d")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z'-]+")


def fitting_texts(limit: int, max_words: int = 32, seed: int = 0, exclude: Collection[str] = ()) -> list[str]:
    """``limit`` distinct sentences drawn evenly (seeded) from :data:`FITTING_CORPORA`, none of them in
    ``exclude`` (pass the audited texts, so fitting and audited texts are disjoint).

    Raises:
        ValueError: ``limit`` is below 20 (too few to fit a translator).
    """
    if limit < 20:
        raise ValueError(f"A translator needs at least 20 fitting texts, got {limit}.")
    rng = random.Random(seed)
    excluded = set(exclude)
    pools = []
    for read in FITTING_CORPORA.values():
        pool = [text for text in dict.fromkeys(read()) if len(text.split()) <= max_words and text not in excluded]
        rng.shuffle(pool)
        pools.append(pool)
    texts: list[str] = []
    while len(texts) < limit and any(pools):
        for pool in pools:
            if pool and len(texts) < limit:
                texts.append(pool.pop())
    return list(dict.fromkeys(texts))


def fit_translator(
    foreign: SentenceTransformer,
    glae: SentenceTransformer,
    texts: Sequence[str],
    foreign_name: str,
    glae_name: str,
    batch_size: int = 64,
    hidden_features: Sequence[int] = (0, MLP_HIDDEN_FEATURES),
    glae_revision: str | None = None,
) -> EmbeddingTranslator:
    """Encode ``texts`` with both models and fit an :class:`EmbeddingTranslator` from ``foreign`` to ``glae``:
    the best on held-out texts of a ridge map (width 0) and MLPs of the given ``hidden_features`` widths;
    ``glae_revision`` (the GLAE weights' revision) is recorded in it."""
    source = foreign.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=True)
    target = glae.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=True)
    return EmbeddingTranslator.fit(
        source, target, foreign_name, glae_name, hidden_features, target_revision=glae_revision
    )


def recovered_share(pattern: re.Pattern[str], predictions: Sequence[str], references: Sequence[str]) -> float | None:
    """The share of ``pattern``'s matches in the references (names, numbers) that reappear verbatim in the
    prediction of the same text; None when the references hold none."""
    found = total = 0
    for prediction, reference in zip(predictions, references):
        for match in pattern.findall(reference):
            total += 1
            found += match in prediction
    return found / total if total else None


def leakage(predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Token F1, exact match, and the shares of names and numbers recovered, over paired texts."""
    return {
        "texts": len(references),
        "token_f1": float(np.mean([token_f1(p, r) for p, r in zip(predictions, references)])),
        "exact_match": float(np.mean([exact_match(p, r) for p, r in zip(predictions, references)])),
        "names_recovered": recovered_share(_NAME, predictions, references),
        "numbers_recovered": recovered_share(_NUMBER, predictions, references),
    }


def audit(
    foreign: SentenceTransformer,
    texts: Sequence[str],
    translator: EmbeddingTranslator,
    glae: SentenceTransformer,
    foreign_name: str | None = None,
    num_candidates: int = 1,
    batch_size: int = 32,
    examples: int = 10,
    glae_revision: str | None = None,
    foreign_rerank: bool = False,
) -> dict[str, Any]:
    """Encode ``texts`` with the foreign model, translate the vectors into GLAE's space and decode them.

    With ``num_candidates=K > 1`` the K candidates of each vector are reranked by GLAE's round trip, or, with
    ``foreign_rerank``, by the audited model itself (:func:`foreign_reranked`): an auditor holds that model, so it can
    keep the candidate whose embedding is closest to the original one (ZSInvert's trick).

    Returns:
        ``{"overall": {token_f1, exact_match, names_recovered, numbers_recovered, texts}, "buckets": [... per
        length bucket, with "tokens": [low, high]], "examples": [{text, decoded, token_f1}], "models": ...}``;
        shares are 0-1.

    Raises:
        ValueError: No texts, or the translator was fitted for another model or dimension, or for other GLAE
            weights than ``glae_revision``.
    """
    texts = [text for text in texts if text.strip()]
    if not texts:
        raise ValueError("No texts to audit: give at least one non-empty line.")
    translator.check_source(foreign_name or translator.source_model, foreign.get_embedding_dimension())
    translator.check_target(glae_revision)
    originals = foreign.encode(texts, batch_size=batch_size, convert_to_numpy=True)
    vectors = translator.translate(originals)
    if foreign_rerank and num_candidates > 1:
        decoded = foreign_reranked(foreign, glae, originals, vectors, num_candidates, batch_size)
    else:
        decoded = decode(glae, vectors, batch_size=batch_size, num_candidates=num_candidates, refinement_steps=0)
    lengths = [len(ids) for ids in glae_module(glae).tokenizer(texts, add_special_tokens=False)["input_ids"]]
    buckets = []
    for low, high in LENGTH_BUCKETS:
        rows = [i for i, n in enumerate(lengths) if n >= low and (high is None or n <= high)]
        if rows:
            bucket = leakage([decoded[i] for i in rows], [texts[i] for i in rows])
            buckets.append({"tokens": [low, high], **bucket})
    return {
        "models": {
            "foreign": translator.source_model,
            "glae": translator.target_model,
            "translator_fit_texts": translator.fit_texts,
            "translator_hidden_features": translator.hidden_features,
            "translator_dev_cosine": translator.dev_cosine,
            "glae_revision": glae_revision or translator.target_revision,
            "num_candidates": num_candidates,
            "reranked_by": "audited model" if foreign_rerank and num_candidates > 1 else "GLAE round trip",
        },
        "overall": leakage(decoded, texts),
        "buckets": buckets,
        "examples": [
            {"text": text, "decoded": prediction, "token_f1": token_f1(prediction, text)}
            for text, prediction in list(zip(texts, decoded))[:examples]
        ],
    }


@torch.inference_mode()
def foreign_reranked(
    foreign: SentenceTransformer,
    glae: SentenceTransformer,
    originals: np.ndarray,
    vectors: np.ndarray,
    num_candidates: int,
    batch_size: int,
) -> list[str]:
    """Per translated vector, the one of ``num_candidates`` GLAE beam candidates whose embedding by the audited
    model is closest (cosine) to that model's original embedding."""
    module = glae_module(glae)
    module.eval()
    chosen: list[str] = []
    for start in range(0, len(vectors), batch_size):
        batch = torch.as_tensor(vectors[start : start + batch_size], dtype=torch.float32, device=module.device)
        candidates = generate_texts(module, batch, 64, num_candidates, num_candidates)
        again = foreign.encode(candidates, batch_size=batch_size, convert_to_tensor=True).cpu().float()
        wanted = torch.as_tensor(originals[start : start + batch_size]).float().repeat_interleave(num_candidates, dim=0)
        cosines = torch.nn.functional.cosine_similarity(again, wanted, dim=1).view(len(batch), num_candidates)
        best = cosines.argmax(dim=1).tolist()
        chosen += [candidates[row * num_candidates + column] for row, column in enumerate(best)]
    return chosen


def plot_report(report: dict[str, Any], path: Path, force: bool = True) -> None:
    """Bars of token F1 and exact match per length bucket (PNG), written all at once (an existing file is replaced
    only if ``force``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{low}-{high}" if high else f"{low}+" for low, high in (b["tokens"] for b in report["buckets"])]
    positions = np.arange(len(labels))
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.bar(positions - 0.2, [b["token_f1"] for b in report["buckets"]], 0.4, label="token F1")
    axis.bar(positions + 0.2, [b["exact_match"] for b in report["buckets"]], 0.4, label="exact match")
    axis.set_xticks(positions, labels)
    axis.set_xlabel("text length (GLAE tokens)")
    axis.set_ylim(0, 1)
    axis.set_title(f"{report['models']['foreign']} embeddings decoded by GLAE")
    axis.legend()
    figure.tight_layout()
    try:
        with atomic_path(path, force) as temporary:
            figure.savefig(temporary, dpi=120, format="png")
    finally:
        plt.close(figure)
