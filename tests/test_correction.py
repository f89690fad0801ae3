"""The learned corrector: an adapter of its own that leaves every embedding and first decode as it was, a loss that
trains only it, a prompt whose padding changes nothing, saving and loading, and decoding with correction rounds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig
from sentence_transformers import SentenceTransformer

import glae_st
from glae_st import GLAEEmbedding
from glae_st.adapters import CORRECTOR_ADAPTER
from glae_st.correction import correction_nll
from glae_st.decoding import corrected_texts
from glae_st.losses import CorrectionLoss

TEXTS = ["A cat sits on the mat.", "Stocks fell sharply on Monday after the news."]
HYPOTHESES = ["A dog sits on the mat.", "Stocks fell on Monday."]


def encode(model: SentenceTransformer, texts: list[str]) -> torch.Tensor:
    model.eval()
    return model.encode(texts, convert_to_tensor=True)


def ids(model: SentenceTransformer, texts: list[str]) -> list[list[int]]:
    return [model[0].tokenizer(text, add_special_tokens=False).input_ids for text in texts]


def train_corrector(model: SentenceTransformer, steps: int = 30) -> list[float]:
    """Train on CorrectionLoss with the model's own embeddings as labels; returns the loss values."""
    labels = torch.stack([encode(model, TEXTS), encode(model, HYPOTHESES)], dim=1)
    features = [model[0].preprocess(HYPOTHESES), model[0].preprocess(TEXTS)]
    loss = CorrectionLoss(model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    values = []
    for _ in range(steps):
        optimizer.zero_grad()
        value = loss(features, labels)
        value.backward()
        optimizer.step()
        values.append(value.item())
    model.eval()
    return values


def test_the_corrector_adapter_leaves_embeddings_and_greedy_decodes_as_they_were(lora_model):
    before = encode(lora_model, TEXTS)
    greedy = glae_st.decode(lora_model, before, max_new_tokens=8, num_candidates=1, refinement_steps=0)
    lora_model[0].add_corrector_adapter()
    assert lora_model[0].has_corrector_adapter
    trainable = {name for name, p in lora_model[0].causal_lm.named_parameters() if p.requires_grad}
    assert trainable and all(f".{CORRECTOR_ADAPTER}" in name for name in trainable)
    train_corrector(lora_model, steps=3)
    after = encode(lora_model, TEXTS)
    assert torch.equal(before, after)
    assert glae_st.decode(lora_model, after, max_new_tokens=8, num_candidates=1, refinement_steps=0) == greedy


def test_correction_loss_trains_the_corrector_toward_the_text(wide_tiny_backbone):
    model = SentenceTransformer(modules=[GLAEEmbedding(wide_tiny_backbone, max_seq_length=64)], device="cpu")
    model[0].add_lora(LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    model[0].add_corrector_adapter()
    values = train_corrector(model, steps=60)
    assert values[-1] < 0.05 * values[0]
    targets = encode(model, TEXTS)
    with torch.inference_mode():
        corrected = corrected_texts(model[0], targets, HYPOTHESES, encode(model, HYPOTHESES), 16, 1)
    assert corrected == TEXTS


def test_the_correction_prompt_scores_a_row_the_same_alone_and_beside_a_longer_one(lora_model):
    lora_model[0].add_corrector_adapter()
    module = lora_model[0]
    targets, hypotheses = encode(lora_model, TEXTS), encode(lora_model, HYPOTHESES)
    module.train()  # the NLL of training: nothing folded
    with torch.no_grad():
        alone = correction_nll(module, targets[1:], hypotheses[1:], ids(lora_model, HYPOTHESES[1:]), ids(lora_model, TEXTS[1:]))
        long_hypothesis = [HYPOTHESES[0] + " And then a long tail of words follows it here.", HYPOTHESES[1]]
        batched = torch.stack(
            [
                correction_nll(module, targets[i : i + 1], hypotheses[i : i + 1], ids(lora_model, long_hypothesis[i : i + 1]), ids(lora_model, TEXTS[i : i + 1]))
                for i in range(2)
            ]
        )
    assert torch.allclose(alone, batched[1], atol=1e-5)


def test_a_saved_corrector_loads_back_and_corrects_the_same(lora_model, tmp_path: Path):
    lora_model[0].add_corrector_adapter()
    train_corrector(lora_model, steps=3)
    targets, hypotheses = encode(lora_model, TEXTS), encode(lora_model, HYPOTHESES)
    with torch.inference_mode():
        before = corrected_texts(lora_model[0], targets, HYPOTHESES, hypotheses, 8, 2)
    lora_model.save(str(tmp_path / "model"))
    loaded = glae_st.load_model(str(tmp_path / "model"), device="cpu")
    assert loaded[0].has_corrector_adapter
    assert torch.equal(encode(loaded, TEXTS), targets)
    with torch.inference_mode():
        assert corrected_texts(loaded[0], targets, HYPOTHESES, hypotheses, 8, 2) == before


def test_correction_rounds_never_lower_the_round_trip_score(lora_model):
    lora_model[0].add_corrector_adapter()
    train_corrector(lora_model, steps=3)
    vectors = encode(lora_model, TEXTS)
    setting = {"max_new_tokens": 8, "num_candidates": 2, "refinement_steps": 0, "return_scores": True}
    _, without = glae_st.decode(lora_model, vectors, correction_steps=0, **setting)
    _, with_rounds = glae_st.decode(lora_model, vectors, correction_steps=2, **setting)
    assert all(after >= before for before, after in zip(without, with_rounds))


def test_correction_steps_on_a_model_without_a_corrector_is_refused(lora_model):
    vectors = encode(lora_model, TEXTS)
    with pytest.raises(ValueError, match="needs a learned corrector"):
        glae_st.decode(lora_model, vectors, max_new_tokens=4, correction_steps=1)
    with pytest.raises(ValueError, match="correction_steps"):
        glae_st.decode(lora_model, vectors, max_new_tokens=4, correction_steps=-1)


def test_the_corrector_is_an_adapter_of_a_trained_model(tiny_model):
    with pytest.raises(ValueError, match="main LoRA adapter"):
        tiny_model[0].add_corrector_adapter()
    assert not tiny_model[0].has_corrector_adapter
