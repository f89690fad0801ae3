"""Tiny random Llama backbones, built locally in a second with no download: for tests and training dry runs.

Example::

    from sentence_transformers import SentenceTransformer
    from glae_st import GLAEEmbedding
    from glae_st.tiny import save_tiny_backbone

    backbone = save_tiny_backbone("/tmp/tiny-llama")   # a Hugging Face folder: config, weights, tokenizer
    model = SentenceTransformer(modules=[GLAEEmbedding(backbone, max_seq_length=64)])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

TOKENIZER_CORPUS: tuple[str, ...] = (
    "A cat sits on the mat.",
    "Stocks fell sharply on Monday.",
    "The quick brown fox jumps over the lazy dog.",
    "Encode this text into 1-word length embedding:",
    "Decode this embedding into text:",
    "Rain is expected in the north tomorrow.",
    "She plays the violin every evening.",
    "The committee approved the new budget.",
) * 20
"""The texts the tiny tokenizer's merges are learnt from (the GLAE prompts among them)."""


def build_tokenizer(corpus: Sequence[str] = TOKENIZER_CORPUS, vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``corpus``, with ``<pad>`` and ``<eos>``; it can spell any text.

    Args:
        corpus: Texts to learn the merges from.
        vocab_size: The most tokens in the vocabulary: the 256 bytes, the two special tokens, then merges.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>")


def save_tiny_backbone(
    folder: str | Path, initializer_range: float = 0.02, seed: int = 0, dtype: torch.dtype = torch.float32
) -> str:
    """Write a random 4-layer Llama (hidden size 64, 4 heads, 2 key/value heads) and its tokenizer to ``folder``.

    The result is a Hugging Face folder that any backbone name accepts (``GLAEEmbedding(folder)``); the same
    arguments always give the same weights, and the global random state is left as it was.

    Args:
        folder: Where to write ``config.json``, ``model.safetensors`` and the tokenizer files (created if missing).
        initializer_range: Standard deviation of the random weights: 0.02 as in real Llamas; larger values let
            the logits grow enough for a toy model to memorise its training texts.
        seed: Seed of the random weights.
        dtype: The dtype the weights are stored in, and so loaded in (``from_pretrained`` reads it from the config):
            ``torch.bfloat16`` mimics the checkpoints of large backbones.

    Returns:
        ``folder`` as a string.
    """
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
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        causal_lm = LlamaForCausalLM(config)
    from glae_st.atomic import files_into

    with files_into(folder) as temporary:  # each file renamed into ``folder`` once all are written
        causal_lm.to(dtype).save_pretrained(temporary)
        tokenizer.save_pretrained(temporary)
    return str(folder)
