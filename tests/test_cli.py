"""The glae command on a saved tiny model: encode to .npy/.jsonl from args, files and stdin; decode; mix."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from glae_st import cli


def test_encode_writes_npy_and_jsonl_and_decode_reads_both(saved_model_dir, tmp_path, capsys, monkeypatch):
    model = ["--model", str(saved_model_dir)]
    cli.main([*model, "encode", "A cat sits.", "Stocks fell.", "-o", str(tmp_path / "v.npy")])
    vectors = np.load(tmp_path / "v.npy")
    assert vectors.shape == (2, 64) and vectors.dtype == np.float32

    (tmp_path / "texts.txt").write_text("A cat sits.\n\nStocks fell.\n")
    cli.main([*model, "encode", "--file", str(tmp_path / "texts.txt"), "-o", str(tmp_path / "v.jsonl")])
    rows = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert [row["text"] for row in rows] == ["A cat sits.", "Stocks fell."]
    np.testing.assert_allclose(np.array([row["embedding"] for row in rows]), vectors, atol=1e-5, rtol=1e-5)

    monkeypatch.setattr("sys.stdin", io.StringIO("A cat sits.\n"))
    capsys.readouterr()
    cli.main([*model, "encode", "--file", "-"])
    np.testing.assert_allclose(json.loads(capsys.readouterr().out)["embedding"], vectors[0], atol=1e-5, rtol=1e-5)

    cli.main([*model, "decode", str(tmp_path / "v.npy"), "--max-new-tokens", "3"])
    from_npy = capsys.readouterr().out
    cli.main([*model, "decode", str(tmp_path / "v.jsonl"), "--max-new-tokens", "3"])
    assert capsys.readouterr().out == from_npy and from_npy.count("\n") == 2

    cli.main(
        [
            *model,
            "decode",
            "--mix",
            str(tmp_path / "v.npy"),
            str(tmp_path / "v.npy"),
            "--alpha",
            "0.3",
            "--max-new-tokens",
            "3",
        ]
    )
    assert capsys.readouterr().out == from_npy  # mixing a file with itself changes nothing


def test_mix_interpolates_row_by_row(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 3), dtype=np.float32))
    np.save(tmp_path / "b.npy", np.ones((2, 3), dtype=np.float32))
    np.testing.assert_allclose(cli.mix_vectors(str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), 0.25), 0.25)
    np.save(tmp_path / "c.npy", np.ones((3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="same shape"):
        cli.mix_vectors(str(tmp_path / "a.npy"), str(tmp_path / "c.npy"), 0.5)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["encode"], "no texts given"),
        (["encode", ""], "Item 0 is empty"),
        (["decode", "missing.npy"], "does not exist"),
    ],
)
def test_bad_cli_input_exits_with_a_message(saved_model_dir, arguments, message):
    with pytest.raises(SystemExit, match=message):
        cli.main(["--model", str(saved_model_dir), *arguments])


def test_decode_of_wrong_sized_vectors_exits_with_a_message(saved_model_dir, tmp_path):
    np.save(tmp_path / "bad.npy", np.ones((2, 10), dtype=np.float32))
    with pytest.raises(SystemExit, match="size 10, but this model's embeddings have size 64"):
        cli.main(["--model", str(saved_model_dir), "decode", str(tmp_path / "bad.npy")])
