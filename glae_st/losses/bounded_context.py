"""BoundedContextLoss: teach the GLAE memory to carry a text forward (the paper's Fig. 2)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

from glae_st.decoding import glae_module
from glae_st.losses.glae import GLAE_CITATION


class BoundedContextLoss(nn.Module):
    """Language modelling with a bounded context: the NLL of what follows a text, given only the text's GLAE
    embedding (Zhang et al., 2024, "Generative Language Autoencoders Are Lossless Embedding Models", section 5 and
    Fig. 2, "language modeling with infinite context length").

    Each row is a ``(context, continuation)`` pair of consecutive pieces of one document. The context is embedded
    with the model's encode path (chunk by chunk through the Fig. 3 recurrence when it is longer than
    ``max_seq_length``), and the continuation is scored token by token after ``Continue the text after this
    embedding: <embedding>{memory}</embedding><text>`` (:data:`glae_st.prompts.CONTINUE`), the prompt that
    :func:`glae_st.generate_long` uses. The gradient reaches every chunk of the recurrence, so the memory learns to
    keep what the next tokens need; the first tokens of the continuation play the part of the recent window, read
    verbatim at generation time.

    Train it beside :class:`~glae_st.losses.GLAELoss` with a dict of losses keyed by dataset name, so that short
    texts keep their encode and decode objective.

    Args:
        model: A GLAE SentenceTransformer with ``long_text="iterative"`` (first module
            :class:`~glae_st.GLAEEmbedding`).

    Inputs:
        +-------------------------------+--------+
        | Texts                         | Labels |
        +===============================+========+
        | (context, continuation) pairs | none   |
        +-------------------------------+--------+

    Example::

        from datasets import Dataset
        from sentence_transformers import SentenceTransformerTrainer
        import glae_st
        from glae_st.losses import BoundedContextLoss

        model = glae_st.load_model(glae_st.DEFAULT_MODEL)
        model[0].long_text = "iterative"
        train = Dataset.from_dict({"context": [first_part_of_article], "continuation": [what_comes_next]})
        trainer = SentenceTransformerTrainer(model=model, train_dataset=train, loss=BoundedContextLoss(model))
    """

    def __init__(self, model: SentenceTransformer) -> None:
        super().__init__()
        self.model = model
        self.glae = glae_module(model)
        if self.glae.long_text != "iterative":
            raise ValueError(
                "BoundedContextLoss embeds contexts longer than one chunk, so the model needs long_text='iterative' "
                f"(it has {self.glae.long_text!r}); set model[0].long_text = 'iterative' first."
            )

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features = list(sentence_features)
        if len(features) != 2:
            raise ValueError(
                f"BoundedContextLoss needs (context, continuation) columns, got {len(features)} text columns."
            )
        context, continuation = features
        memories = self.model(context)["sentence_embedding"]
        return self.glae.continuation_nll(memories, self.glae.text_token_ids(continuation))

    def get_config_dict(self) -> dict[str, Any]:
        return {}

    @property
    def citation(self) -> str:
        return GLAE_CITATION
