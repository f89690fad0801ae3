"""Choose a default on dev data: full STS-B dev (1,500 pairs) and greedy decode token F1 on 64 Lee dev sentences,
raw and after L2-normalising and rescaling to the median norm, for each model folder given.

    python training/select_on_dev.py runs/distill/final runs/default-1340 > training/logs/smollm2-distill.dev-selection.json
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

import glae_st
from glae_st import corpora
from glae_st.evaluation import token_f1

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from training import data

out = {}
texts = data.held_out_decode_texts(64)
for path in sys.argv[1:]:
    model = glae_st.load_model(path)
    rows = corpora.stsb("dev")
    a = model.encode([r[0] for r in rows], convert_to_tensor=True, batch_size=64)
    b = model.encode([r[1] for r in rows], convert_to_tensor=True, batch_size=64)
    spearman = 100 * spearmanr(torch.nn.functional.cosine_similarity(a, b).numpy(), [r[2] for r in rows]).statistic
    raw = model.encode(texts)
    norm = float(np.median(np.linalg.norm(raw, axis=1)))
    model[0].embedding_norm = norm
    greedy = glae_st.decode(model, raw, max_new_tokens=48)
    rescaled = glae_st.decode(model, raw / np.linalg.norm(raw, axis=1, keepdims=True), max_new_tokens=48)
    out[path] = {
        "stsb_dev_spearman_1500": float(spearman),
        "median_norm": norm,
        "norm_spread": [float(np.percentile(np.linalg.norm(raw, axis=1), q)) for q in (5, 95)],
        "dev64_token_f1_raw": float(np.mean([token_f1(p, r) for p, r in zip(greedy, texts)])),
        "dev64_token_f1_normalised_rescaled": float(np.mean([token_f1(p, r) for p, r in zip(rescaled, texts)])),
    }
print(json.dumps(out, indent=1))
