"""CorrectionLoss: teach a GLAE model to correct its own decodes (a learned corrector, after vec2text)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

from glae_st.correction import correction_nll
from glae_st.decoding import glae_module

VEC2TEXT_CITATION = """@inproceedings{morris2023text,
    title = {Text Embeddings Reveal (Almost) As Much As Text},
    author = {Morris, John X. and Kuleshov, Volodymyr and Shmatikov, Vitaly and Rush, Alexander M.},
    booktitle = {Proceedings of the 2023 Conference on Empirical Methods in Natural Language Processing},
    year = {2023},
    eprint = {2310.06816},
    archivePrefix = {arXiv},
    url = {https://arxiv.org/abs/2310.06816}
}"""


class CorrectionLoss(nn.Module):
    """The NLL of a text given a hypothesis of it, the hypothesis's embedding and the text's own embedding, after the
    correction prompt (:data:`glae_st.prompts.CORRECT`): the corrector of vec2text (Morris et al., 2023, "Text
    Embeddings Reveal (Almost) As Much As Text", section 4), trained into the GLAE model itself.

    Each row holds a hypothesis (a decode of the text's embedding, or an earlier correction of it), the text, and
    as label both embeddings, computed at inference before training (the repository's ``training.corrector_data``
    makes such rows from the model's own decodes), so the
    corrector learns from exactly the vectors that :func:`glae_st.decode` will hand it. Rows whose hypothesis is
    already the text teach the corrector to keep a right text. Train only the corrector adapter
    (:meth:`GLAEEmbedding.add_corrector_adapter`): every embedding and first decode stays as it was.

    Args:
        model: A GLAE SentenceTransformer with a corrector adapter.

    Inputs:
        +-------------------------+-----------------------------------------------------------+
        | Texts                   | Labels                                                    |
        +=========================+===========================================================+
        | (hypothesis, text) pairs| (2, dim) per row: the text's and the hypothesis's vectors |
        +-------------------------+-----------------------------------------------------------+

    Example::

        from datasets import Dataset
        from sentence_transformers import SentenceTransformerTrainer
        import glae_st
        from glae_st.losses import CorrectionLoss

        model = glae_st.load_model(glae_st.DEFAULT_MODEL)
        texts = ["Stocks fell sharply on Monday."]
        hypotheses = glae_st.decode(model, model.encode(texts), num_candidates=1, refinement_steps=0)
        labels = [[t, h] for t, h in zip(model.encode(texts), model.encode(hypotheses))]
        model[0].add_corrector_adapter()
        train = Dataset.from_dict({"hypothesis": hypotheses, "text": texts, "label": labels})
        trainer = SentenceTransformerTrainer(model=model, train_dataset=train, loss=CorrectionLoss(model))
    """

    def __init__(self, model: SentenceTransformer) -> None:
        super().__init__()
        self.model = model
        self.glae = glae_module(model)
        if not self.glae.has_corrector_adapter:
            raise ValueError("CorrectionLoss trains a corrector adapter: call model[0].add_corrector_adapter() first.")

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        features = list(sentence_features)
        if len(features) != 2 or labels is None or labels.ndim != 3 or labels.shape[1] != 2:
            raise ValueError(
                "CorrectionLoss needs (hypothesis, text) columns and a label of shape (2, dim) per row (the text's "
                "and the hypothesis's embeddings); build rows with training.corrector_data.correction_rows."
            )
        hypothesis, text = features
        return correction_nll(
            self.glae,
            labels[:, 0],
            labels[:, 1],
            self.glae.text_token_ids(hypothesis),
            self.glae.text_token_ids(text),
        )

    def get_config_dict(self) -> dict[str, Any]:
        return {}

    @property
    def citation(self) -> str:
        return VEC2TEXT_CITATION
