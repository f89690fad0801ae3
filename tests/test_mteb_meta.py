"""mteb metadata of saved GLAE models: any folder, not only the bundled default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import glae_st
from glae_st import GLAEEmbedding
from glae_st.mteb_meta import glae_model_meta
from glae_st.saved_model import weights_revision


def test_meta_of_a_saved_tiny_model(saved_model_dir: Path):
    meta = glae_model_meta(saved_model_dir)

    backbone = json.loads((saved_model_dir / "glae_config.json").read_text())["backbone"]
    assert meta.name == "glae-st/glae"
    assert meta.revision == weights_revision(saved_model_dir)
    assert meta.embed_dim == 64 and meta.max_tokens == 64
    assert meta.n_parameters > 0 and meta.adapted_from == backbone and meta.license is None
    assert meta.training_datasets is None  # no training_config.json: unknown
    wrapper = meta.load_model()
    assert isinstance(wrapper.model[0], GLAEEmbedding)


def test_meta_reads_training_data_from_the_training_config(saved_model_dir: Path):
    config_path = saved_model_dir / "training_config.json"
    config_path.write_text(json.dumps({"data": {"stsb_min_score": 4.0, "wikipedia_limit": None}}))
    assert glae_model_meta(saved_model_dir).training_datasets == {"STSBenchmark"}
    config_path.write_text(json.dumps({"data": {"stsb_min_score": None, "wikipedia_limit": None}}))
    assert glae_model_meta(saved_model_dir).training_datasets == set()
    assert glae_model_meta(saved_model_dir, name="me/tiny", training_datasets={"X"}).training_datasets == {"X"}
    # a stage without STS-B data over one that had it (training/train.py records the earlier stages' data)
    earlier = {"data": {"stsb_min_score": None, "stsb_scored": False}, "earlier_data": [{"stsb_scored": True}]}
    config_path.write_text(json.dumps(earlier))
    assert glae_model_meta(saved_model_dir).training_datasets == {"STSBenchmark"}


def test_meta_names_a_retrained_model_by_its_new_weights(tiny_model, saved_model_dir: Path, tmp_path: Path):
    tiny_model[0].add_lora()
    tiny_model.save(str(tmp_path / "with-adapter"))
    assert glae_model_meta(tmp_path / "with-adapter").revision != glae_model_meta(saved_model_dir).revision


def test_meta_of_a_folder_without_a_saved_model(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="not a saved GLAE model folder"):
        glae_model_meta(tmp_path)


@pytest.mark.slow
def test_meta_of_the_bundled_default():
    meta = glae_model_meta()

    assert meta.name == "glae-st/glae-smollm2-135m" and meta.embed_dim == 576
    assert meta.training_datasets == {"STSBenchmark"}  # from its training_config.json
    assert meta.adapted_from == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta.license == "apache-2.0"
    assert meta.revision == weights_revision(glae_st.DEFAULT_MODEL)


def test_results_of_one_way_of_reading_long_texts_never_stand_for_another(saved_model_dir: Path, tmp_path: Path):
    from mteb.cache import ResultCache

    cache = ResultCache(tmp_path)
    truncating = glae_model_meta(saved_model_dir)
    config_path = saved_model_dir / "glae_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "long_text": "lead_mean"}))
    averaging = glae_model_meta(saved_model_dir)
    assert averaging.revision == truncating.revision  # the same weights
    assert averaging.model_name_with_experiment != truncating.model_name_with_experiment
    paths = {cache.get_task_result_path("LeeNewsRetrieval", meta) for meta in (truncating, averaging)}
    assert len(paths) == 2
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "long_text": "truncate"}))
    assert averaging.load_model().model[0].long_text == "lead_mean"  # the experiment parameter, not the folder's
