"""A decoder adapter of its own: an exact copy at first, then it trains decoding and never moves an embedding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sentence_transformers import SentenceTransformer

import glae_st
from glae_st.losses import DecoderReconstructionLoss
from glae_st.module import DECODER_ADAPTER, MAIN_ADAPTER

TEXTS = ["A cat sits on the mat.", "Stocks fell sharply on Monday.", "Rain is expected in Sydney tomorrow."]


def reconstruction_nll(model: SentenceTransformer, embeddings: torch.Tensor) -> float:
    module = model[0]
    ids = [module.tokenizer(text, add_special_tokens=False)["input_ids"] for text in TEXTS]
    with torch.no_grad():
        return module.reconstruction_nll(embeddings, ids).item()


def test_a_decoder_adapter_starts_as_an_exact_copy_of_the_main_adapter(lora_model: SentenceTransformer):
    module = lora_model[0]
    embeddings = lora_model.encode(TEXTS, convert_to_tensor=True)
    decoded = glae_st.decode(lora_model, embeddings, max_new_tokens=6)
    lora_model.train()
    nll = reconstruction_nll(lora_model, embeddings)
    module.add_decoder_adapter(rank=8)  # twice the main rank: the extra rank must start at zero
    assert module.has_decoder_adapter
    assert module.causal_lm.peft_config[DECODER_ADAPTER].r == 8
    trainable = {name for name, p in module.causal_lm.named_parameters() if p.requires_grad}
    assert trainable and all(f".{DECODER_ADAPTER}" in name for name in trainable)
    assert reconstruction_nll(lora_model, embeddings) == pytest.approx(nll, abs=1e-5)
    assert module.causal_lm.active_adapter == DECODER_ADAPTER  # the decode prompt switched to it
    lora_model.eval()
    torch.testing.assert_close(lora_model.encode(TEXTS, convert_to_tensor=True), embeddings, atol=1e-4, rtol=0)
    assert module.causal_lm.active_adapter == MAIN_ADAPTER
    assert glae_st.decode(lora_model, embeddings, max_new_tokens=6) == decoded


def test_training_the_decoder_adapter_moves_decoding_and_no_embedding(lora_model: SentenceTransformer):
    module = lora_model[0]
    embeddings = lora_model.encode(TEXTS, convert_to_tensor=True)
    main_weights = {n: p.detach().clone() for n, p in module.causal_lm.named_parameters() if f".{MAIN_ADAPTER}" in n}
    module.add_decoder_adapter()
    loss = DecoderReconstructionLoss(lora_model)
    features = module.preprocess(TEXTS)
    optimizer = torch.optim.Adam([p for p in lora_model.parameters() if p.requires_grad], lr=1e-2)
    lora_model.train()
    first = None
    for _ in range(10):
        optimizer.zero_grad()
        value = loss([features], embeddings[:, None].clone())  # labels as with_teacher_embeddings writes them
        value.backward()
        optimizer.step()
        first = first if first is not None else value.item()
    assert value.item() < first - 0.5
    for name, parameter in module.causal_lm.named_parameters():
        if name in main_weights:
            assert torch.equal(parameter, main_weights[name]), name
    lora_model.eval()
    torch.testing.assert_close(lora_model.encode(TEXTS, convert_to_tensor=True), embeddings, atol=1e-4, rtol=0)
    lora_model.train()
    assert reconstruction_nll(lora_model, embeddings) < first - 0.5  # decoding reads the trained adapter


def test_a_decoder_bridge_of_no_slots_is_refused_and_adds_nothing(lora_model: SentenceTransformer):
    with pytest.raises(ValueError, match="slots must be a positive integer, got 0"):
        lora_model[0].add_decoder_adapter(slots=0)
    assert not lora_model[0].has_decoder_adapter


@pytest.mark.parametrize(
    ("labels", "columns"),
    [(None, 1), (torch.zeros(3, 7), 1), (torch.zeros(3, 2, 32, 1), 1), ("embeddings", 2)],
)
def test_decoder_reconstruction_loss_needs_one_text_column_and_embedding_labels(
    tiny_model: SentenceTransformer, labels, columns
):
    module = tiny_model[0]
    features = module.preprocess(TEXTS)
    if isinstance(labels, str):
        labels = torch.zeros(3, module.get_embedding_dimension())
    with pytest.raises(ValueError, match="needs one text column and, as the label, the model's embedding"):
        DecoderReconstructionLoss(tiny_model)([features] * columns, labels)


def test_a_decoder_bridge_of_several_slots_reads_each_vector_as_several_tokens(
    lora_model: SentenceTransformer, tmp_path: Path
):
    module = lora_model[0]
    embeddings = lora_model.encode(TEXTS, convert_to_tensor=True)
    module.add_decoder_adapter(slots=3)
    with torch.no_grad():
        single = module._slot_prompt_embeds(
            embeddings, module.decode_prefix_ids, module.decode_suffix_ids, module.bridge
        )
        prompt = module.decode_prompt_embeds(embeddings)
    assert prompt.shape[1] == single.shape[1] + 2
    slot = len(module.decode_prefix_ids)
    for index in range(3):  # every slot starts as the main bridge's map
        torch.testing.assert_close(prompt[:, slot + index], single[:, slot])
    assert all(p.requires_grad for p in module.decoder_bridge.parameters())
    with torch.no_grad():
        module.decoder_bridge.projection.bias.add_(0.1)
    lora_model.save(str(tmp_path / "slots"))
    reloaded = glae_st.load_model(str(tmp_path / "slots"))
    assert reloaded[0].decoder_slots == 3
    torch.testing.assert_close(reloaded[0].decoder_bridge.projection.bias, module.decoder_bridge.projection.bias)
    lora_model.eval()
    assert glae_st.decode(reloaded, embeddings, max_new_tokens=6) == glae_st.decode(
        lora_model, embeddings, max_new_tokens=6
    )
