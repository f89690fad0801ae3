"""The bridge from GLAE embedding space (layer -2 hidden states) to the backbone's input-embedding space."""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingBridge(nn.Module):
    """A learned affine map that turns a GLAE embedding into an input embedding for the decode prompt.

    The embedding is a layer -2 hidden state; decoding feeds it to the backbone in place of a token
    (``inputs_embeds``), so it has to live where token embeddings live. The map starts as the identity,
    as in the paper, and is trained with the reconstruction loss (L2).

    With ``slots > 1`` the vector becomes that many input embeddings in a row (as vec2text's inverter reads an
    embedding as a sequence of pseudo-tokens: Morris et al., 2023, "Text Embeddings Reveal (Almost) As Much As
    Text"); every slot starts as the identity.

    Args:
        hidden_size: The size of the embedding (the backbone's hidden size).
        input_embedding_size: The size of the backbone's token embeddings (usually the same).
        slots: Input embeddings made from each vector.

    Example::

        bridge = EmbeddingBridge(576)
        token_like = bridge(torch.randn(8, 576))  # (8, 576)
        tokens = EmbeddingBridge(576, slots=4).as_tokens(torch.randn(8, 576))  # (8, 4, 576)
    """

    def __init__(self, hidden_size: int, input_embedding_size: int | None = None, slots: int = 1) -> None:
        super().__init__()
        input_embedding_size = input_embedding_size or hidden_size
        self.slots = slots
        self.projection = nn.Linear(hidden_size, slots * input_embedding_size)
        with torch.no_grad():
            self.projection.weight.copy_(torch.eye(input_embedding_size, hidden_size).repeat(slots, 1))
            self.projection.bias.zero_()

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Map in the bridge's own precision (float32, also on a bf16 backbone, so small updates are not lost) and
        return the input's dtype: (batch, slots * input_embedding_size)."""
        return self.projection(embeddings.to(self.projection.weight.dtype)).to(embeddings.dtype)

    def as_tokens(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(batch, slots, input_embedding_size): the input embeddings that stand for each vector."""
        return self(embeddings).unflatten(-1, (self.slots, -1))

    def copy_slots_from(self, other: EmbeddingBridge) -> None:
        """Start every slot as ``other``'s (single-slot) map."""
        with torch.no_grad():
            self.projection.weight.copy_(other.projection.weight.repeat(self.slots, 1))
            self.projection.bias.copy_(other.projection.bias.repeat(self.slots))
