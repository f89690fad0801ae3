"""Encode and decode corpora with Ray Data: one GLAE model per actor, batches streamed through ``map_batches``.

Needs the ``scale`` extra (``pip install "glae-st[scale]"``). Example, on a laptop or a cluster (``ray.init(address=
"auto")``), with a GPU per actor where there are GPUs::

    import ray
    from glae_st.ray_data import GLAEEncoder

    texts = ray.data.read_text("corpus.txt")                     # one row per line, column "text"
    vectors = texts.map_batches(
        GLAEEncoder, fn_constructor_kwargs={"model": "glae-smollm2-135m"},
        batch_size=256, concurrency=4, num_gpus=1,               # 4 actors, one GPU each (num_gpus=0 on CPUs)
    )
    vectors.write_parquet("vectors/")                            # columns: text, embedding, error
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from glae_st.registry import DEFAULT_MODEL


def _load(model: str, device: str | None) -> Any:
    from glae_st.registry import load_model

    return load_model(model, device=device)


def _row_errors(values: Sequence[Any], ids: Sequence[Any]) -> list[str]:
    """Per row, ``""`` for a usable text, else what is wrong with it (naming the row id)."""
    errors = []
    for row_id, value in zip(ids, values):
        if not isinstance(value, str):
            errors.append(f"row {row_id}: expected a string, got {type(value).__name__}")
        elif not value.strip():
            errors.append(f"row {row_id}: empty text")
        else:
            errors.append("")
    return errors


class GLAEEncoder:
    """A callable class for :meth:`ray.data.Dataset.map_batches`: each actor loads a GLAE model once and embeds the
    ``text_column`` of every batch into ``embedding_column`` (float32 vectors, one per row).

    A row that is not a non-empty string does not fail the batch: its embedding is NaN and ``error_column`` says
    what was wrong, with the row's ``id_column`` value (its position in the batch when there is none); every other
    row is embedded as usual.

    Args:
        model: A GLAE model name, folder or Hub id (see :func:`glae_st.load_model`).
        text_column: The column of texts.
        embedding_column: The column the vectors go to.
        error_column: The column of per-row errors (``""`` when the row is fine).
        id_column: The column that identifies rows in errors.
        batch_size: The model's own batch size within a Ray batch.
        device: ``"cuda"``, ``"cpu"``, ...; by default CUDA when the actor has a GPU.

    Example::

        ds = ray.data.from_items([{"id": 0, "text": "A cat sits on the mat."}])
        ds.map_batches(GLAEEncoder, fn_constructor_kwargs={"model": "glae-smollm2-135m"}, concurrency=2).take_all()
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        text_column: str = "text",
        embedding_column: str = "embedding",
        error_column: str = "error",
        id_column: str = "id",
        batch_size: int = 32,
        device: str | None = None,
    ) -> None:
        self.model = _load(model, device)
        self.text_column = text_column
        self.embedding_column = embedding_column
        self.error_column = error_column
        self.id_column = id_column
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.text_column not in batch:
            raise KeyError(f"GLAEEncoder reads the column {self.text_column!r}; the batch has {sorted(batch)}.")
        texts = list(batch[self.text_column])
        ids = list(batch[self.id_column]) if self.id_column in batch else list(range(len(texts)))
        errors = _row_errors(texts, ids)
        good = [row for row, error in enumerate(errors) if not error]
        vectors = np.full((len(texts), self.model.get_embedding_dimension()), np.nan, dtype=np.float32)
        if good:
            vectors[good] = self.model.encode(
                [texts[row] for row in good], batch_size=self.batch_size, convert_to_numpy=True
            )
        return {**batch, self.embedding_column: vectors, self.error_column: np.array(errors, dtype=object)}


class GLAEDecoder:
    """A callable class for :meth:`ray.data.Dataset.map_batches`: each actor loads a GLAE model once and decodes
    the ``embedding_column`` of every batch into ``text_column`` with the decode settings given, else the model's
    own (its ``decoding``, else greedy), as :func:`glae_st.decode` does.

    Args:
        model: A GLAE model name, folder or Hub id.
        embedding_column: The column of vectors.
        text_column: The column the texts go to.
        max_new_tokens: The most tokens generated per vector.
        num_candidates: Candidates per vector, reranked by round-trip cosine (None: the model's own setting).
        refinement_steps: Correction rounds of the round trip (None: the model's own setting).
        batch_size: The decode batch size within a Ray batch.
        device: ``"cuda"``, ``"cpu"``, ...; by default CUDA when the actor has a GPU.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        embedding_column: str = "embedding",
        text_column: str = "decoded",
        max_new_tokens: int = 64,
        num_candidates: int | None = None,
        refinement_steps: int | None = None,
        batch_size: int = 32,
        device: str | None = None,
    ) -> None:
        self.model = _load(model, device)
        self.embedding_column = embedding_column
        self.text_column = text_column
        self.max_new_tokens = max_new_tokens
        self.num_candidates = num_candidates
        self.refinement_steps = refinement_steps
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from glae_st.decoding import decode

        vectors = np.stack(list(batch[self.embedding_column])).astype(np.float32)
        texts = decode(
            self.model,
            vectors,
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
            num_candidates=self.num_candidates,
            refinement_steps=self.refinement_steps,
        )
        return {**batch, self.text_column: np.array(texts, dtype=object)}


def encode_with_ray(
    texts: Sequence[str],
    model: str = DEFAULT_MODEL,
    workers: int = 2,
    gpus_per_worker: float = 0.0,
    batch_size: int = 32,
    address: str | None = None,
) -> np.ndarray:
    """Embed ``texts`` on a Ray cluster (a local one unless ``address``), ``workers`` actors, in input order.

    Raises:
        ValueError: Some texts are empty or not strings (all of them are named, by position).
    """
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    items = [{"id": row, "text": text} for row, text in enumerate(texts)]
    dataset = ray.data.from_items(items).map_batches(
        GLAEEncoder,
        fn_constructor_kwargs={"model": os.fspath(model), "batch_size": batch_size},
        batch_size=max(batch_size, len(texts) // max(1, 4 * workers) or 1),
        concurrency=workers,
        num_gpus=gpus_per_worker,
        num_cpus=1,
    )
    rows = sorted(dataset.take_all(), key=lambda row: row["id"])
    errors = [row["error"] for row in rows if row["error"]]
    if errors:
        raise ValueError(f"{len(errors)} bad rows, nothing written: " + "; ".join(errors[:5]))
    return np.stack([row["embedding"] for row in rows]).astype(np.float32)
