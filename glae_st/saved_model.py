"""Facts about a saved GLAE model folder: the files that training changes and the revision that names them, and the
training record that ``training/train.py`` saves beside them.

The model card (:mod:`glae_st.model_card`), the benchmark metadata (:mod:`glae_st.mteb_meta`), the CLI and the
training scripts all read a folder through these functions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from glae_st.module import ADAPTER_FOLDER
from glae_st.registry import GLAE_WEIGHTS_FILE, resolve_model_name

TRAINING_CONFIG_FILE = "training_config.json"
TRAINING_LOG_FILE = "training_log.json"
"""What ``training/train.py`` writes next to the model it saves: the run's config and the trainer's log history."""


def trained_weight_files(model_path: str | Path) -> list[Path]:
    """The files of a saved GLAE model that training changes: bridge and special-token rows, then the LoRA adapter
    (and the recurrence adapter in its subfolder)."""
    folder = Path(model_path)
    return [folder / GLAE_WEIGHTS_FILE, *sorted((folder / ADAPTER_FOLDER).rglob("*.safetensors"))]


def weights_revision(model_path: str | Path) -> str:
    """The revision of a saved GLAE model: the first 12 hex digits of the SHA-256 of :func:`trained_weight_files`.

    Benchmark results (``glae_st.mteb_meta``) and model cards name a model's weights by it.
    """
    digest = hashlib.sha256()
    for path in trained_weight_files(model_path):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def saved_weights_revision(model: str | Path | None) -> str | None:
    """The :func:`weights_revision` of a GLAE model saved on this machine, given by folder or short name
    (``"glae-smollm2-135m"``); None for a Hub id, or a folder without GLAE weights."""
    if model is None:
        return None
    folder = Path(resolve_model_name(str(model))).expanduser()
    return weights_revision(folder) if (folder / GLAE_WEIGHTS_FILE).is_file() else None


def read_training_record(model_path: str | Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """The training config and log history saved next to a model by ``training/train.py``; None where absent."""
    config_path, log_path = Path(model_path) / TRAINING_CONFIG_FILE, Path(model_path) / TRAINING_LOG_FILE
    return (
        json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else None,
        json.loads(log_path.read_text(encoding="utf-8")) if log_path.is_file() else None,
    )


def trained_steps(log: list[dict[str, Any]]) -> int | None:
    """The last optimiser step recorded in a trainer's log history (None for an empty history)."""
    return max((entry["step"] for entry in log if "step" in entry), default=None)

