"""EmbeddingTranslator: map another embedding model's vectors into a GLAE model's space, so GLAE can decode them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sentence_transformers.base.modules import Module
from torch import Tensor, nn
from tqdm.auto import tqdm

RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)
"""Ridge penalties :meth:`EmbeddingTranslator.fit` chooses from, on held-out rows of the fitting corpus."""
MLP_HIDDEN_FEATURES = 2048
"""Width of the two hidden layers of the MLP translator that :meth:`EmbeddingTranslator.fit` tries beside ridge."""


class EmbeddingTranslator(Module):
    """A map from a source model's embedding space into a GLAE model's: either affine, fitted in closed form by
    ridge regression (``y = x W + b`` on centred embeddings), or an MLP with two GELU hidden layers trained by
    mean squared error on standardised targets; :meth:`fit` tries both on texts that both models embedded and keeps
    the one whose translations are closer (cosine) to the true GLAE vectors on held-out rows. With it, a GLAE model
    decodes (inverts) the embeddings of any other model, the attack of vec2text (Morris et al., 2023, "Text
    Embeddings Reveal (Almost) As Much As Text") without training an inversion model: GLAE is already an inverter
    for its own space (Zhang et al., 2024, "Generative Language Autoencoders Are Lossless Embedding Models").

    It is a sentence-transformers module: appended to the source model it turns its ``sentence_embedding`` into
    GLAE-space vectors, and it saves and loads as a ``config.json`` plus ``model.safetensors``. The config names
    both models and the target's weights revision (:func:`glae_st.saved_model.weights_revision`), and
    :meth:`check_source` and :meth:`check_target` refuse a source model or GLAE weights it was not fitted for.

    Args:
        in_features: The source model's embedding dimension.
        out_features: The GLAE model's embedding dimension.
        source_model: Name of the source model (as :func:`glae_st.audit.model_label` writes it).
        target_model: Name of the GLAE model whose space is the target.
        hidden_features: Width of the MLP's two hidden layers; 0 for the affine (ridge) map.
        ridge_alpha: The ridge penalty of the affine fit (None for an MLP).
        fit_texts: How many texts the map was fitted on.
        dev_cosine: Mean cosine of translated and true GLAE vectors on the held-out rows of the fit.
        target_revision: The weights revision of the GLAE model whose vectors were the targets (None: not recorded).

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
        "hidden_features",
        "ridge_alpha",
        "fit_texts",
        "dev_cosine",
        "target_revision",
    ]

    def __init__(
        self,
        in_features: int,
        out_features: int,
        source_model: str,
        target_model: str,
        hidden_features: int = 0,
        ridge_alpha: float | None = None,
        fit_texts: int = 0,
        dev_cosine: float | None = None,
        target_revision: str | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.source_model = source_model
        self.target_model = target_model
        self.hidden_features = hidden_features
        self.ridge_alpha = ridge_alpha
        self.fit_texts = fit_texts
        self.dev_cosine = dev_cosine
        self.target_revision = target_revision
        if hidden_features:
            self.projection: nn.Module = nn.Sequential(
                nn.Linear(in_features, hidden_features),
                nn.GELU(),
                nn.Linear(hidden_features, hidden_features),
                nn.GELU(),
                nn.Linear(hidden_features, out_features),
            )
        else:
            self.projection = nn.Linear(in_features, out_features)

    @classmethod
    def fit(
        cls,
        source: np.ndarray,
        target: np.ndarray,
        source_model: str,
        target_model: str,
        hidden_features: Sequence[int] = (0, MLP_HIDDEN_FEATURES),
        alphas: Sequence[float] = RIDGE_ALPHAS,
        epochs: int = 20,
        dev_fraction: float = 0.05,
        seed: int = 0,
        target_revision: str | None = None,
    ) -> EmbeddingTranslator:
        """Fit a map on paired embeddings of the same texts (rows) and keep the best on a held-out ``dev_fraction``
        of the rows, by the mean cosine of translated and true target vectors. Each width in ``hidden_features`` is
        a candidate: 0 is the ridge map (its penalty chosen from ``alphas`` on the same rows, then refitted on all
        rows), any other width an MLP trained for ``epochs`` on the other rows. ``target_revision`` is recorded for
        :meth:`check_target`.

        Raises:
            ValueError: The arrays are not 2-D, their row counts differ, or there are too few rows to fit.
        """
        source, target = np.asarray(source, dtype=np.float32), np.asarray(target, dtype=np.float32)
        if source.ndim != 2 or target.ndim != 2 or len(source) != len(target):
            raise ValueError(
                f"fit needs two 2-D arrays with one row per text, got shapes {source.shape} and {target.shape}."
            )
        if len(source) < 20:
            raise ValueError(f"fit needs at least 20 texts embedded by both models, got {len(source)}.")
        if not hidden_features or any(width < 0 for width in hidden_features):
            raise ValueError(
                f"hidden_features needs at least one width, 0 for ridge or a positive MLP width; got {hidden_features}."
            )
        order = np.random.default_rng(seed).permutation(len(source))
        n_dev = max(1, int(len(source) * dev_fraction))
        dev, train = order[:n_dev], order[n_dev:]
        candidates = []
        for width in hidden_features:
            if width:
                translator = cls(source.shape[1], target.shape[1], source_model, target_model, width)
                translator._train_mlp(source[train], target[train], epochs, seed)
                translator.fit_texts = len(train)
                translator.dev_cosine = _mean_cosine(translator.translate(source[dev]).numpy(), target[dev])
            else:
                translator = cls._fit_ridge(source, target, train, dev, alphas, source_model, target_model)
            translator.target_revision = target_revision
            candidates.append(translator)
        return max(candidates, key=lambda candidate: candidate.dev_cosine)

    @classmethod
    def _fit_ridge(
        cls,
        source: np.ndarray,
        target: np.ndarray,
        train: np.ndarray,
        dev: np.ndarray,
        alphas: Sequence[float],
        source_model: str,
        target_model: str,
    ) -> EmbeddingTranslator:
        """The ridge map with the penalty whose fit on ``train`` rows is best on ``dev`` rows, refitted on all; its
        ``dev_cosine`` is that of the ``train``-only fit, so it compares fairly with an MLP's."""
        source, target = source.astype(np.float64), target.astype(np.float64)

        def dev_cosine(alpha: float) -> float:
            weight, bias = _ridge(source[train], target[train], alpha)
            return _mean_cosine(source[dev] @ weight + bias, target[dev])

        cosine, alpha = max(((dev_cosine(alpha), alpha) for alpha in alphas), key=lambda scored: scored[0])
        weight, bias = _ridge(source, target, alpha)
        translator = cls(source.shape[1], target.shape[1], source_model, target_model, 0, alpha, len(source), cosine)
        with torch.no_grad():
            translator.projection.weight.copy_(torch.from_numpy(weight.T))
            translator.projection.bias.copy_(torch.from_numpy(bias))
        return translator

    def _train_mlp(self, source: np.ndarray, target: np.ndarray, epochs: int, seed: int, batch_size: int = 256) -> None:
        """Train the MLP by AdamW (one-cycle learning rate) on standardised inputs and targets, then fold both
        standardisations into its first and last layers, so it maps raw vectors to raw vectors."""
        inputs, outputs = torch.from_numpy(source), torch.from_numpy(target)
        input_mean, input_std = inputs.mean(0), inputs.std(0).clamp_min(1e-6)
        output_mean, output_std = outputs.mean(0), outputs.std(0).clamp_min(1e-6)
        inputs, outputs = (inputs - input_mean) / input_std, (outputs - output_mean) / output_std
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.projection.apply(lambda layer: layer.reset_parameters() if isinstance(layer, nn.Linear) else None)
        steps_per_epoch = max(1, len(inputs) // batch_size)
        optimizer = torch.optim.AdamW(self.projection.parameters(), lr=1e-3, weight_decay=0.01)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-3, total_steps=epochs * steps_per_epoch)
        self.projection.train()
        for _ in tqdm(range(epochs), desc=f"Training the MLP translator on {len(inputs):,} rows", unit="epoch"):
            order = torch.randperm(len(inputs), generator=generator)
            for step in range(steps_per_epoch):
                rows = order[step * batch_size : (step + 1) * batch_size]
                loss = nn.functional.mse_loss(self.projection(inputs[rows]), outputs[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        self.projection.eval()
        first, last = self.projection[0], self.projection[-1]
        with torch.no_grad():
            first.bias.sub_(first.weight @ (input_mean / input_std))
            first.weight.div_(input_std)
            last.weight.mul_(output_std[:, None])
            last.bias.mul_(output_std).add_(output_mean)

    def forward(self, features: dict[str, Tensor], **kwargs: Any) -> dict[str, Tensor]:
        features["sentence_embedding"] = self.projection(features["sentence_embedding"].to(self.dtype))
        return features

    @property
    def dtype(self) -> torch.dtype:
        return next(self.projection.parameters()).dtype

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
            return self.projection(vectors.to(self.dtype))

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

    def check_target(self, revision: str | None) -> None:
        """Refuse GLAE weights other than those whose space this translator maps into (when both are known).

        Raises:
            ValueError: ``revision`` differs from the recorded ``target_revision``.
        """
        if self.target_revision is not None and revision is not None and revision != self.target_revision:
            raise ValueError(
                f"This translator maps into the space of {self.target_model} at weights revision "
                f"{self.target_revision}, but the GLAE model given has revision {revision}; fit one for it (glae "
                "audit without --translator)."
            )

    def get_embedding_dimension(self) -> int:
        return self.out_features

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        """Write ``config.json`` and ``model.safetensors`` to ``output_path``, each file complete or not at all
        (written beside it, then renamed in: :func:`glae_st.atomic.files_into`)."""
        from glae_st.atomic import files_into

        with files_into(output_path) as folder:
            self.save_config(str(folder))
            self.save_torch_weights(str(folder), safe_serialization=safe_serialization)

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


def _mean_cosine(predicted: np.ndarray, target: np.ndarray) -> float:
    """Mean row-wise cosine of two (rows, dimension) arrays."""
    norms = np.linalg.norm(predicted, axis=1) * np.linalg.norm(target, axis=1)
    return float(np.mean(np.sum(predicted * target, axis=1) / np.maximum(norms, 1e-12)))
