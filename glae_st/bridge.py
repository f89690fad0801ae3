"""The bridge from GLAE embedding space (layer -2 hidden states) to the backbone's input-embedding space."""

from __future__ import annotations

import torch
from torch import nn


class EmbeddingBridge(nn.Module):
    """A learned affine map that turns a GLAE embedding into an input embedding for the decode prompt.

    The embedding is a layer -2 hidden state; decoding feeds it to the backbone in place of a token
    (``inputs_embeds``), so it has to live where token embeddings live. The map starts as the identity,
    as in the paper, and is trained with the reconstruction loss (L2).

    Args:
        hidden_size: The size of the embedding (the backbone's hidden size).
        input_embedding_size: The size of the backbone's token embeddings (usually the same).

    Example::

        bridge = EmbeddingBridge(576)
        token_like = bridge(torch.randn(8, 576))  # (8, 576)
    """

    def __init__(self, hidden_size: int, input_embedding_size: int | None = None) -> None:
        super().__init__()
        input_embedding_size = input_embedding_size or hidden_size
        self.projection = nn.Linear(hidden_size, input_embedding_size)
        with torch.no_grad():
            self.projection.weight.copy_(torch.eye(input_embedding_size, hidden_size))
            self.projection.bias.zero_()

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Map in the bridge's own precision (float32, also on a bf16 backbone, so small updates are not lost) and
        return the input's dtype: (batch, input_embedding_size)."""
        return self.projection(embeddings.to(self.projection.weight.dtype)).to(embeddings.dtype)
