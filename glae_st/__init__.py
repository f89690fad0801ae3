"""glae-st: Generative Language AutoEncoders (GLAE) as sentence-transformers models.

Example::

    import glae_st

    model = glae_st.load_model(glae_st.DEFAULT_MODEL)   # or SentenceTransformer(path, trust_remote_code=True)
    embeddings = model.encode(["A cat sits on the mat.", "Stocks fell sharply."])
    texts = glae_st.decode(model, embeddings)
"""

from glae_st.backbone import BackboneLoadError, load_backbone
from glae_st.bridge import EmbeddingBridge
from glae_st.compress_tokens import CompressTokenEmbedding
from glae_st.decoding import decode
from glae_st.long_text import generate_long
from glae_st.module import GLAEEmbedding
from glae_st.registry import DEFAULT_MODEL, load_model, resolve_model_name
from glae_st.translator import EmbeddingTranslator

__version__ = "0.1.0"

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
