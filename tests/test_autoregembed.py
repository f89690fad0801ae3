"""The AutoRegEmbed option on the tiny model: compress-token pooling and the conditional alignment loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer

import glae_st
from glae_st import CompressTokenEmbedding
from glae_st.losses import ConditionalAlignmentLoss

TEXTS = ["A cat sits on the mat.", "Stocks fell sharply on Monday.", "Rain is expected.", "She plays the violin."]
POSITIVES = ["A cat is on the mat.", "Shares dropped on Monday.", "It will rain.", "She is playing a violin."]


@pytest.fixture
def compress_model(tiny_backbone) -> SentenceTransformer:
    torch.manual_seed(0)
    return SentenceTransformer(modules=[CompressTokenEmbedding(tiny_backbone, num_compress_tokens=3)], device="cpu")


def test_the_embedding_is_the_mean_last_layer_state_of_the_compress_tokens(compress_model):
    module = compress_model[0]
    ids = module.tokenizer(TEXTS[0], add_special_tokens=False).input_ids
    prompt = module.encode_prefix_ids + ids + module.encode_suffix_ids
    assert module.tokenizer.convert_ids_to_tokens(prompt[-3:]) == ["<compress_0>", "<compress_1>", "<compress_2>"]
    with torch.no_grad():
        hidden = module.causal_lm(torch.tensor([prompt]), output_hidden_states=True).hidden_states[-1][0]
    expected = hidden[-3:].mean(dim=0)
    torch.testing.assert_close(
        compress_model.encode(TEXTS[:1], convert_to_tensor=True)[0], expected, atol=1e-5, rtol=1e-5
    )


def test_batches_and_padding_sides_give_the_single_text_embeddings(compress_model):
    singles = np.stack([compress_model.encode([text])[0] for text in TEXTS])
    np.testing.assert_allclose(compress_model.encode(TEXTS), singles, atol=1e-5, rtol=1e-5)
    compress_model[0].padding_side = "right"
    np.testing.assert_allclose(compress_model.encode(TEXTS), singles, atol=1e-5, rtol=1e-5)


def test_save_and_load_round_trip_is_exact(compress_model, tmp_path):
    compress_model[0].add_lora()
    with torch.no_grad():
        for name, parameter in compress_model[0].causal_lm.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.05)
    compress_model.save(str(tmp_path / "autoregembed"))
    loaded = glae_st.load_model(str(tmp_path / "autoregembed"), device="cpu")
    assert isinstance(loaded[0], CompressTokenEmbedding) and loaded[0].num_compress_tokens == 3
    np.testing.assert_array_equal(loaded.encode(TEXTS), compress_model.encode(TEXTS))
    rows = load_file(str(tmp_path / "autoregembed" / "glae_weights.safetensors"))["special_tokens.input_embeddings"]
    assert rows.shape[0] == 4 + 3  # the GLAE tokens and the compress tokens


def test_bad_arguments_are_refused(tiny_backbone):
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="num_compress_tokens must be a positive integer"):
            CompressTokenEmbedding(tiny_backbone, num_compress_tokens=bad)
    with pytest.raises(ValueError, match="supports long_text='truncate' only"):
        CompressTokenEmbedding(tiny_backbone, long_text="iterative")  # type: ignore[arg-type]


def test_the_loss_matches_its_definition(compress_model):
    module = compress_model[0]
    loss = ConditionalAlignmentLoss(compress_model, beta=0.1, temperature=0.1, num_negatives=2)
    anchors, positives = module.preprocess(TEXTS), module.preprocess(POSITIVES)
    with torch.no_grad():
        value = loss([anchors, positives])
        a = compress_model(module.preprocess(TEXTS))["sentence_embedding"]
        p = compress_model(module.preprocess(POSITIVES))["sentence_embedding"]
        targets = [module.tokenizer(text, add_special_tokens=False).input_ids for text in POSITIVES]
        q, counts = module.text_log_likelihoods(a, targets)
        pos, _ = module.text_log_likelihoods(p, targets)
        expected_compression = -pos.sum() / counts.sum()
        terms = []
        for row in range(4):
            s1 = 1 / (1 + math.exp(-0.1 * abs(q[row] - pos[row])))
            for shift in (1, 2):
                n = module.text_log_likelihoods(a[[(row + shift) % 4]], [targets[row]])[0][0]
                s2 = 1 / (1 + math.exp(-0.1 * (q[row] - n)))
                terms.append(-math.log(math.exp(-s1 / 0.1) / (math.exp(-s1 / 0.1) + math.exp(-s2 / 0.1))))
    torch.testing.assert_close(value, expected_compression + sum(terms) / len(terms), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(module.reconstruction_nll(p, targets), expected_compression)


def test_gradients_reach_lora_and_the_bridge(compress_model):
    module = compress_model[0]
    module.add_lora()
    compress_model.train()
    loss = ConditionalAlignmentLoss(compress_model)
    value = loss([module.preprocess(TEXTS), module.preprocess(POSITIVES)])
    assert torch.isfinite(value)
    value.backward()
    assert module.bridge.projection.weight.grad.abs().sum() > 0
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for n, p in module.causal_lm.named_parameters() if "lora_B" in n
    )


def test_single_texts_and_one_pair_train_compression_only(compress_model):
    module = compress_model[0]
    loss = ConditionalAlignmentLoss(compress_model)
    with pytest.raises(ValueError, match="got 3 text columns"):
        loss([module.preprocess(TEXTS)] * 3)
    with torch.no_grad():
        singles = loss([module.preprocess(TEXTS)])
        e = compress_model(module.preprocess(TEXTS))["sentence_embedding"]
        targets = [module.tokenizer(text, add_special_tokens=False).input_ids for text in TEXTS]
        torch.testing.assert_close(singles, module.reconstruction_nll(e, targets))
        one_pair = loss([module.preprocess(TEXTS[:1]), module.preprocess(POSITIVES[:1])])
        p = compress_model(module.preprocess(POSITIVES[:1]))["sentence_embedding"]
        expected = module.reconstruction_nll(p, [module.tokenizer(POSITIVES[0], add_special_tokens=False).input_ids])
    torch.testing.assert_close(one_pair, expected)
    with pytest.raises(ValueError, match="beta and temperature must be positive"):
        ConditionalAlignmentLoss(compress_model, temperature=0)


def test_the_model_card_names_the_compress_token_module(compress_model, tmp_path):
    from glae_st.model_card import write_model_card

    compress_model.save(str(tmp_path / "autoregembed"))
    card = write_model_card(str(tmp_path / "autoregembed")).read_text()
    assert "`glae_st.compress_tokens.CompressTokenEmbedding`" in card
    assert "'num_compress_tokens': 3" in card
    assert "as sensitive as the text" in card


def test_bad_loss_settings_are_refused(compress_model):
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="num_negatives must be a positive integer"):
            ConditionalAlignmentLoss(compress_model, num_negatives=bad)
    with pytest.raises(ValueError, match="alignment_weight and compression_weight must be >= 0 and not all 0"):
        ConditionalAlignmentLoss(compress_model, alignment_weight=0.0, compression_weight=0.0)
    with pytest.raises(ValueError, match="alignment_weight and compression_weight must be >= 0"):
        ConditionalAlignmentLoss(compress_model, alignment_weight=-1.0)
