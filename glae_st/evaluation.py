"""Decode fidelity: how much of a text comes back from its GLAE embedding."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

from glae_st.decoding import decode

_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens: runs of word characters, and every other non-space character alone.

    ``"Don't stop!"`` -> ``["don", "'", "t", "stop", "!"]``; the units of :func:`token_f1`.
    """
    return _WORD.findall(text.lower())


def token_f1(prediction: str, reference: str) -> float:
    """Bag-of-tokens F1 between two texts, over :func:`words` (as in SQuAD).

    Tokens are matched as multisets, ignoring order: with ``c`` tokens in common (counting repeats),
    precision = c / |prediction tokens|, recall = c / |reference tokens|, F1 = 2PR / (P + R). Two texts without
    tokens score 1; one empty text against a non-empty one scores 0.
    """
    predicted, expected = Counter(words(prediction)), Counter(words(reference))
    if not predicted and not expected:
        return 1.0
    overlap = sum((predicted & expected).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(predicted.values()), overlap / sum(expected.values())
    return 2 * precision * recall / (precision + recall)


def token_recall(prediction: str, reference: str) -> float:
    """The share of the reference's :func:`words` that the prediction contains (multisets, as in
    :func:`token_f1`): how much of a text comes back, whatever else is generated. 1 for an empty reference."""
    predicted, expected = Counter(words(prediction)), Counter(words(reference))
    return sum((predicted & expected).values()) / sum(expected.values()) if expected else 1.0


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the texts are equal once runs of whitespace are collapsed and the ends stripped (case matters)."""
    return float(prediction.split() == reference.split())


class DecodeFidelityEvaluator(SentenceEvaluator):
    """Encode texts, decode the embeddings, and score the round trip (token F1 and exact match).

    The primary metric is mean token F1. Use held-out texts: a model can memorise its training texts.

    Args:
        texts: Held-out texts.
        max_new_tokens: The most tokens generated per text.
        batch_size: Texts per encode/decode batch.
        name: Prefix of the metric names.

    Example::

        evaluator = DecodeFidelityEvaluator(["Rain is expected tomorrow."], name="held-out")
        evaluator(model)   # {"held-out_decode_token_f1": ..., "held-out_decode_exact_match": ...}
    """

    def __init__(self, texts: Sequence[str], max_new_tokens: int = 64, batch_size: int = 16, name: str = "") -> None:
        super().__init__()
        self.texts = list(texts)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.name = name
        self.primary_metric = "decode_token_f1"
        self.greater_is_better = True

    def __call__(
        self, model: SentenceTransformer, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        embeddings = model.encode(self.texts, batch_size=self.batch_size, convert_to_tensor=True)
        predictions = decode(model, embeddings, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size)
        metrics = {
            "decode_token_f1": float(np.mean([token_f1(p, r) for p, r in zip(predictions, self.texts)])),
            "decode_exact_match": float(np.mean([exact_match(p, r) for p, r in zip(predictions, self.texts)])),
        }
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics
