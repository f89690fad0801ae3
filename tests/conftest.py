"""Fixtures: a tiny random Llama and a byte-level BPE tokenizer, both built here (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from glae_st import GLAEEmbedding

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = [
    "A cat sits on the mat.",
    "Stocks fell sharply on Monday.",
    "The quick brown fox jumps over the lazy dog.",
    "Encode this text into 1-word length embedding:",
    "Decode this embedding into text:",
    "Rain is expected in the north tomorrow.",
    "She plays the violin every evening.",
    "The committee approved the new budget.",
] * 20


def build_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>")


def save_tiny_backbone(folder: Path, initializer_range: float) -> str:
    """Write a 4-layer random Llama (hidden 64) and its tokenizer to ``folder`` (a Hugging Face folder)."""
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


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
def saved_model_dir(tiny_model: SentenceTransformer, tmp_path: Path) -> Path:
    tiny_model.save(str(tmp_path / "glae"))
    return tmp_path / "glae"
