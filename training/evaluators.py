"""The training-time evaluators of ``training/train.py``, all on dev data, chosen by a config's ``eval`` sizes."""

from __future__ import annotations

from typing import Any

from sentence_transformers.sentence_transformer.evaluation import (
    EmbeddingSimilarityEvaluator,
    InformationRetrievalEvaluator,
    SequentialEvaluator,
)

from glae_st import GLAEEmbedding
from glae_st.evaluation import DecodeFidelityEvaluator
from training import data

EVALUATORS = ("stsb_dev_limit", "decode_texts", "long_documents")
"""The keys of a config's ``eval``, each the size of one training-time evaluator (:func:`build_evaluator`)."""


def selected_evaluators(settings: dict[str, Any]) -> list[str]:
    """The keys of :data:`EVALUATORS` that a config's ``eval`` turns on: present and not 0 (None: all the dev data)."""
    return [name for name in EVALUATORS if name in settings and settings[name] not in (0, False)]


def build_evaluator(config: dict[str, Any], module: GLAEEmbedding) -> SequentialEvaluator:
    """The training-time evaluators ``eval`` asks for, all on dev data: STS-B dev pairs (``stsb_dev_limit``), decode
    fidelity on Lee dev sentences (``decode_texts``), and long-document retrieval with the model's ``long_text``
    mode on dev news articles (``long_documents``: that many (deep passage, article) pairs, as in training)."""
    settings = config["eval"]
    wanted = selected_evaluators(settings)
    evaluators = []
    if "stsb_dev_limit" in wanted:
        sentences1, sentences2, scores = data.stsb_dev_pairs(settings["stsb_dev_limit"])
        evaluators.append(
            EmbeddingSimilarityEvaluator(sentences1, sentences2, scores, name="sts-dev", main_similarity="cosine")
        )
    if "decode_texts" in wanted:
        evaluators.append(
            DecodeFidelityEvaluator(data.held_out_decode_texts(settings["decode_texts"]), name="held-out")
        )
    if "long_documents" in wanted:
        pairs = data.long_document_pairs(
            module.tokenizer, module.max_seq_length, split="dev", **config["data"]["long_documents"]
        )
        if settings["long_documents"] is not None:
            pairs = pairs.select(range(min(settings["long_documents"], len(pairs))))
        evaluators.append(
            InformationRetrievalEvaluator(
                queries={str(i): query for i, query in enumerate(pairs["anchor"])},
                corpus={str(i): document for i, document in enumerate(pairs["positive"])},
                relevant_docs={str(i): {str(i)} for i in range(len(pairs))},
                name="long-documents-dev",
                accuracy_at_k=[1],
                precision_recall_at_k=[10],
                mrr_at_k=[10],
                ndcg_at_k=[10],
                map_at_k=[10],
            )
        )
    return SequentialEvaluator(evaluators)
