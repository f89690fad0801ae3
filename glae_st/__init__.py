"""glae-st: Generative Language AutoEncoders (GLAE) as sentence-transformers models.

Example::

    import glae_st

    model = glae_st.load_model(glae_st.DEFAULT_MODEL)
    embeddings = model.encode(["A cat sits on the mat.", "Stocks fell sharply."])
    texts = glae_st.decode(model, embeddings)

``import glae_st`` is light: torch, transformers and sentence-transformers are imported when a name that needs them
is first used (``glae_st.load_model``, ``from glae_st import GLAEEmbedding``, ...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "BackboneLoadError": "glae_st.backbone",
    "load_backbone": "glae_st.backbone",
    "EmbeddingBridge": "glae_st.bridge",
    "CompressTokenEmbedding": "glae_st.compress_tokens",
    "decode": "glae_st.decoding",
    "generate_long": "glae_st.long_text",
    "GLAEEmbedding": "glae_st.module",
    "DEFAULT_MODEL": "glae_st.registry",
    "load_model": "glae_st.registry",
    "resolve_model_name": "glae_st.registry",
    "EmbeddingTranslator": "glae_st.translator",
}
"""Public names and the module that defines each, imported on first use (PEP 562)."""

__all__ = [
    "DEFAULT_MODEL",
    "BackboneLoadError",
    "CompressTokenEmbedding",
    "EmbeddingBridge",
    "EmbeddingTranslator",
    "GLAEEmbedding",
    "decode",
    "generate_long",
    "load_backbone",
    "load_model",
    "resolve_model_name",
]
"""The names of :data:`_LAZY`, written out for linters and ``from glae_st import *``."""

if TYPE_CHECKING:
    from glae_st.backbone import BackboneLoadError, load_backbone
    from glae_st.bridge import EmbeddingBridge
    from glae_st.compress_tokens import CompressTokenEmbedding
    from glae_st.decoding import decode
    from glae_st.long_text import generate_long
    from glae_st.module import GLAEEmbedding
    from glae_st.registry import DEFAULT_MODEL, load_model, resolve_model_name
    from glae_st.translator import EmbeddingTranslator


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'glae_st' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
