"""GLAEEmbedding on a tiny random Llama: the embedding is layer -2 at <embedding>, cheaply and reproducibly."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

import glae_st
from glae_st import GLAEEmbedding, prompts

TEXTS = [
    "A cat sits on the mat.",
    "Stocks fell sharply on Monday.",
    "Rain.",
    "The quick brown fox jumps over the lazy dog.",
]


def full_model_state(module: GLAEEmbedding, text: str) -> torch.Tensor:
    """output_hidden_states[-2] of the whole causal LM at the <embedding> token of the full encode prompt."""
    ids = (
        module.encode_prefix_ids + module.tokenizer(text, add_special_tokens=False).input_ids + module.encode_suffix_ids
    )
    assert ids[-1] == module.special_token_ids[prompts.EMBEDDING_OPEN]
    with torch.no_grad():
        output = module.causal_lm(torch.tensor([ids]), output_hidden_states=True)
    assert len(output.hidden_states) == module.causal_lm.config.num_hidden_layers + 1
    return output.hidden_states[-2][0, -1]


@pytest.mark.parametrize("prefix_caching", [True, False])
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_embedding_is_layer_minus_two_at_embedding_token(tiny_model, prefix_caching, padding_side):
    module = tiny_model[0]
    module.prefix_caching, module.padding_side = prefix_caching, padding_side
    embeddings = tiny_model.encode(TEXTS, convert_to_tensor=True)
    expected = torch.stack([full_model_state(module, text) for text in TEXTS])
    torch.testing.assert_close(embeddings, expected, atol=1e-5, rtol=1e-5)


def test_batch_composition_and_padding_side_do_not_change_embeddings(tiny_model):
    module = tiny_model[0]
    batched = tiny_model.encode(TEXTS, batch_size=4)
    single = np.stack([tiny_model.encode([text])[0] for text in TEXTS])
    module.padding_side = "right"
    right = tiny_model.encode(TEXTS[::-1], batch_size=3)[::-1]
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(batched, right, atol=1e-5)


def test_prefix_cache_equals_uncached_path_and_is_reused(tiny_model):
    module = tiny_model[0]
    cached = tiny_model.encode(TEXTS)
    stored = module._stored_prefix
    assert stored is not None and len(stored) == module.causal_lm.config.num_hidden_layers - 1
    assert stored[0][0].shape[2] == len(module.encode_prefix_ids)
    tiny_model.encode(TEXTS[:1])
    assert module._stored_prefix is stored  # reused, not recomputed
    module.prefix_caching = False
    np.testing.assert_allclose(cached, tiny_model.encode(TEXTS), atol=1e-5)
    module.train()
    assert module._stored_prefix is None  # training invalidates it


def test_encoding_never_runs_the_last_layer_or_the_lm_head(tiny_model):
    module = tiny_model[0]
    calls = []
    last_layer = module.decoder.layers[-1]
    hooks = [
        last_layer.register_forward_hook(lambda *_: calls.append("last layer")),
        module.causal_lm.get_output_embeddings().register_forward_hook(lambda *_: calls.append("lm head")),
        module.decoder.layers[-2].mlp.register_forward_hook(lambda _m, args, _o: calls.append(tuple(args[0].shape))),
    ]
    tiny_model.encode(TEXTS, batch_size=4)
    for hook in hooks:
        hook.remove()
    assert calls[-1] == (4, module.get_embedding_dimension())  # layer -2's MLP ran at one position per text
    assert "last layer" not in calls and "lm head" not in calls


def test_special_tokens_are_added_with_distinct_spelling_based_rows(tiny_model):
    module = tiny_model[0]
    ids = module.special_token_ids
    assert len(set(ids.values())) == 4 and all(i >= module.causal_lm.config.vocab_size - 4 for i in ids.values())
    embedding = module.causal_lm.get_input_embeddings().weight
    word_text = module.tokenizer("text", add_special_tokens=False).input_ids
    assert not torch.allclose(embedding[ids[prompts.TEXT_CLOSE]], embedding[word_text].mean(0))
    assert not torch.allclose(embedding[ids[prompts.TEXT_CLOSE]], embedding[ids[prompts.TEXT_OPEN]])
    # a literal "</text>" typed in a text stays text: it is not the special token
    features = module.preprocess(["say </text> now"])
    assert (features["input_ids"][0] == ids[prompts.TEXT_CLOSE]).sum() == 1  # only the suffix's


def test_save_load_round_trip_is_bit_identical(tiny_model, saved_model_dir: Path):
    before = tiny_model.encode(TEXTS)
    for loaded in (
        glae_st.load_model(str(saved_model_dir)),
        SentenceTransformer(str(saved_model_dir), trust_remote_code=True),
    ):
        assert isinstance(loaded[0], GLAEEmbedding)
        np.testing.assert_array_equal(loaded.encode(TEXTS), before)


def add_random_lora(module: GLAEEmbedding) -> None:
    """Add LoRA and give it non-zero updates (peft starts lora_B and the token deltas at zero)."""
    module.add_lora()
    with torch.no_grad():
        for name, parameter in module.causal_lm.named_parameters():
            if "lora_B" in name or "trainable_tokens_delta" in name:
                parameter.normal_(std=0.05)


def test_lora_adapter_saves_and_loads_with_the_model(tiny_model, tmp_path: Path):
    module = tiny_model[0]
    add_random_lora(module)
    before = tiny_model.encode(TEXTS)
    tiny_model.save(str(tmp_path / "with-adapter"))
    assert (tmp_path / "with-adapter" / "adapter" / "adapter_config.json").is_file()
    np.testing.assert_array_equal(glae_st.load_model(str(tmp_path / "with-adapter")).encode(TEXTS), before)


def test_lora_folds_into_the_backbone_at_inference_and_unfolds_for_training(tiny_model):
    from peft.tuners.tuners_utils import BaseTunerLayer

    module = tiny_model[0]
    add_random_lora(module)
    lora_layers = [layer for layer in module.causal_lm.modules() if isinstance(layer, BaseTunerLayer)]
    base_weights = [layer.get_base_layer().weight.detach().clone() for layer in lora_layers]
    tiny_model.train()
    with torch.no_grad():
        unfolded = tiny_model(tiny_model.preprocess(TEXTS))["sentence_embedding"]
    assert not any(layer.merged for layer in lora_layers)
    folded = tiny_model.encode(TEXTS, convert_to_tensor=True)  # encode() switches to eval mode
    assert all(layer.merged for layer in lora_layers)
    torch.testing.assert_close(folded, unfolded, rtol=1e-4, atol=1e-5)
    tiny_model.train()  # unfolding gives training the backbone's own weights back
    assert not any(layer.merged for layer in lora_layers)
    for layer, weight in zip(lora_layers, base_weights, strict=True):
        torch.testing.assert_close(layer.get_base_layer().weight, weight, rtol=0, atol=1e-6)


def test_folding_never_writes_into_weights_shared_with_other_processes(tiny_model):
    """The sentence-transformers pool shares one copy of the weights among its workers: each worker folds the
    adapter into weights of its own, so the shared ones stay as they were and every worker encodes alike."""
    module = tiny_model[0]
    add_random_lora(module)
    tiny_model.train()
    expected = tiny_model.encode(TEXTS)
    tiny_model.train()
    module.causal_lm.share_memory()
    shared = {n: p.data for n, p in module.causal_lm.named_parameters()}  # the tensors other workers also hold
    assert all(tensor.is_shared() for tensor in shared.values())
    before = {n: tensor.clone() for n, tensor in shared.items()}
    np.testing.assert_allclose(tiny_model.encode(TEXTS), expected, rtol=1e-5, atol=1e-6)
    for name, tensor in shared.items():
        torch.testing.assert_close(tensor, before[name], rtol=0, atol=0)


def test_sentence_transformers_options_work(tiny_model):
    full = tiny_model.encode(TEXTS)
    normalised = tiny_model.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(normalised, axis=1), 1.0, atol=1e-5)
    assert tiny_model.encode(TEXTS, truncate_dim=16).shape == (4, 16)
    np.testing.assert_allclose(tiny_model.encode_query(TEXTS), full, atol=1e-6)
    np.testing.assert_allclose(tiny_model.encode_document(TEXTS), full, atol=1e-6)
    assert tiny_model.get_embedding_dimension() == 64
    assert tiny_model.similarity(full, full).shape == (4, 4)


def test_over_long_texts_are_truncated_with_a_warning(tiny_model, caplog):
    module = tiny_model[0]
    long_text = " ".join(["word"] * 200)
    with caplog.at_level(logging.WARNING):
        features = module.preprocess([long_text, "short"])
    assert "longer than max_seq_length=64" in caplog.text
    assert features["attention_mask"][0].sum() == 64 + len(module.encode_suffix_ids)
    truncated_text = module.tokenizer.decode(module.tokenizer(long_text, add_special_tokens=False).input_ids[:64])
    np.testing.assert_allclose(tiny_model.encode([long_text]), tiny_model.encode([truncated_text]), atol=1e-5)


@pytest.mark.parametrize(
    ("bad_texts", "error", "message"),
    [
        ([], ValueError, "empty list"),
        ([""], ValueError, "Item 0 is empty"),
        (["fine", "   "], ValueError, "Item 1 is empty"),
        (["fine", 3], TypeError, "Item 1 is a int"),
        (["fine", None], TypeError, "Item 1 is a NoneType"),
        ("a single string", TypeError, "wrap it in a list"),
    ],
)
def test_bad_texts_get_clear_errors(tiny_model, bad_texts, error, message):
    with pytest.raises(error, match=message):
        tiny_model[0].preprocess(bad_texts)
    if isinstance(bad_texts, list) and bad_texts:  # sentence-transformers skips the module for [] and str
        with pytest.raises(error, match=message):
            tiny_model.encode(bad_texts)


def test_bad_constructor_arguments(tiny_backbone):
    for size in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match=r"max_seq_length \(the chunk size\) must be a positive integer"):
            GLAEEmbedding(tiny_backbone, max_seq_length=size)
    with pytest.raises(ValueError, match="does not fit the backbone's context of 512 positions"):
        GLAEEmbedding(tiny_backbone, max_seq_length=512)
    with pytest.raises(ValueError, match="padding_side must be"):
        GLAEEmbedding(tiny_backbone, padding_side="middle")  # type: ignore[arg-type]


def test_truncation_warning_appears_once_per_encode_call(tiny_model, caplog):
    texts = [" ".join(["word"] * 200)] * 6 + ["short"]
    for calls in (1, 2):
        with caplog.at_level(logging.WARNING):
            tiny_model.encode(texts, batch_size=2)
        assert caplog.text.count("longer than max_seq_length=64") == calls


def test_bf16_inference_is_close_to_float32_and_auto_follows_the_hardware(tiny_model, monkeypatch):
    module = tiny_model[0]
    module.inference_dtype = "float32"
    full = tiny_model.encode(TEXTS, convert_to_tensor=True)
    module.inference_dtype = "bfloat16"
    assert module.compute_dtype() == torch.bfloat16
    half = tiny_model.encode(TEXTS, convert_to_tensor=True)
    assert half.dtype == torch.float32 and not torch.equal(half, full)  # computed in bf16, returned as float32
    assert torch.nn.functional.cosine_similarity(half, full).min() > 0.99
    module.train()
    assert isinstance(module.inference_autocast(), contextlib.nullcontext)  # training computes as the trainer says
    module.eval()
    module.inference_dtype = "auto"
    monkeypatch.delenv("GLAE_ST_INFERENCE_DTYPE")
    monkeypatch.setattr("glae_st.precision.bf16_is_fast", lambda device: False)
    assert module.compute_dtype() == torch.float32
    monkeypatch.setattr("glae_st.precision.bf16_is_fast", lambda device: True)
    assert module.compute_dtype() == torch.bfloat16
    monkeypatch.setenv("GLAE_ST_INFERENCE_DTYPE", "float32")
    assert module.compute_dtype() == torch.float32
    monkeypatch.setenv("GLAE_ST_INFERENCE_DTYPE", "fp8")
    with pytest.raises(ValueError, match="must be 'float32' or 'bfloat16', got 'fp8'"):
        module.compute_dtype()
    with pytest.raises(ValueError, match="inference_dtype must be one of"):
        GLAEEmbedding(module.backbone, inference_dtype="half")


def test_bf16_inference_holds_bf16_weights_and_float32_comes_back_unrounded(tiny_backbone, tmp_path):
    from peft import LoraConfig
    from safetensors.torch import load_file

    torch.manual_seed(0)
    module = GLAEEmbedding(tiny_backbone, max_seq_length=64)
    module.add_lora(LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    model = SentenceTransformer(modules=[module], device="cpu")
    weight = module.decoder.layers[0].mlp.up_proj.base_layer.weight
    module.inference_dtype = "float32"
    full = model.encode(TEXTS, convert_to_tensor=True)
    folded = weight.detach().clone()  # float32 with the adapter folded in
    module.inference_dtype = "bfloat16"
    half = model.encode(TEXTS, convert_to_tensor=True)
    assert weight.dtype == torch.bfloat16 and module.base_lm.get_input_embeddings().weight.dtype == torch.bfloat16
    assert torch.nn.functional.cosine_similarity(half, full).min() > 0.99
    assert glae_st.decode(model, half.numpy(), max_new_tokens=4)  # generation runs on the bf16 weights
    module.inference_dtype = "float32"
    assert torch.equal(model.encode(TEXTS, convert_to_tensor=True), full)
    assert weight.dtype == torch.float32 and torch.equal(weight, folded)
    module.inference_dtype = "bfloat16"
    model.encode(TEXTS)
    model.save(str(tmp_path / "saved"))  # saves float32, never the rounded copy
    saved = load_file(str(tmp_path / "saved" / "glae_weights.safetensors"))
    assert {tensor.dtype for tensor in saved.values()} == {torch.float32}
    reloaded = glae_st.load_model(str(tmp_path / "saved"))
    reloaded[0].inference_dtype = "float32"
    torch.testing.assert_close(reloaded.encode(TEXTS, convert_to_tensor=True), full, atol=1e-5, rtol=0)
    model.train()  # training unfolds float32 weights: the originals, not the bf16 copy
    unfolded = weight.detach().clone()
    model.eval()
    assert torch.equal(weight, folded) and not torch.equal(unfolded, folded)
