"""GLAELoss: repulsion (L1) + reconstruction (L2), the training objective of the GLAE paper."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from torch import Tensor, nn

from glae_st.decoding import glae_module
from glae_st.losses.weights import check_term_weights

if TYPE_CHECKING:
    from datasets import Dataset

GLAE_CITATION = """
@misc{zhang2024glae,
    title={Generative Language Autoencoders Are Lossless Embedding Models},
    author={Zhang, Yifan and others},
    year={2024},
    month={feb}
}
"""
"""BibTeX of the GLAE paper, the citation of the losses that implement it."""


class GLAELoss(nn.Module):
    """The GLAE objective ``L = w1 * L1 + w2 * L2`` (Zhang et al., 2024, "Generative Language Autoencoders Are
    Lossless Embedding Models", eq. 1-4), with an optional teacher term ``+ w3 * L3``.

    - **L1, repulsion**, pushes the embeddings of different texts apart. With (anchor, positive) pairs it is
      InfoNCE with in-batch negatives (sentence-transformers' :class:`MultipleNegativesRankingLoss`). With single
      texts it is either the repulsive part of InfoNCE, ``mean_i logsumexp_j(cos(e_i, e_j) / tau)`` (eq. 2,
      ``repulsion="infonce"``), or minus the total coding rate ``1/2 logdet(I + d/(B eps^2) Z^T Z)`` of the
      normalised batch (eq. 1, ``repulsion="tcr"``).
    - **L2, reconstruction**, is the mean NLL per token of ``text</text>`` generated from the anchor's own
      embedding through the decode prompt and the bridge (eq. 3), the same path :func:`glae_st.decode` uses.

    - **L3, similarity distillation** (``distillation_weight`` w3 > 0), needs a teacher embedding of every text
      as the row's label: ``KL(p_teacher || p_student)`` between the in-batch similarity distributions of the
      teacher and the student, row by row over all the batch's texts except the text itself (DistilCSE: Xu et
      al., 2021, "DistilCSE: Effective Knowledge Distillation For Contrastive Sentence Embeddings"). Only
      cosines are compared, so the teacher's dimension may differ from the student's (all-MiniLM-L6-v2's 384
      against GLAE's 576), which :class:`~sentence_transformers.sentence_transformer.losses.MSELoss` does not
      allow. :func:`with_teacher_embeddings` adds the labels.

    ``schedule="sum"`` adds both terms every step; ``"alternate"`` uses L1 on even steps and L2 on odd ones.
    A batch of one text has no negatives: its repulsion is 0 and only L2 trains.

    Args:
        model: A GLAE SentenceTransformer (first module :class:`~glae_st.GLAEEmbedding`).
        repulsion: ``"infonce"`` or ``"tcr"`` for single texts; pairs always use InfoNCE with positives.
        repulsion_weight: w1.
        reconstruction_weight: w2.
        scale: Inverse temperature 1/tau of the InfoNCE terms.
        tcr_epsilon: eps of the coding rate.
        schedule: ``"sum"`` or ``"alternate"``.
        distillation_weight: w3; 0 (the default) ignores labels.
        distillation_temperature: tau of both similarity distributions of L3.

    Inputs:
        +--------------------------------+--------------------------------------------------------------+
        | Texts                          | Labels                                                       |
        +================================+==============================================================+
        | (anchor,) single texts         | none                                                         |
        +--------------------------------+--------------------------------------------------------------+
        | (anchor, positive) pairs       | none                                                         |
        +--------------------------------+--------------------------------------------------------------+
        | single texts or pairs, with L3 | the teacher's embedding of each text, (columns,              |
        |                                | teacher dimension) per row (:func:`with_teacher_embeddings`) |
        +--------------------------------+--------------------------------------------------------------+

    Relations:
        :class:`MultipleNegativesRankingLoss` is L1 for pairs.

    Example::

        from datasets import Dataset
        from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
        import glae_st
        from glae_st.losses import GLAELoss

        model = glae_st.load_model(glae_st.DEFAULT_MODEL)
        model[0].add_lora()
        train = Dataset.from_dict({"anchor": ["A cat sits.", "Stocks fell."], "positive": ["A cat is sitting.", "Shares dropped."]})
        trainer = SentenceTransformerTrainer(model=model, train_dataset=train, loss=GLAELoss(model))
        trainer.train()
    """

    def __init__(
        self,
        model: SentenceTransformer,
        repulsion: Literal["infonce", "tcr"] = "infonce",
        repulsion_weight: float = 1.0,
        reconstruction_weight: float = 1.0,
        scale: float = 20.0,
        tcr_epsilon: float = 0.5,
        schedule: Literal["sum", "alternate"] = "sum",
        distillation_weight: float = 0.0,
        distillation_temperature: float = 0.05,
    ) -> None:
        super().__init__()
        if repulsion not in ("infonce", "tcr"):
            raise ValueError(f"repulsion must be 'infonce' or 'tcr', got {repulsion!r}.")
        if schedule not in ("sum", "alternate"):
            raise ValueError(f"schedule must be 'sum' or 'alternate', got {schedule!r}.")
        check_term_weights(
            repulsion_weight=repulsion_weight,
            reconstruction_weight=reconstruction_weight,
            distillation_weight=distillation_weight,
        )
        if distillation_temperature <= 0:
            raise ValueError(f"distillation_temperature must be > 0, got {distillation_temperature}.")
        self.model = model
        self.glae = glae_module(model)
        self.repulsion = repulsion
        self.repulsion_weight = repulsion_weight
        self.reconstruction_weight = reconstruction_weight
        self.scale = scale
        self.tcr_epsilon = tcr_epsilon
        self.schedule = schedule
        self.distillation_weight = distillation_weight
        self.distillation_temperature = distillation_temperature
        self.contrastive = MultipleNegativesRankingLoss(model, scale=scale)
        self.steps = 0

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features = list(sentence_features)
        use_repulsion, use_reconstruction = self.active_terms()
        if self.training:
            self.steps += 1
        embeddings = [self.model(columns)["sentence_embedding"] for columns in features]
        loss = embeddings[0].new_zeros(())
        if use_repulsion and self.repulsion_weight:
            loss = loss + self.repulsion_weight * self.repulsion_loss(embeddings)
        if use_reconstruction and self.reconstruction_weight:
            loss = loss + self.reconstruction_weight * self.reconstruction_loss(embeddings[0], features[0])
        if self.distillation_weight:
            loss = loss + self.distillation_weight * self.distillation_loss(embeddings, labels)
        return loss

    def active_terms(self) -> tuple[bool, bool]:
        """Which terms this step uses: both with ``"sum"``; L1 on even, L2 on odd steps with ``"alternate"``."""
        if self.schedule == "sum":
            return True, True
        return self.steps % 2 == 0, self.steps % 2 == 1

    def repulsion_loss(self, embeddings: list[Tensor]) -> Tensor:
        """L1: InfoNCE with positives for pairs, else the paper's repulsion (eq. 2) or TCR (eq. 1)."""
        if len(embeddings) > 1:
            return self.contrastive.compute_loss_from_embeddings(embeddings, labels=None)
        normalised = nn.functional.normalize(embeddings[0].float(), dim=-1)
        if len(normalised) < 2:
            return normalised.sum() * 0.0
        if self.repulsion == "infonce":
            return torch.logsumexp(normalised @ normalised.T * self.scale, dim=1).mean() - self.scale
        batch_size, dimension = normalised.shape
        gram = normalised.T @ normalised * (dimension / (batch_size * self.tcr_epsilon**2))
        return -0.5 * torch.logdet(torch.eye(dimension, device=gram.device) + gram)

    def reconstruction_loss(self, embeddings: Tensor, features: dict[str, Tensor]) -> Tensor:
        """L2: NLL of each text given its own embedding; the text ids are read back from the encode features."""
        return self.glae.reconstruction_nll(embeddings, self.glae.text_token_ids(features))

    def distillation_loss(self, embeddings: list[Tensor], teacher_embeddings: Tensor | None) -> Tensor:
        """L3: KL from the teacher's in-batch similarity distribution to the student's (DistilCSE)."""
        if (
            teacher_embeddings is None
            or teacher_embeddings.dim() != 3
            or teacher_embeddings.shape[1] != len(embeddings)
        ):
            shape = None if teacher_embeddings is None else tuple(teacher_embeddings.shape)
            raise ValueError(
                f"distillation_weight > 0 needs a label of shape (batch, {len(embeddings)} text columns, teacher "
                f"dimension) with the teacher's embedding of every text, got {shape}: add it with "
                "glae_st.losses.with_teacher_embeddings(dataset, teacher), or set distillation_weight=0."
            )
        student = nn.functional.normalize(torch.cat(embeddings).float(), dim=-1)
        teacher = nn.functional.normalize(teacher_embeddings.transpose(0, 1).flatten(0, 1).float(), dim=-1)
        if len(student) < 3:  # one other text: a distribution over one entry carries nothing
            return student.sum() * 0.0
        itself = torch.eye(len(student), dtype=torch.bool, device=student.device)
        student_logits = (student @ student.T / self.distillation_temperature).masked_fill(itself, -torch.inf)
        teacher_logits = (teacher @ teacher.T / self.distillation_temperature).masked_fill(itself, -torch.inf)
        student_log_p = torch.log_softmax(student_logits, dim=-1).masked_fill(itself, 0.0)
        teacher_log_p = torch.log_softmax(teacher_logits, dim=-1).masked_fill(itself, 0.0)
        return (teacher_log_p.exp() * (teacher_log_p - student_log_p)).sum(-1).mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "repulsion": self.repulsion,
            "repulsion_weight": self.repulsion_weight,
            "reconstruction_weight": self.reconstruction_weight,
            "scale": self.scale,
            "tcr_epsilon": self.tcr_epsilon,
            "schedule": self.schedule,
            "distillation_weight": self.distillation_weight,
            "distillation_temperature": self.distillation_temperature,
        }

    @property
    def citation(self) -> str:
        return GLAE_CITATION


def with_teacher_embeddings(dataset: Dataset, teacher: SentenceTransformer, batch_size: int = 128) -> Dataset:
    """``dataset`` with a ``label`` column holding the teacher's embedding of each of its text columns, shape
    (columns, teacher dimension) per row: the targets of :class:`GLAELoss`'s distillation term (L3).

    Example::

        from datasets import Dataset
        from sentence_transformers import SentenceTransformer
        from glae_st.losses import with_teacher_embeddings

        pairs = Dataset.from_dict({"anchor": ["A cat sits."], "positive": ["A cat is sitting."]})
        labelled = with_teacher_embeddings(pairs, SentenceTransformer("all-MiniLM-L6-v2"))   # label: (2, 384) per row
    """
    columns = [name for name in dataset.column_names if name != "label"]
    encoded = [
        teacher.encode(dataset[name], batch_size=batch_size, convert_to_numpy=True, show_progress_bar=True)
        for name in columns
    ]
    labels = np.stack(encoded, axis=1)
    return dataset.add_column("label", [row for row in labels.tolist()])
