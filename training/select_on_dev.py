"""Choose a default on dev data: full STS-B dev (1,500 pairs) and greedy decode token F1 on 64 Lee dev sentences,
raw and after L2-normalising and rescaling to the median norm, for each model given. Prints one JSON object keyed by
model::

    python -m training.select_on_dev runs/distill/final runs/default-1340 > training/logs/smollm2-distill.dev-selection.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from sentence_transformers import SentenceTransformer

import glae_st
from glae_st import corpora
from glae_st.evaluation import token_f1
from glae_st.util import GREEDY_DECODING
from training import data

DECODE_TEXTS = 64


def dev_scores(model: SentenceTransformer, decode_texts: int = DECODE_TEXTS) -> dict[str, Any]:
    """STS-B dev Spearman x100, the median embedding norm with its 5-95 % spread, and dev decode token F1 of raw and
    of normalised-then-rescaled embeddings. Sets ``model[0].embedding_norm`` to the measured median norm."""
    rows = corpora.stsb("dev")
    first = model.encode([row[0] for row in rows], convert_to_tensor=True, batch_size=64)
    second = model.encode([row[1] for row in rows], convert_to_tensor=True, batch_size=64)
    cosines = torch.nn.functional.cosine_similarity(first, second).cpu().numpy()
    spearman = 100 * spearmanr(cosines, [row[2] for row in rows]).statistic
    texts = data.held_out_decode_texts(decode_texts)
    raw = model.encode(texts)
    norms = np.linalg.norm(raw, axis=1)
    model[0].embedding_norm = float(np.median(norms))
    greedy = glae_st.decode(model, raw, max_new_tokens=48, **GREEDY_DECODING)
    rescaled = glae_st.decode(model, raw / norms[:, None], max_new_tokens=48, **GREEDY_DECODING)
    return {
        f"stsb_dev_spearman_{len(rows)}": float(spearman),
        "median_norm": model[0].embedding_norm,
        "norm_spread": [float(np.percentile(norms, q)) for q in (5, 95)],
        f"dev{len(texts)}_token_f1_raw": float(np.mean([token_f1(p, r) for p, r in zip(greedy, texts)])),
        f"dev{len(texts)}_token_f1_normalised_rescaled": float(
            np.mean([token_f1(p, r) for p, r in zip(rescaled, texts)])
        ),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Score every model given on the command line; print and return the scores."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="Saved GLAE folders or registry names, e.g. runs/stage11/final.")
    args = parser.parse_args(argv)
    models = {}
    for path in args.models:  # all of them before any scoring, so a wrong name costs no minutes of work
        try:
            models[path] = glae_st.load_model(path)
        except (OSError, ValueError) as error:
            parser.error(str(error))
    scores = {path: dev_scores(model) for path, model in models.items()}
    print(json.dumps(scores, indent=1))
    return scores


if __name__ == "__main__":
    main()
