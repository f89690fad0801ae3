"""EmbeddingTranslator: map another embedding model's vectors into a GLAE model's space, so GLAE can decode them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sentence_transformers.base.modules import Module
from torch import Tensor, nn

RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)
"""Ridge penalties :meth:`EmbeddingTranslator.fit` chooses from, on held-out rows of the fitting corpus."""


class EmbeddingTranslator(Module):
    """An affine map from a source model's embedding space into a GLAE model's, fitted in closed form by ridge
    regression on texts that both models embedded: ``y = x W + b``, ``W = (Xc^T Xc + alpha I)^-1 Xc^T Yc`` on
    centred embeddings. With it, a GLAE model decodes (inverts) the embeddings of any other model, the attack of
    vec2text (Morris et al., 2023, "Text Embeddings Reveal (Almost) As Much As Text") without training an
    inversion model: GLAE is already an inverter for its own space (Zhang et al., 2024, "Generative Language
    Autoencoders Are Lossless Embedding Models").

    It is a sentence-transformers module: appended to the source model it turns its ``sentence_embedding`` into
    GLAE-space vectors, and it saves and loads as a ``config.json`` plus ``model.safetensors``. The config names
    both models, and :meth:`check_source` refuses a source model it was not fitted for.

    Args:
        in_features: The source model's embedding dimension.
        out_features: The GLAE model's embedding dimension.
        source_model: Name of the source model (as :func:`glae_st.audit.model_label` writes it).
        target_model: Name of the GLAE model whose space is the target.
        ridge_alpha: The ridge penalty of the fit.
        fit_texts: How many texts the map was fitted on.

    Example::

        from sentence_transformers import SentenceTransformer
        import glae_st
        from glae_st import EmbeddingTranslator

        glae = glae_st.load_model(glae_st.DEFAULT_MODEL)
        minilm = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
        translator = EmbeddingTranslator.fit(minilm.encode(texts), glae.encode(texts), "all-MiniLM-L6-v2", "glae")
        glae_st.decode(glae, translator.translate(minilm.encode(["A stolen embedding."])))
    """

    config_keys: ClassVar[list[str]] = [
        "in_features",
        "out_features",
        "source_model",
        "target_model",
        "ridge_alpha",
        "fit_texts",
    ]

    def __init__(
        self,
        in_features: int,
        out_features: int,
        source_model: str,
        target_model: str,
        ridge_alpha: float = 1.0,
        fit_texts: int = 0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.source_model = source_model
        self.target_model = target_model
        self.ridge_alpha = ridge_alpha
        self.fit_texts = fit_texts
        self.linear = nn.Linear(in_features, out_features)

    @classmethod
    def fit(
        cls,
        source: np.ndarray,
        target: np.ndarray,
        source_model: str,
        target_model: str,
        alphas: tuple[float, ...] = RIDGE_ALPHAS,
        dev_fraction: float = 0.05,
        seed: int = 0,
    ) -> EmbeddingTranslator:
        """Fit the map on paired embeddings of the same texts (rows), choosing the ridge penalty by the mean cosine
        of translated and true target vectors on a held-out ``dev_fraction`` of the rows, then refitting on all.

        Raises:
            ValueError: The arrays are not 2-D, their row counts differ, or there are too few rows to fit.
        """
        source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
        if source.ndim != 2 or target.ndim != 2 or len(source) != len(target):
            raise ValueError(
                f"fit needs two 2-D arrays with one row per text, got shapes {source.shape} and {target.shape}."
            )
        if len(source) < 20:
            raise ValueError(f"fit needs at least 20 texts embedded by both models, got {len(source)}.")
        order = np.random.default_rng(seed).permutation(len(source))
        n_dev = max(1, int(len(source) * dev_fraction))
        dev, train = order[:n_dev], order[n_dev:]

        def cosine(alpha: float) -> float:
            weight, bias = _ridge(source[train], target[train], alpha)
            predicted = source[dev] @ weight + bias
            norms = np.linalg.norm(predicted, axis=1) * np.linalg.norm(target[dev], axis=1)
            return float(np.mean(np.sum(predicted * target[dev], axis=1) / np.maximum(norms, 1e-12)))

        alpha = max(alphas, key=cosine)
        weight, bias = _ridge(source, target, alpha)
        translator = cls(source.shape[1], target.shape[1], source_model, target_model, alpha, len(source))
        with torch.no_grad():
            translator.linear.weight.copy_(torch.from_numpy(weight.T))
            translator.linear.bias.copy_(torch.from_numpy(bias))
        return translator

    def forward(self, features: dict[str, Tensor], **kwargs: Any) -> dict[str, Tensor]:
        features["sentence_embedding"] = self.linear(features["sentence_embedding"].to(self.linear.weight.dtype))
        return features

    def translate(self, embeddings: np.ndarray | Tensor) -> Tensor:
        """Source-model embeddings, (batch, in_features), mapped into the GLAE space, (batch, out_features).

        Raises:
            ValueError: The embeddings do not have ``in_features`` columns.
        """
        vectors = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, Tensor) else embeddings)
        if vectors.dim() != 2 or vectors.shape[1] != self.in_features:
            raise ValueError(
                f"This translator maps {self.in_features}-dimensional {self.source_model} embeddings; got shape "
                f"{tuple(vectors.shape)}. Encode the texts with {self.source_model}, or fit a translator for your model."
            )
        with torch.no_grad():
            return self.linear(vectors.to(self.linear.weight.dtype))

    def check_source(self, model_name: str, dimension: int) -> None:
        """Refuse a source model other than the one this translator was fitted for.

        Raises:
            ValueError: ``model_name`` or ``dimension`` differ from the fitted source model's.
        """
        if model_name != self.source_model or dimension != self.in_features:
            raise ValueError(
                f"This translator was fitted for {self.source_model} ({self.in_features} dimensions), not for "
                f"{model_name} ({dimension} dimensions); fit one for {model_name} (glae audit without --translator)."
            )

    def get_embedding_dimension(self) -> int:
        return self.out_features

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        Path(output_path).mkdir(parents=True, exist_ok=True)
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(cls, model_name_or_path: str, **kwargs: Any) -> EmbeddingTranslator:
        """Load a translator saved with :meth:`save`.

        Raises:
            FileNotFoundError: The folder holds no saved translator.
        """
        folder = Path(model_name_or_path)
        if not (folder / cls.config_file_name).is_file() or not (folder / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"{str(folder)!r} holds no saved EmbeddingTranslator (config.json and model.safetensors)."
            )
        config = cls.load_config(str(folder))
        translator = cls(**config)
        return cls.load_torch_weights(str(folder), model=translator)


def _ridge(source: np.ndarray, target: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge regression with an unpenalised intercept: ``(weight (in, out), bias (out,))``."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    centred = source - source_mean
    gram = centred.T @ centred + alpha * np.eye(source.shape[1])
    weight = np.linalg.solve(gram, centred.T @ (target - target_mean))
    return weight, target_mean - source_mean @ weight
