"""DecoderReconstructionLoss: train decoding alone, on embeddings that stay as they are."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

from glae_st.decoding import glae_module
from glae_st.losses.glae import GLAE_CITATION


class DecoderReconstructionLoss(nn.Module):
    """GLAE's reconstruction term (L2 of Zhang et al., 2024, "Generative Language Autoencoders Are Lossless
    Embedding Models", eq. 3) on embeddings computed beforehand: the mean NLL per token of ``text</text>`` after the
    decode prompt holding the text's embedding, which is the row's label.

    The encoder never runs, so a step costs one decoder pass and the embeddings cannot move. With a decoder adapter
    (:meth:`glae_st.GLAEEmbedding.add_decoder_adapter`) only decoding learns, as an inverter is trained against a
    frozen embedder in vec2text (Morris et al., 2023, "Text Embeddings Reveal (Almost) As Much As Text"), except
    that it starts from GLAE's own decoder. ``training/data.py`` (``with_teacher_embeddings`` with the model itself
    as the teacher) adds the labels.

    Args:
        model: A GLAE SentenceTransformer (first module :class:`~glae_st.GLAEEmbedding`).

    Inputs:
        +--------------+----------------------------------------------------------------+
        | Texts        | Labels                                                         |
        +==============+================================================================+
        | (text,)      | the model's embedding of the text, (hidden,) or (1, hidden)    |
        +--------------+----------------------------------------------------------------+

    Relations:
        The L2 term of :class:`~glae_st.losses.GLAELoss`, without the encoder pass.

    Example::

        from datasets import Dataset
        from sentence_transformers import SentenceTransformerTrainer
        import glae_st
        from glae_st.losses import DecoderReconstructionLoss

        model = glae_st.load_model(glae_st.DEFAULT_MODEL)
        texts = ["A cat sits on the mat.", "Stocks fell sharply."]
        train = Dataset.from_dict({"text": texts, "label": model.encode(texts).tolist()})
        model[0].add_decoder_adapter()
        trainer = SentenceTransformerTrainer(model=model, train_dataset=train, loss=DecoderReconstructionLoss(model))
        trainer.train()
    """

    def __init__(self, model: SentenceTransformer) -> None:
        super().__init__()
        self.model = model
        self.glae = glae_module(model)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features = list(sentence_features)
        hidden = self.glae.get_embedding_dimension()
        if labels is None or labels.shape[-1] != hidden or labels.dim() not in (2, 3) or len(features) != 1:
            shape = None if labels is None else tuple(labels.shape)
            raise ValueError(
                f"DecoderReconstructionLoss needs one text column and, as the label, the model's embedding of each "
                f"text, shape (batch, {hidden}) or (batch, 1, {hidden}); got {len(features)} text columns and labels "
                f"of shape {shape}. Add them with training.data.with_teacher_embeddings(dataset, model)."
            )
        embeddings = labels.flatten(1) if labels.dim() == 3 else labels
        return self.glae.reconstruction_nll(embeddings, self.glae.text_token_ids(features[0]))

    def get_config_dict(self) -> dict[str, Any]:
        return {}

    @property
    def citation(self) -> str:
        return GLAE_CITATION
