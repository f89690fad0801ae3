"""training/soup.py: weight-space interpolation of two GLAE models with LoRA adapters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoraConfig
from sentence_transformers import SentenceTransformer

import glae_st
from glae_st import GLAEEmbedding
from training import soup

TEXTS = ["a short text", "another text, a little longer than the first one", "7 May 2015"]


def _random_lora_model(backbone: str, seed: int, folder: Path) -> Path:
    """A saved tiny GLAE model whose LoRA factors, special-token deltas and bridge are random (seeded)."""
    torch.manual_seed(seed)
    module = GLAEEmbedding(backbone, max_seq_length=32)
    module.add_lora(LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "lora_B" in name or "trainable_tokens_delta" in name:
                param.normal_(std=0.05)
        for param in module.bridge.parameters():
            param.add_(0.1 * torch.randn_like(param))
    SentenceTransformer(modules=[module], device="cpu").save(str(folder))
    return folder


def _folded_weight(model: SentenceTransformer) -> torch.Tensor:
    """The first decoder layer's q_proj weight with the adapter folded in (as at inference)."""
    model.eval()
    return model[0].decoder.layers[0].self_attn.q_proj.base_layer.weight.detach().clone()


@pytest.fixture
def two_models(tiny_backbone: str, tmp_path: Path) -> tuple[Path, Path]:
    return _random_lora_model(tiny_backbone, 1, tmp_path / "a"), _random_lora_model(tiny_backbone, 2, tmp_path / "b")


@pytest.mark.parametrize("weight, same_as", [(0.0, 0), (1.0, 1)])
def test_end_points_reproduce_each_model(two_models: tuple[Path, Path], weight: float, same_as: int) -> None:
    mixed = soup.interpolate(glae_st.load_model(str(two_models[0])), glae_st.load_model(str(two_models[1])), weight)
    expected = glae_st.load_model(str(two_models[same_as])).encode(TEXTS)
    np.testing.assert_allclose(mixed.encode(TEXTS), expected, atol=1e-5)


def test_midpoint_is_the_mean_of_the_folded_weights_and_saves_as_one_adapter(
    two_models: tuple[Path, Path], tmp_path: Path
) -> None:
    model_a, model_b = (glae_st.load_model(str(path)) for path in two_models)
    expected = (_folded_weight(model_a) + _folded_weight(model_b)) / 2
    expected_bridge = (model_a[0].bridge.projection.weight + model_b[0].bridge.projection.weight).detach() / 2
    mixed = soup.interpolate(model_a, model_b, 0.5)
    torch.testing.assert_close(_folded_weight(mixed), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(mixed[0].bridge.projection.weight.detach(), expected_bridge)

    soup.save(mixed, tmp_path / "mixed")
    assert (tmp_path / "mixed" / "adapter" / "adapter_config.json").is_file()
    assert not (tmp_path / "mixed" / "adapter" / soup.SOUP).exists()
    reloaded = glae_st.load_model(str(tmp_path / "mixed"))
    np.testing.assert_allclose(reloaded.encode(TEXTS), mixed.encode(TEXTS), atol=1e-5)
    assert not np.allclose(reloaded.encode(TEXTS), model_b.encode(TEXTS), atol=1e-3)


def test_cli_refuses_an_out_of_range_weight_and_an_existing_output(
    two_models: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        soup.main([str(two_models[0]), str(two_models[1]), "--weight", "1.5", "--output", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert "--weight must lie in [0, 1]" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    with pytest.raises(SystemExit):
        soup.main([str(two_models[0]), str(two_models[1]), "--weight", "0.5", "--output", str(tmp_path / "taken")])
    assert "pass --force" in capsys.readouterr().err
    assert not any((tmp_path / "taken").iterdir())


def test_a_model_with_a_decoder_adapter_is_refused(tiny_backbone: str, tmp_path: Path):
    folder_a = _random_lora_model(tiny_backbone, 0, tmp_path / "a")
    folder_b = _random_lora_model(tiny_backbone, 1, tmp_path / "b")
    model_b = glae_st.load_model(str(folder_b))
    model_b[0].add_decoder_adapter()
    with pytest.raises(ValueError, match="this one has 2 \\(default, decoder\\)"):
        soup.interpolate(glae_st.load_model(str(folder_a)), model_b, 0.5)
