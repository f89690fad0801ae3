"""Corpus-scale encoding on the tiny model: Ray Data actors and the sentence-transformers multi-process pool give
the single-process embeddings, in order, and a bad row is reported without losing the others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from glae_st import registry
from glae_st.ray_data import GLAEDecoder, GLAEEncoder, encode_with_ray
from tests.test_cli import run_cli

ray = pytest.importorskip("ray", reason="the scale extra (pip install 'glae-st[scale]') is part of the dev install")

TEXTS = [f"Sentence number {i} is about {'cats' if i % 2 else 'stocks'}." for i in range(23)]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_encoding_equals_single_process_in_input_order(saved_model_dir, local_ray):
    expected = registry.load_model(str(saved_model_dir)).encode(TEXTS)
    vectors = encode_with_ray(TEXTS, str(saved_model_dir), workers=2, batch_size=4)
    assert vectors.shape == expected.shape
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_a_bad_row_is_reported_with_its_id_and_no_other_row_is_lost(saved_model_dir, local_ray):
    rows = [{"id": 100 + i, "text": text} for i, text in enumerate(TEXTS[:6])]
    rows[2]["text"], rows[4]["text"] = "   ", None
    dataset = ray.data.from_items(rows).map_batches(
        GLAEEncoder, fn_constructor_kwargs={"model": str(saved_model_dir)}, batch_size=3, concurrency=1
    )
    result = sorted(dataset.take_all(), key=lambda row: row["id"])
    assert [row["id"] for row in result] == [100, 101, 102, 103, 104, 105]
    assert (
        result[2]["error"] == "row 102: empty text" and result[4]["error"] == "row 104: expected a string, got NoneType"
    )
    assert np.isnan(result[2]["embedding"]).all()
    expected = registry.load_model(str(saved_model_dir)).encode([TEXTS[i] for i in (0, 1, 3, 5)])
    good = np.stack([result[i]["embedding"] for i in (0, 1, 3, 5)])
    np.testing.assert_allclose(good, expected, atol=1e-5)
    assert all(result[i]["error"] == "" for i in (0, 1, 3, 5))
    with pytest.raises(ValueError, match=r"1 bad rows, nothing written: row 1: empty text"):
        encode_with_ray(["fine", ""], str(saved_model_dir), workers=1)


def test_vectors_go_to_parquet_and_decode_back_through_ray(saved_model_dir, local_ray, tmp_path: Path):
    texts = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(TEXTS[:5])])
    vectors = texts.map_batches(GLAEEncoder, fn_constructor_kwargs={"model": str(saved_model_dir)}, concurrency=1)
    vectors.write_parquet(str(tmp_path / "vectors"))
    stored = ray.data.read_parquet(str(tmp_path / "vectors"))
    decoded = stored.map_batches(
        GLAEDecoder, fn_constructor_kwargs={"model": str(saved_model_dir), "max_new_tokens": 8}, concurrency=1
    )
    rows = sorted(decoded.take_all(), key=lambda row: row["id"])
    model = registry.load_model(str(saved_model_dir))
    import glae_st

    assert [row["decoded"] for row in rows] == glae_st.decode(model, model.encode(TEXTS[:5]), max_new_tokens=8)


def test_glae_encode_ray_writes_what_the_plain_command_writes(saved_model_dir, local_ray, tmp_path, capsys):
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    model = ["--model", str(saved_model_dir)]
    plain = [*model, "encode", "--file", str(tmp_path / "texts.txt"), "-o", str(tmp_path / "plain.npy")]
    assert run_cli(plain, capsys)[0] == 0
    code, err, _ = run_cli([*plain[:-1], str(tmp_path / "ray.npy"), "--ray", "--ray-workers", "2"], capsys)
    assert code == 0 and err[-1] == f"glae: wrote 23 embeddings (23, 64) to {tmp_path / 'ray.npy'}"
    np.testing.assert_allclose(np.load(tmp_path / "ray.npy"), np.load(tmp_path / "plain.npy"), atol=1e-5)


POOL_SCRIPT = """
import sys, threading, numpy as np
from glae_st import registry

if __name__ == "__main__":  # the pool spawns processes that import this file
    texts = [f"Sentence number {i} is about cats." for i in range(12)]
    model = registry.load_model(sys.argv[1])
    single = model.encode(texts)
    pooled = model.encode(texts, device=["cpu", "cpu"], chunk_size=4)
    print("MAXDIFF", float(np.abs(single - pooled).max()))
    # sentence-transformers stops the pool without joining its input queue's feeder thread, a daemon thread that
    # unlinks the queue's semaphores as it ends: exiting at once can cut it between unlinking and unregistering, and
    # the resource tracker then reports a leaked semaphore of the main process (a race of the pool, not of glae_st)
    for thread in threading.enumerate():
        if thread.name == "QueueFeederThread":
            thread.join(timeout=60)
"""


def test_the_sentence_transformers_pool_matches_one_process_and_its_workers_leak_no_semaphore(
    saved_model_dir, tmp_path: Path
):
    """``encode(..., device=[...])`` starts a process pool: same vectors, and no leaked-semaphore warning at exit (a
    worker's progress bars took a multiprocessing lock that its SIGTERM left registered, one per worker)."""
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script), str(saved_model_dir)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    max_diff = float(result.stdout.split("MAXDIFF")[1])
    assert max_diff < 1e-5
    assert "leaked semaphore" not in result.stderr


def test_glae_decoder_passes_its_decode_setting_on_and_leaves_the_rest_to_the_model(saved_model_dir, monkeypatch):
    from glae_st import decoding

    calls = []

    def fake_decode(model, vectors, **kwargs):
        calls.append(kwargs)
        return ["text"] * len(vectors)

    monkeypatch.setattr(decoding, "decode", fake_decode)
    batch = {"embedding": np.zeros((2, 64), dtype=np.float32)}
    GLAEDecoder(str(saved_model_dir), num_candidates=4, refinement_steps=1)(batch)
    assert calls[-1]["num_candidates"] == 4 and calls[-1]["refinement_steps"] == 1
    out = GLAEDecoder(str(saved_model_dir))(batch)
    assert calls[-1]["num_candidates"] is None and calls[-1]["refinement_steps"] is None
    assert list(out["decoded"]) == ["text", "text"]
