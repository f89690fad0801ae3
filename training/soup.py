"""Interpolate two GLAE models of one backbone in weight space (WiSE-FT: Wortsman et al., 2022, "Robust fine-tuning
of zero-shot models", arXiv:2109.01903; model soups: Wortsman et al., 2022, arXiv:2203.05482).

A stage trained on top of a model (the long-text stage on top of the default) moves it along one direction; a point
part of the way back keeps most of what the stage taught and most of what it cost. The interpolation is exact:

- LoRA: peft's ``add_weighted_adapter(combination_type="cat")`` stacks both adapters into one of rank
  ``r_a + r_b``, so the folded weight update is ``(1 - w) * dW_a + w * dW_b``;
- the special-token rows (peft trainable-token deltas and the rows saved beside the bridge) and the bridge:
  ``(1 - w) * a + w * b``.

Usage (the two models must share backbone and special tokens)::

    python training/soup.py runs/stage10-control/final runs/stage10-cosent/final --weight 0.5 \
        --output runs/stage10-soup-0.5
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import glae_st
from glae_st.module import ADAPTER_FOLDER, GLAEEmbedding

SOUP = "soup"
"""The adapter name the interpolation is built under before it is saved as the model's only adapter."""


def interpolate(model_a: SentenceTransformer, model_b: SentenceTransformer, weight: float) -> SentenceTransformer:
    """Turn ``model_a`` into ``(1 - weight) * model_a + weight * model_b`` (in place) and return it.

    Args:
        model_a: A GLAE model with a LoRA adapter; it becomes the interpolation.
        model_b: A GLAE model of the same backbone with a LoRA adapter (saved; its adapter folder is read).
        weight: 0 keeps ``model_a``, 1 gives ``model_b``.
    """
    module_a, module_b = model_a[0], model_b[0]
    for module in (module_a, module_b):
        if not isinstance(module, GLAEEmbedding) or not hasattr(module.causal_lm, "peft_config"):
            raise ValueError("both models must be GLAE models with a LoRA adapter (glae_st.GLAEEmbedding + peft)")
        if len(module.causal_lm.peft_config) > 1:
            raise ValueError(
                "soup.py interpolates models with one LoRA adapter; this one has "
                f"{len(module.causal_lm.peft_config)} ({', '.join(module.causal_lm.peft_config)}). Interpolate the "
                "models it was trained from, then train its extra adapters on the result."
            )
    if module_a.backbone != module_b.backbone:
        raise ValueError(f"backbones differ: {module_a.backbone!r} and {module_b.backbone!r}")
    model_a.train()  # unfold the adapters: the stacked adapter is built from the LoRA factors
    model_b.train()
    peft_a, peft_b = module_a.causal_lm, module_b.causal_lm
    (name_a,) = peft_a.peft_config
    (name_b,) = peft_b.peft_config
    other = f"{name_b}_b"
    with tempfile.TemporaryDirectory() as folder:
        peft_b.save_pretrained(folder, save_embedding_layers=False)
        peft_a.load_adapter(folder if name_b == "default" else str(Path(folder) / name_b), adapter_name=other)
    peft_a.add_weighted_adapter([name_a, other], [1.0 - weight, weight], SOUP, combination_type="cat")
    with torch.no_grad():
        for module in peft_a.modules():
            deltas = getattr(module, "trainable_tokens_delta", None)
            if deltas is not None and SOUP in deltas:
                deltas[SOUP].copy_(torch.lerp(deltas[name_a], deltas[other], weight))
        ids = torch.tensor(list(module_a.special_token_ids.values()))
        rows_a = module_a.base_lm.get_input_embeddings().weight
        rows_b = module_b.base_lm.get_input_embeddings().weight
        rows_a[ids] = torch.lerp(rows_a[ids], rows_b[ids], weight)
        for param_a, param_b in zip(module_a.bridge.parameters(), module_b.bridge.parameters(), strict=True):
            param_a.copy_(torch.lerp(param_a, param_b, weight))
    peft_a.set_adapter(SOUP)
    for name in (name_a, other):
        peft_a.delete_adapter(name)
    if module_a.embedding_norm and module_b.embedding_norm:
        module_a.embedding_norm = (1.0 - weight) * module_a.embedding_norm + weight * module_b.embedding_norm
    module_a.trained_recurrence = module_a.trained_recurrence or module_b.trained_recurrence
    model_a.eval()
    return model_a


def save(model: SentenceTransformer, output: Path) -> None:
    """Save an interpolated model; its adapter (named :data:`SOUP`) is saved as the folder's only adapter."""
    model.save(str(output))
    adapter = output / ADAPTER_FOLDER
    nested = adapter / SOUP  # peft saves an adapter not named "default" in a subfolder of its name
    for path in nested.iterdir():
        shutil.move(str(path), adapter / path.name)
    nested.rmdir()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_a", help="Folder or name of the model at weight 0.")
    parser.add_argument("model_b", help="Folder or name of the model at weight 1.")
    parser.add_argument("--weight", type=float, required=True, help="Share of model_b, in [0, 1].")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--force", action="store_true", help="Overwrite --output if it exists.")
    args = parser.parse_args(argv)
    if not 0.0 <= args.weight <= 1.0:
        parser.error(f"--weight must lie in [0, 1], not {args.weight}")
    if args.output.exists() and not args.force:
        parser.error(f"{args.output} exists; pass --force to overwrite it")
    model = interpolate(glae_st.load_model(args.model_a), glae_st.load_model(args.model_b), args.weight)
    save(model, args.output)
    (args.output / "soup.json").write_text(
        json.dumps({"model_a": args.model_a, "model_b": args.model_b, "weight": args.weight}, indent=1) + "\n"
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
