"""Fixtures: tiny random Llama backbones (built by glae_st.tiny, no downloads) and GLAE models on them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from peft import LoraConfig
from sentence_transformers import SentenceTransformer

from glae_st import GLAEEmbedding
from glae_st.tiny import save_tiny_backbone

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# exactness tests compare float32 paths; tests of bf16 inference set inference_dtype explicitly
os.environ.setdefault("GLAE_ST_INFERENCE_DTYPE", "float32")


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Llama initialised like a real one (std 0.02)."""
    return save_tiny_backbone(tmp_path_factory.mktemp("tiny-llama"), initializer_range=0.02)


@pytest.fixture(scope="session")
def wide_tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Llama with wider weights (std 0.2): its logits can grow enough for a toy model to memorise."""
    return save_tiny_backbone(tmp_path_factory.mktemp("wide-tiny-llama"), initializer_range=0.2)


@pytest.fixture
def tiny_model(tiny_backbone: str) -> SentenceTransformer:
    """A fresh GLAE SentenceTransformer on the tiny backbone."""
    torch.manual_seed(0)
    return SentenceTransformer(modules=[GLAEEmbedding(tiny_backbone, max_seq_length=64)], device="cpu")


@pytest.fixture
def lora_model(tiny_model: SentenceTransformer) -> SentenceTransformer:
    """The tiny model with a main adapter whose update is not zero, so that copying it is a real test."""
    tiny_model[0].add_lora(LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in tiny_model[0].causal_lm.named_parameters():
            if "lora_B" in name or "trainable_tokens_delta" in name:
                parameter.normal_(std=0.05)
    return tiny_model


def fig3_by_hand(
    module: GLAEEmbedding, text: str, chunk: int = 8, adapters: tuple[str, str] | None = None
) -> tuple[torch.Tensor, int]:
    """e_1 = Embed(chunk_1); e_k = Embed(e_{k-1} + chunk_k), each the full model's output_hidden_states[-2][-1], and
    the number of chunks. With ``adapters`` (first, later), peft's ``set_adapter`` picks the adapter of chunk 1 and
    that of every later chunk (the module must be in training mode, so that nothing is folded)."""
    ids = module.tokenizer(text, add_special_tokens=False).input_ids
    chunks = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]
    embed = module.causal_lm.get_input_embeddings()
    with torch.no_grad():
        if adapters:
            module.causal_lm.set_adapter(adapters[0])
        first = torch.tensor([module.encode_prefix_ids + chunks[0] + module.encode_suffix_ids])
        state = module.causal_lm(first, output_hidden_states=True).hidden_states[-2][0, -1]
        if adapters:
            module.causal_lm.set_adapter(adapters[1])
        for later in chunks[1:]:
            inputs = torch.cat(
                [
                    embed(torch.tensor(module.iterate_prefix_ids)),
                    module.bridge(state)[None],
                    embed(torch.tensor(module.iterate_suffix_ids + later + module.encode_suffix_ids)),
                ]
            )[None]
            state = module.causal_lm(inputs_embeds=inputs, output_hidden_states=True).hidden_states[-2][0, -1]
    return state, len(chunks)


@pytest.fixture(name="fig3_by_hand")
def fig3_by_hand_fixture() -> Callable[..., tuple[torch.Tensor, int]]:
    """:func:`fig3_by_hand`, for the tests of the recurrence."""
    return fig3_by_hand


@pytest.fixture
def saved_model_dir(tiny_model: SentenceTransformer, tmp_path: Path) -> Path:
    tiny_model.save(str(tmp_path / "glae"))
    return tmp_path / "glae"


def _train_toy_autoencoder(
    module: GLAEEmbedding, texts: list[str], steps: int = 150
) -> tuple[SentenceTransformer, float]:
    """Give ``module`` LoRA and train it on ``texts`` with GLAELoss (L1 at 0.1 + L2), Adam lr 1e-2, full batch."""
    from peft import LoraConfig

    from glae_st.losses import GLAELoss

    model = SentenceTransformer(modules=[module], device="cpu")
    module.add_lora(LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    loss = GLAELoss(model, repulsion_weight=0.1)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    features = module.preprocess(texts)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        value = loss([features])
        value.backward()
        optimizer.step()
    return model, value.item()


@pytest.fixture
def train_toy_autoencoder():
    """A function that trains a GLAE module on a few texts until it reconstructs them (returns model, last loss)."""
    return _train_toy_autoencoder


@pytest.fixture
def news_articles() -> list[str]:
    """Two short news articles of several sentences, for the benchmarks that cut texts out of held-out articles."""
    return [
        "Rain fell in the north. The river rose overnight. Roads were closed near the bridge. Crews worked all day.",
        "Stocks fell sharply on Monday. Banks led the losses. The dollar was steady against the yen.",
    ]


@pytest.fixture
def vader_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cached copy of a small movieReviewSnippets ground-truth file for the offline VADER task (no download)."""
    from benchmarks.local_tasks import vader_cache_dir

    monkeypatch.setenv("GLAE_ST_CACHE", str(tmp_path))
    folder = vader_cache_dir()
    folder.mkdir(parents=True)
    lines = [f"{i}\t{2.5 if i % 2 else -1.5}\tSnippet number {i}." for i in range(1, 21)]
    lines += ["21\t0.0\tA neutral snippet.", "22\t3.0\tSnippet number 1."]  # neutral, and a duplicate text
    (folder / "movieReviewSnippets_GroundTruth.txt").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return folder
