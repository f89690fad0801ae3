"""The glae command on a saved tiny model: encode to .npy/.jsonl from args, files and stdin; decode; mix; and every
kind of bad input, which must end in one ``glae: error:`` line, exit status 2, before the model loads, and with no
file written."""

from __future__ import annotations

import io
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from glae_st import cli, decoding, registry


def run_cli(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | str | None, list[str], str]:
    """Run ``glae`` in-process: (exit code, stderr lines, stdout); the code is 0 when main returns."""
    capsys.readouterr()
    try:
        cli.main(arguments)
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.err.splitlines(), captured.out


def files_under(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` with its bytes and mtime, to check that a command changed nothing."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def assert_one_line_error(code: int | str | None, err: list[str], message: str, model_loaded: bool = False) -> None:
    """Exit status 2 and one ``glae: error:`` line with ``message``; nothing else on stderr unless ``model_loaded``
    (then the backbone's own loading output may come first, but no traceback)."""
    assert code == 2, f"exit code {code!r}, stderr {err!r}"
    if model_loaded:
        assert not any("Traceback" in line for line in err), err
        assert [line for line in err if line.startswith("glae:")] == err[-1:], err
    else:
        assert len(err) == 1, f"expected one stderr line, got {err!r}"
    assert err[-1].startswith("glae: error: "), err[-1]
    assert message in err[-1], f"{message!r} not in {err[-1]!r}"


def test_encode_writes_npy_and_jsonl_and_decode_reads_both(saved_model_dir, tmp_path, capsys, monkeypatch):
    model = ["--model", str(saved_model_dir)]
    code, err, _ = run_cli([*model, "encode", "A cat sits.", "Stocks fell.", "-o", str(tmp_path / "v.npy")], capsys)
    assert code == 0 and err[-1] == f"glae: wrote 2 embeddings (2, 64) to {tmp_path / 'v.npy'}"
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

    mix = ["--mix", str(tmp_path / "v.npy"), str(tmp_path / "v.npy"), "--alpha", "0.3", "--max-new-tokens", "3"]
    cli.main([*model, "decode", *mix])
    assert capsys.readouterr().out == from_npy  # mixing a file with itself changes nothing


def test_force_overwrites_an_existing_output(saved_model_dir, tmp_path, capsys):
    output = tmp_path / "v.npy"
    output.write_bytes(b"old")
    code, err, _ = run_cli(
        ["--model", str(saved_model_dir), "encode", "One text.", "-o", str(output), "--force"], capsys
    )
    assert code == 0 and err[-1] == f"glae: wrote 1 embedding (1, 64) to {output}"
    assert np.load(output).shape == (1, 64)


def test_mix_interpolates_row_by_row(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 3), dtype=np.float32))
    np.save(tmp_path / "b.npy", np.ones((2, 3), dtype=np.float32))
    np.testing.assert_allclose(cli.mix_vectors(str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), 0.25), 0.25)
    np.save(tmp_path / "c.npy", np.ones((3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="same shape"):
        cli.mix_vectors(str(tmp_path / "a.npy"), str(tmp_path / "c.npy"), 0.5)


@pytest.fixture
def bad_inputs(tmp_path: Path) -> Path:
    """A folder of good and bad input files, and an existing output ``existing.npy``."""
    np.save(tmp_path / "good.npy", np.ones((2, 3), dtype=np.float32))
    np.save(tmp_path / "three_rows.npy", np.ones((3, 3), dtype=np.float32))
    np.save(tmp_path / "existing.npy", np.zeros((1, 3), dtype=np.float32))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "text.npy").write_text("A text file, not an array.\n")
    (tmp_path / "notes.txt").write_text("A cat sits.\n")
    (tmp_path / "latin1.txt").write_bytes("Café\n".encode("latin-1"))
    (tmp_path / "bad_json.jsonl").write_text('{"embedding": [1, 2]}\n\n{"embedding": [1, 2\n')
    (tmp_path / "no_embedding.jsonl").write_text('{"embedding": [1, 2]}\n{"text": "a"}\n')
    (tmp_path / "strings.jsonl").write_text('{"embedding": ["1", "2"]}\n')
    (tmp_path / "ragged.jsonl").write_text('{"embedding": [1, 2, 3]}\n{"embedding": [1, 2]}\n')
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "folder.npy").mkdir()
    return tmp_path


BAD_INPUTS = [
    (["encode"], "no texts given; pass them as arguments, or --file PATH"),
    (["encode", "A cat.", "--file", "{dir}/notes.txt"], "give texts as arguments or --file, not both."),
    (["encode", "--file", "{dir}/missing.txt"], "no such file: {dir}/missing.txt"),
    (["encode", "--file", "{dir}/folder.npy"], "{dir}/folder.npy is a folder, not a file."),
    (["encode", "--file", "{dir}/latin1.txt"], "{dir}/latin1.txt is not UTF-8 text"),
    (["encode", "A cat.", "-o", "{dir}/notes2.txt"], "vector files must end in .npy or .jsonl"),
    (["encode", "A cat.", "-o", "{dir}/vectors"], "got no extension"),
    (["encode", "A cat.", "-o", "{dir}/existing.npy"], "{dir}/existing.npy already exists; pass --force"),
    (["encode", "A cat.", "-o", "{dir}/no/such/v.npy"], "the folder {dir}/no/such does not exist; create it first."),
    (["encode", "A cat.", "-o", "{dir}/folder.npy", "--force"], "{dir}/folder.npy is a folder"),
    (["encode", "--file", "{dir}/missing.txt", "-o", "{dir}/new.npy"], "no such file: {dir}/missing.txt"),
    (["decode", "{dir}/missing.npy"], "no such file: {dir}/missing.npy"),
    (["decode", "{dir}/notes.txt"], "{dir}/notes.txt: vector files must end in .npy or .jsonl"),
    (["decode", "{dir}/text.npy"], "{dir}/text.npy is not a NumPy .npy file"),
    (["decode", "{dir}/objects.npy"], "{dir}/objects.npy is not a readable NumPy .npy file"),
    (["decode", "{dir}/folder.npy"], "is a folder, not a file"),
    (["decode", "{dir}/bad_json.jsonl"], "{dir}/bad_json.jsonl, line 3: not valid JSON"),
    (["decode", "{dir}/no_embedding.jsonl"], '{dir}/no_embedding.jsonl, line 2: no "embedding" list of numbers'),
    (["decode", "{dir}/strings.jsonl"], '{dir}/strings.jsonl, line 1: no "embedding" list of numbers'),
    (["decode", "{dir}/ragged.jsonl"], "{dir}/ragged.jsonl, line 2: an embedding of size 2, but line 1 has size 3"),
    (["decode", "{dir}/empty.jsonl"], "{dir}/empty.jsonl has no embeddings"),
    (["decode", "--mix", "{dir}/good.npy", "{dir}/missing.npy"], "no such file: {dir}/missing.npy"),
    (["decode", "--mix", "{dir}/text.npy", "{dir}/good.npy"], "{dir}/text.npy is not a NumPy .npy file"),
    (["decode", "--mix", "{dir}/good.npy", "{dir}/three_rows.npy"], "--mix needs two files of the same shape"),
    (["decode"], "glae decode takes one vector file, or --mix A B."),
    (["decode", "{dir}/good.npy", "--mix", "{dir}/good.npy", "{dir}/good.npy"], "takes one vector file, or --mix"),
    (["decode", "{dir}/good.npy", "--candidates", "0"], "argument --candidates: expected an integer >= 1, got '0'"),
    (["decode", "{dir}/good.npy", "--candidates", "two"], "argument --candidates: expected an integer >= 1"),
    (["decode", "{dir}/good.npy", "--max-new-tokens", "-1"], "argument --max-new-tokens: expected an integer >= 1"),
    (["--batch-size", "0", "encode", "A cat."], "argument --batch-size: expected an integer >= 1"),
    (["encode", "A cat.", "--no-such-option"], "unrecognized arguments: --no-such-option"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_error_line_before_the_model_loads(bad_inputs, monkeypatch, capsys, arguments, message):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(registry, "load_model", no_model)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    before = files_under(bad_inputs)
    code, err, out = run_cli([part.format(dir=bad_inputs) for part in arguments], capsys)
    assert_one_line_error(code, err, message.format(dir=bad_inputs))
    assert out == ""
    assert files_under(bad_inputs) == before  # nothing created, nothing changed (bytes and mtime)


def test_debug_shows_the_traceback_instead(bad_inputs, capsys):
    with pytest.raises(cli.UsageError, match="is not a NumPy .npy file"):
        cli.main(["--debug", "decode", str(bad_inputs / "text.npy")])
    assert "glae: error" not in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no such folder"):
        cli.main(["--debug", "--model", str(bad_inputs / "no-model"), "encode", "A cat."])


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("./no-such-glae-model", "no such folder: ./no-such-glae-model."),
        ("~/no-such-glae-model-folder", f"no such folder: {os.path.expanduser('~/no-such-glae-model-folder')}."),
        ("{dir}/empty", "{dir}/empty is not a saved GLAE model: it has no modules.json. A GLAE model folder needs"),
        ("{dir}/good.npy", "{dir}/good.npy is a file, not a model folder"),
        ("glae-7b", "Cannot load the model 'glae-7b' (Hugging Face Hub id 'glae-st/glae-7b')"),
    ],
)
def test_model_load_errors_are_one_line_and_write_nothing(bad_inputs, monkeypatch, capsys, model, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (bad_inputs / "empty").mkdir()
    before = files_under(bad_inputs)
    start = time.monotonic()
    code, err, _ = run_cli(
        ["--model", model.format(dir=bad_inputs), "encode", "A cat.", "-o", str(bad_inputs / "new.npy")], capsys
    )
    assert time.monotonic() - start < 5
    assert_one_line_error(code, err, message.format(dir=bad_inputs))
    assert files_under(bad_inputs) == before


def test_encode_and_decode_errors_are_one_line_and_write_nothing(saved_model_dir, tmp_path, capsys):
    model = ["--model", str(saved_model_dir)]
    code, err, _ = run_cli([*model, "encode", "", "-o", str(tmp_path / "v.npy")], capsys)
    assert_one_line_error(code, err, "Item 0 is empty", model_loaded=True)
    assert not (tmp_path / "v.npy").exists()

    np.save(tmp_path / "bad.npy", np.ones((2, 10), dtype=np.float32))
    code, err, out = run_cli([*model, "decode", str(tmp_path / "bad.npy")], capsys)
    assert_one_line_error(code, err, "size 10, but this model's embeddings have size 64", model_loaded=True)
    assert out == ""


def test_candidates_and_scores_map_to_decode(bad_inputs, monkeypatch, capsys):
    calls = []

    def fake_decode(model, vectors, **kwargs):
        calls.append((model, vectors, kwargs))
        texts = ["A cat.", "Stocks fell."]
        return (texts, [0.98766, -0.5]) if kwargs["return_scores"] else texts

    monkeypatch.setattr(registry, "load_model", lambda name: f"model {name}")
    monkeypatch.setattr(decoding, "decode", fake_decode)
    good = str(bad_inputs / "good.npy")
    code, _, out = run_cli(
        ["--model", "m", "decode", good, "--candidates", "3", "--scores", "--num-beams", "2"], capsys
    )
    assert code == 0 and out == "0.9877\tA cat.\n-0.5000\tStocks fell.\n"
    model, vectors, kwargs = calls[-1]
    assert model == "model m" and vectors.shape == (2, 3)
    assert kwargs == {
        "max_new_tokens": 64,
        "num_beams": 2,
        "batch_size": 32,
        "num_candidates": 3,
        "refinement_steps": None,
        "return_scores": True,
    }
    code, _, out = run_cli(["--model", "m", "decode", good], capsys)  # the model's own setting
    assert code == 0 and out == "A cat.\nStocks fell.\n"
    assert [calls[-1][2][name] for name in ("num_beams", "num_candidates", "refinement_steps")] == [None] * 3
    assert calls[-1][2]["return_scores"] is False
    run_cli(["--model", "m", "decode", good, "--refinement-steps", "2"], capsys)
    assert calls[-1][2]["refinement_steps"] == 2
    run_cli(["--model", "m", "decode", good, "--greedy"], capsys)
    assert calls[-1][2]["num_candidates"] == 1 and calls[-1][2]["refinement_steps"] == 0
    count = len(calls)
    code, err, _ = run_cli(["--model", "m", "decode", good, "--greedy", "--candidates", "4"], capsys)
    assert_one_line_error(code, err, "--greedy is one candidate and no refinement")
    code, err, _ = run_cli(["--model", "m", "decode", good, "--refinement-steps", "-1"], capsys)
    assert code == 2 and "expected an integer >= 0, got '-1'" in err[-1]
    assert len(calls) == count


def test_candidates_and_scores_with_the_real_decode(saved_model_dir, tmp_path, capsys):
    model = ["--model", str(saved_model_dir)]
    cli.main([*model, "encode", "A cat sits.", "Stocks fell.", "-o", str(tmp_path / "v.npy")])
    code, _, out = run_cli(
        [*model, "decode", str(tmp_path / "v.npy"), "--candidates", "2", "--scores", "--max-new-tokens", "3"], capsys
    )
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2 and all(re.fullmatch(r"-?\d\.\d{4}\t.*", line) for line in lines), lines
    assert all(-1.0 <= float(line.split("\t")[0]) <= 1.0 for line in lines)
