"""An adapter of its own for the long-text prompts: an exact copy at first; trained, it changes long texts only.
Also what every extra adapter shares: saving, loading, and the errors of adding one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer

import glae_st
from glae_st.adapters import MAIN_ADAPTER, RECURRENCE_ADAPTER
from glae_st.losses import BoundedContextLoss
from glae_st.module import GLAEEmbedding
from glae_st.registry import GLAE_WEIGHTS_FILE
from glae_st.saved_model import weights_revision

LONG = "The quick brown fox jumps over the lazy dog. " * 3 + "Rain is expected in the north tomorrow."
SHORT = "A cat sits."
CONTEXTS = ["The quick brown fox jumps over the lazy dog again and again.", "Rain is expected in the north today."]
CONTINUATIONS = [" Stocks fell sharply", " A cat sat down"]


@pytest.fixture
def iterative_lora_model(lora_model: SentenceTransformer) -> SentenceTransformer:
    """The tiny model with a non-zero main adapter, reading texts in chunks of 8 tokens."""
    lora_model[0].max_seq_length = 8
    lora_model[0].long_text = "iterative"
    lora_model[0].trained_recurrence = True
    return lora_model


def encode(model: SentenceTransformer, texts: list[str]) -> torch.Tensor:
    model.eval()
    return model.encode(texts, convert_to_tensor=True)


def continuation_nll(model: SentenceTransformer) -> float:
    module = model[0]
    target_ids = [module.tokenizer(text, add_special_tokens=False).input_ids for text in CONTINUATIONS]
    with torch.no_grad():
        return module.continuation_nll(encode(model, CONTEXTS), target_ids).item()


def train_recurrence(model: SentenceTransformer, steps: int = 15) -> tuple[float, float]:
    """Train on BoundedContextLoss; returns its first and last values."""
    features = [model[0].preprocess(CONTEXTS), model[0].preprocess(CONTINUATIONS)]
    loss = BoundedContextLoss(model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    values = []
    for _ in range(steps):
        optimizer.zero_grad()
        value = loss(features)
        value.backward()
        optimizer.step()
        values.append(value.item())
    return values[0], values[-1]


def test_a_recurrence_adapter_starts_as_an_exact_copy_of_the_main_adapter(iterative_lora_model: SentenceTransformer):
    module = iterative_lora_model[0]
    embeddings = encode(iterative_lora_model, [LONG, SHORT])
    nll = continuation_nll(iterative_lora_model)
    module.add_recurrence_adapter(rank=8)  # twice the main rank: the extra rank must start at zero
    assert module.has_recurrence_adapter and module.causal_lm.peft_config[RECURRENCE_ADAPTER].r == 8
    trainable = {name for name, p in module.causal_lm.named_parameters() if p.requires_grad}
    assert trainable and all(f".{RECURRENCE_ADAPTER}" in name for name in trainable)
    torch.testing.assert_close(encode(iterative_lora_model, [LONG, SHORT]), embeddings, atol=1e-5, rtol=0)
    assert continuation_nll(iterative_lora_model) == pytest.approx(nll, abs=1e-5)


def test_training_the_recurrence_adapter_moves_long_texts_and_nothing_short(
    iterative_lora_model: SentenceTransformer, fig3_by_hand
):
    module = iterative_lora_model[0]
    short = encode(iterative_lora_model, [SHORT])
    decoded = glae_st.decode(iterative_lora_model, short, max_new_tokens=6)
    long_before = encode(iterative_lora_model, [LONG])
    main_weights = {n: p.detach().clone() for n, p in module.causal_lm.named_parameters() if f".{MAIN_ADAPTER}" in n}
    bridge = {n: p.detach().clone() for n, p in module.bridge.state_dict().items()}
    module.add_recurrence_adapter()
    first, last = train_recurrence(iterative_lora_model)
    assert last < first - 0.5
    assert continuation_nll(iterative_lora_model) < first - 0.5  # the continue prompt reads the trained adapter
    for name, parameter in module.causal_lm.named_parameters():
        if name in main_weights:
            assert torch.equal(parameter, main_weights[name]), name
    assert all(torch.equal(module.bridge.state_dict()[n], p) for n, p in bridge.items())
    # a text of one chunk never meets the recurrence: its embedding and its decode are those of the main adapter
    torch.testing.assert_close(encode(iterative_lora_model, [SHORT]), short, atol=1e-5, rtol=0)
    assert glae_st.decode(iterative_lora_model, short, max_new_tokens=6) == decoded
    # a longer one reads its first chunk with the main adapter and every later one with the recurrence adapter
    long_after = encode(iterative_lora_model, [LONG])
    assert (long_after - long_before).abs().max() > 1e-2
    module.train()  # nothing folded: set_adapter alone picks each adapter
    expected, _ = fig3_by_hand(module, LONG, adapters=(MAIN_ADAPTER, RECURRENCE_ADAPTER))
    torch.testing.assert_close(long_after[0], expected, atol=1e-4, rtol=1e-4)


def test_the_recurrence_adapter_is_saved_loaded_and_part_of_the_revision(
    iterative_lora_model: SentenceTransformer, tmp_path: Path
):
    adapter = RECURRENCE_ADAPTER
    iterative_lora_model.save(str(tmp_path / "one"))
    module = iterative_lora_model[0]
    getattr(module, f"add_{adapter}_adapter")()
    with torch.no_grad():
        for name, parameter in module.causal_lm.named_parameters():
            if f"lora_B.{adapter}" in name or f"trainable_tokens_delta.{adapter}" in name:
                parameter.add_(0.05)
    embeddings = encode(iterative_lora_model, [LONG, SHORT])
    decoded = glae_st.decode(iterative_lora_model, embeddings, max_new_tokens=6)
    iterative_lora_model.save(str(tmp_path / "two"))  # whichever adapter the decode left active
    assert (tmp_path / "two" / "adapter" / adapter / "adapter_model.safetensors").is_file()
    rows = [load_file(tmp_path / name / GLAE_WEIGHTS_FILE)["special_tokens.input_embeddings"] for name in ("one", "two")]
    assert torch.equal(*rows)  # the rows stored beside the adapters are the main adapter's
    assert weights_revision(tmp_path / "two") != weights_revision(tmp_path / "one")
    reloaded = glae_st.load_model(str(tmp_path / "two"))
    assert list(reloaded[0].causal_lm.peft_config) == [MAIN_ADAPTER, adapter]
    assert reloaded[0].causal_lm.active_adapter == MAIN_ADAPTER
    assert not any(p.requires_grad for p in reloaded[0].causal_lm.parameters())
    torch.testing.assert_close(encode(reloaded, [LONG, SHORT]), embeddings, atol=1e-4, rtol=0)
    assert glae_st.decode(reloaded, embeddings, max_new_tokens=6) == decoded
    assert list(glae_st.load_model(str(tmp_path / "one"))[0].causal_lm.peft_config) == [MAIN_ADAPTER]


def test_adding_an_adapter_copy_wrongly_gets_a_clear_error_and_adds_nothing(tiny_model: SentenceTransformer):
    module, adapter = tiny_model[0], RECURRENCE_ADAPTER
    add = getattr(module, f"add_{adapter}_adapter")
    with pytest.raises(ValueError, match=f"add_{adapter}_adapter needs a model with a main LoRA adapter"):
        add()
    module.add_lora(LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with pytest.raises(ValueError, match="rank must be an integer >= the main adapter's rank 4, got 2"):
        add(rank=2)
    assert list(module.causal_lm.peft_config) == [MAIN_ADAPTER]  # a refused call adds nothing
    add()
    with pytest.raises(ValueError, match=f"no {adapter} adapter yet"):
        add()


def test_extra_adapters_stored_in_float16_take_half_the_bytes_and_load_back_into_float32(
    iterative_lora_model: SentenceTransformer, tmp_path: Path
):
    module = iterative_lora_model[0]
    module.add_recurrence_adapter()
    train_recurrence(iterative_lora_model, steps=3)
    embeddings = encode(iterative_lora_model, [LONG, SHORT])
    iterative_lora_model.save(str(tmp_path / "float32"))
    module.extra_adapter_dtype = "float16"
    iterative_lora_model.save(str(tmp_path / "float16"))
    sizes = {
        dtype: [
            (tmp_path / dtype / "adapter" / sub / "adapter_model.safetensors").stat().st_size
            for sub in ("", "recurrence")
        ]
        for dtype in ("float32", "float16")
    }
    assert sizes["float16"][0] == sizes["float32"][0]  # the main adapter stays float32
    assert sizes["float16"][1] < 0.55 * sizes["float32"][1]
    reloaded = glae_st.load_model(str(tmp_path / "float16"))
    assert reloaded[0].extra_adapter_dtype == "float16"
    assert all(p.dtype == torch.float32 for n, p in reloaded[0].causal_lm.named_parameters() if "lora_" in n)
    reloaded_embeddings = encode(reloaded, [LONG, SHORT])
    torch.testing.assert_close(reloaded_embeddings[1], embeddings[1], atol=1e-6, rtol=0)  # one chunk: main only
    assert not torch.equal(reloaded_embeddings[0], embeddings[0])  # rounded factors, ...
    assert torch.nn.functional.cosine_similarity(reloaded_embeddings[0], embeddings[0], dim=0) > 0.99999  # ... barely


def test_an_unknown_extra_adapter_dtype_is_refused(tiny_backbone: str):
    with pytest.raises(ValueError, match="extra_adapter_dtype must be 'float32' or 'float16', got 'int8'"):
        GLAEEmbedding(tiny_backbone, extra_adapter_dtype="int8")  # type: ignore[arg-type]


def test_switching_adapters_restores_the_unfolded_weights_exactly(iterative_lora_model: SentenceTransformer):
    """Fold and unfold by subtraction drift in float32 (W + BA - BA is not W), so a bf16 copy made after a switch
    would differ; with two adapters, unfolding restores the kept weights bit for bit."""
    module = iterative_lora_model[0]
    module.add_recurrence_adapter(4)
    with torch.no_grad():  # a recurrence adapter that differs from the main one
        for name, parameter in module.causal_lm.named_parameters():
            if f"lora_B.{RECURRENCE_ADAPTER}" in name:
                parameter.normal_(std=0.05)
    module.train()
    unfolded = {name: parameter.detach().clone() for name, parameter in module._backbone_weights()}
    module.inference_dtype = "bfloat16"
    short = encode(iterative_lora_model, [SHORT, "Stocks fell."])
    for _ in range(3):
        encode(iterative_lora_model, [LONG])  # chunk 1 with the main adapter, later chunks with the recurrence one
    assert torch.equal(encode(iterative_lora_model, [SHORT, "Stocks fell."]), short)
    module.train()
    for name, parameter in module._backbone_weights():
        assert torch.equal(parameter, unfolded[name]), name
