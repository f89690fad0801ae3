"""mteb metadata and loader for saved GLAE models, so that ``mteb.evaluate`` runs them with proper model information.

Needs ``mteb`` (``pip install glae-st[bench]``). Example::

    import mteb
    from glae_st.mteb_meta import glae_model_meta

    meta = glae_model_meta()                      # the bundled default (glae_st.DEFAULT_MODEL)
    results = mteb.evaluate(meta, mteb.get_tasks(tasks=["STSBenchmark"]))
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mteb.models import ModelMeta, SentenceTransformerEncoderWrapper
from mteb.models.model_meta import ScoringFunction
from safetensors import safe_open

from glae_st.backbone import SMOLLM2_BACKBONE, SMOLLM2_LICENSE, SMOLLM2_REFERENCE, cached_smollm2
from glae_st.module import GLAEEmbedding
from glae_st.registry import DEFAULT_MODEL, GLAE_WEIGHTS_FILE, load_model
from glae_st.saved_model import read_training_record, trained_weight_files, weights_revision

MTEB_TRAINING_DATA = {"stsb_min_score": "STSBenchmark", "stsb_scored": "STSBenchmark"}
"""mteb names of the training data that a ``data`` setting of ``training_config.json`` selects: STS-B *train* pairs
(positives, or every pair with its score); the other data (packaged corpora) is no mteb task."""


def load_glae_for_mteb(
    model_name: str,
    revision: str | None = None,
    *,
    model_path: str,
    device: str | None = None,
    long_text: str | None = None,
    **kwargs: Any,
) -> SentenceTransformerEncoderWrapper:
    """mteb loader: the GLAE SentenceTransformer saved in ``model_path``, wrapped for mteb.

    The model's own prompts (``config_sentence_transformers.json``) are used; mteb calls ``encode_query`` and
    ``encode_document`` for asymmetric tasks. ``model_name`` and ``revision`` come from the metadata and only label
    the results; ``long_text``, the metadata's experiment parameter, is how the model reads long texts.
    """
    model = load_model(model_path, device=device, **kwargs)
    if long_text is not None:
        model[0].long_text = long_text
    return SentenceTransformerEncoderWrapper(model)


def glae_model_meta(
    model_path: str | Path = DEFAULT_MODEL, name: str | None = None, training_datasets: set[str] | None = None
) -> ModelMeta:
    """mteb :class:`~mteb.models.ModelMeta` of a GLAE model saved in a local folder.

    Args:
        model_path: A folder written by ``SentenceTransformer.save`` with a :class:`~glae_st.GLAEEmbedding` module.
        name: The model name in results (``"organisation/model"``); by default ``"glae-st/<folder name>"``.
        training_datasets: mteb names of the datasets the model was trained on (mteb flags contamination with
            them); by default read from the ``training_config.json`` saved with the model (see
            :data:`MTEB_TRAINING_DATA`), and unknown without one.

    Returns:
        Metadata whose ``revision`` is :func:`~glae_st.saved_model.weights_revision`, a hash of the trained GLAE
        weights (bridge, special-token rows, LoRA adapter), so results of a retrained model never mix with older ones
        in an mteb results folder; a model that reads long texts otherwise than by truncation names its
        ``long_text`` as an mteb experiment parameter, so results of one way of reading never stand for another.

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
    long_text = config.get("long_text", "truncate")
    weight_files = trained_weight_files(folder)
    backbone_folder = _local_backbone_folder(config["backbone"])
    backbone_files = sorted(backbone_folder.glob("*.safetensors")) if backbone_folder else []
    is_smollm2 = config["backbone"] == SMOLLM2_BACKBONE
    if training_datasets is None:
        training_datasets = _mteb_training_datasets(folder)
    return ModelMeta(
        loader=load_glae_for_mteb,
        loader_kwargs={"model_path": str(folder.resolve())},
        name=name or f"glae-st/{folder.resolve().name}",
        revision=weights_revision(folder),
        experiment_kwargs={} if long_text == "truncate" else {"long_text": long_text},
        release_date=None,
        languages=["eng-Latn"],
        n_parameters=_count_parameters(backbone_files + weight_files) if backbone_files else None,
        memory_usage_mb=None,
        max_tokens=config["max_seq_length"] if long_text == "truncate" else float("inf"),
        embed_dim=_embedding_dimension(folder / GLAE_WEIGHTS_FILE),
        license=SMOLLM2_LICENSE if is_smollm2 else None,
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
        return cached_smollm2()
    return Path(backbone) if Path(backbone).is_dir() else None


def _mteb_training_datasets(folder: Path) -> set[str] | None:
    """mteb names of the data that the model and the stages before it (``training_config.json``, ``data`` and
    ``earlier_data``) trained on; None without a config."""
    config, _ = read_training_record(folder)
    if config is None:
        return None
    stages = [*config.get("earlier_data", []), config.get("data", {})]  # the run's own data and its history's
    return {
        name
        for data in stages
        for setting, name in MTEB_TRAINING_DATA.items()
        if data.get(setting) not in (None, False)
    }


def _embedding_dimension(weights_path: Path) -> int:
    """The embedding size: the input size of the bridge saved in ``weights_path`` (no backbone needed)."""
    with safe_open(str(weights_path), framework="pt") as handle:
        return handle.get_slice("bridge.projection.weight").get_shape()[1]


def _count_parameters(files: list[Path]) -> int:
    """The number of values in all tensors of safetensors files, read from their headers only."""
    total = 0
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            total += sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())  # noqa: SIM118 (not iterable)
    return total
