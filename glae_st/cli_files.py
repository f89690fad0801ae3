"""The files of the ``glae`` command: vector files (``.npy`` or ``.jsonl``) and text inputs read and checked (vectors
against the model folder, without loading it), every output checked (existing, writable, not an input) before a
model loads, then written all at once."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glae_st import atomic

VECTOR_FORMATS = (".npy", ".jsonl")
"""The extensions of vector files that ``glae`` reads and writes."""

NPY_MAGIC = b"\x93NUMPY"
"""The first bytes of every NumPy ``.npy`` file."""


class UsageError(Exception):
    """A mistake in the command or its inputs; ``glae`` reports it as one ``glae: error:`` line and exits with 2."""


def vector_format(path: str) -> str:
    """The format of a vector file from its extension: ``".npy"`` or ``".jsonl"``, else a :class:`UsageError`."""
    suffix = Path(path).suffix.lower()
    if suffix not in VECTOR_FORMATS:
        raise UsageError(
            f"{path}: vector files must end in .npy or .jsonl (the extension sets the format), got "
            f"{suffix or 'no extension'}."
        )
    return suffix


def check_input_file(path: str) -> Path:
    """``path`` as a :class:`Path` if it is an existing file, else a :class:`UsageError`."""
    file = Path(path)
    if file.is_dir():
        raise UsageError(f"{path} is a folder, not a file.")
    if not file.is_file():
        raise UsageError(f"no such file: {path}")
    return file


def check_output(output: str, force: bool, inputs: Sequence[str | None] = ()) -> None:
    """Refuse an output that is not .npy/.jsonl, or that :func:`check_writable` refuses."""
    vector_format(output)
    path = Path(output)
    if path.is_dir():
        raise UsageError(f"{output} is a folder; give a file name ending in .npy or .jsonl.")
    check_writable(path, force, inputs)


def same_file(first: str | Path, second: str | Path) -> bool:
    """Whether two paths name the same file (links and ``..`` resolved)."""
    try:
        return os.path.samefile(first, second)
    except OSError:
        return Path(first).resolve() == Path(second).resolve()


def check_writable(path: Path, force: bool, inputs: Sequence[str | None] = ()) -> None:
    """Refuse, before any work, a file that is one of ``inputs``, is in a missing or read-only folder, or exists
    (unless ``force``)."""
    for given in inputs:
        if given and given != "-" and same_file(path, given):
            raise UsageError(f"{path} is also an input ({given}); write the output to another file.")
    try:
        atomic.check_can_write(path, force)
    except atomic.OutputError as exc:
        raise UsageError(str(exc)) from None


def read_utf8(file: Path) -> str:
    """The text of ``file``, or a :class:`UsageError` if it is not UTF-8."""
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{file} is not UTF-8 text (byte {exc.start}: {exc.reason}).") from None


def read_texts(texts: Sequence[str], file: str | None) -> list[str]:
    """Texts from the arguments, or one per non-empty line of ``file`` (``-`` is stdin)."""
    if texts and file:
        raise UsageError("give texts as arguments or --file, not both.")
    if file:
        lines = sys.stdin.readlines() if file == "-" else read_utf8(check_input_file(file)).splitlines()
        texts = [line.rstrip("\n") for line in lines if line.strip()]
    if not texts:
        raise UsageError("no texts given; pass them as arguments, or --file PATH (or - for stdin).")
    return list(texts)


def write_vectors(vectors: np.ndarray, texts: Sequence[str], output: str | None, force: bool = False) -> None:
    """Write ``.npy`` (the array) or ``.jsonl`` (``{"text", "embedding"}`` per line); without ``output``, to stdout.

    The file is written after everything is encoded, to a temporary file beside it that is renamed into place
    (:func:`glae_st.atomic.write_bytes`); it is never overwritten unless ``force``.
    """
    lines = (
        json.dumps({"text": text, "embedding": vector.tolist()}) + "\n"
        for text, vector in zip(texts, vectors, strict=True)
    )
    if output is None:
        sys.stdout.writelines(lines)
        return
    if vector_format(output) == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, vectors)
        data = buffer.getvalue()
    else:
        data = "".join(lines).encode("utf-8")
    try:
        atomic.write_bytes(output, data, force)
    except atomic.OutputExistsError as exc:
        raise UsageError(str(exc)) from None


def read_npy(file: Path) -> np.ndarray:
    """The array in a ``.npy`` file (never unpickled), or a :class:`UsageError` that says what the file is not."""
    with file.open("rb") as handle:
        is_npy = handle.read(len(NPY_MAGIC)) == NPY_MAGIC
    if not is_npy:
        raise UsageError(f"{file} is not a NumPy .npy file; write one with `glae encode -o FILE.npy` or numpy.save.")
    try:
        return np.load(file, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise UsageError(f"{file} is not a readable NumPy .npy file: {exc}") from None


def read_jsonl(file: Path) -> np.ndarray:
    """The ``"embedding"`` of each non-empty line of a ``.jsonl`` file; a bad line is named by its number."""
    expected = 'each line must be {"text": ..., "embedding": [numbers]}, as glae encode writes them'
    rows: list[list[float]] = []
    first_line = 0
    for number, line in enumerate(read_utf8(file).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{file}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno}); {expected}.") from None
        embedding = row.get("embedding") if isinstance(row, dict) else None
        if (
            not isinstance(embedding, list)
            or not embedding
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in embedding)
        ):
            raise UsageError(f'{where}: no "embedding" list of numbers; {expected}.')
        if rows and len(embedding) != len(rows[0]):
            raise UsageError(
                f"{where}: an embedding of size {len(embedding)}, but line {first_line} has size {len(rows[0])}; "
                "all embeddings in a file must have the same size."
            )
        first_line = first_line or number
        rows.append(embedding)
    if not rows:
        raise UsageError(f"{file} has no embeddings (no non-empty lines).")
    return np.asarray(rows, dtype=np.float32)


def read_vectors(path: str) -> np.ndarray:
    """Vectors from ``.npy`` or ``.jsonl`` (as written by ``glae encode``)."""
    suffix = vector_format(path)
    file = check_input_file(path)
    return read_npy(file) if suffix == ".npy" else read_jsonl(file)


def mix_vectors(first_path: str, second_path: str, alpha: float) -> np.ndarray:
    """``(1 - alpha) * A + alpha * B`` row by row: embedding arithmetic between two vector files."""
    first, second = read_vectors(first_path), read_vectors(second_path)
    if first.shape != second.shape:
        raise ValueError(f"--mix needs two files of the same shape, got {first.shape} and {second.shape}.")
    return (1 - alpha) * first + alpha * second


def check_report_output(output: str, force: bool, inputs: Sequence[str | None] = ()) -> None:
    """Refuse a report path that is not ``.json``, or a report or its PNG beside it that :func:`check_writable`
    refuses (an input, a missing or read-only folder, or an existing file without ``force``)."""
    path = Path(output)
    if path.suffix.lower() != ".json":
        raise UsageError(f"{output}: the report is JSON; give a file name ending in .json.")
    check_writable(path, force, inputs)
    check_writable(path.with_suffix(".png"), force, inputs)


def check_new_folder(folder: str, option: str) -> None:
    """Refuse a folder to create that exists, or whose parent is missing or read-only."""
    path = Path(folder)
    if path.exists():
        raise UsageError(f"{folder} already exists; choose a new folder for {option}.")
    try:
        atomic.check_can_write(path, force=True)
    except atomic.OutputError as exc:
        raise UsageError(str(exc)) from None


def check_vectors(vectors: np.ndarray, model: str) -> None:
    """What :func:`glae_st.decode` would refuse, checked before the model loads: not floats, not (n, d), no rows,
    NaN or inf, or (when the model folder tells it without loading anything) the wrong size."""
    if not np.issubdtype(vectors.dtype, np.floating):
        raise UsageError(f"the vectors are of type {vectors.dtype}, not floats; decode the arrays that encode writes.")
    if vectors.ndim != 2 or not len(vectors):
        raise UsageError(f"the vectors must be an array of shape (n, d) with n >= 1, got shape {vectors.shape}.")
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        raise UsageError(f"the vectors contain NaN or inf in rows {np.flatnonzero(~finite)[:10].tolist()}.")
    size = embedding_size(model)
    if size is not None and vectors.shape[1] != size:
        raise UsageError(
            f"the vectors have size {vectors.shape[1]}, but this model's embeddings have size {size}. Were they made "
            "by another model, or with truncate_dim? Decode with the model that encoded them, at full size."
        )


def embedding_size(model: str) -> int | None:
    """The embedding size of a saved GLAE model folder, read from its config and its backbone's ``config.json``
    without loading anything; None when that is not known without loading."""
    from glae_st import backbone, registry

    folder = Path(registry.resolve_model_name(model)).expanduser()
    try:
        modules = json.loads((folder / registry.MODULES_FILE).read_text(encoding="utf-8"))
        glae = next(m for m in modules if m.get("type") == registry.GLAE_MODULE_TYPES[0])
        config = json.loads((folder / (glae.get("path") or "") / registry.GLAE_CONFIG_FILE).read_text("utf-8"))
        name = config["backbone"]
        source = backbone.smollm2_cache_folder() if name == backbone.SMOLLM2_BACKBONE else Path(name)
        size = json.loads((source / "config.json").read_text(encoding="utf-8"))["hidden_size"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, StopIteration):
        return None
    return size if isinstance(size, int) else None


def check_finite_embeddings(vectors: np.ndarray, model: str) -> None:
    """Refuse embeddings with NaN or inf (from damaged weights), in one line that names the likely cause."""
    from glae_st.backbone import damaged_weights_hint

    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        raise UsageError(
            f"the model returned NaN or infinite embeddings for {int((~finite).sum())} of {len(vectors)} texts, so "
            f"nothing was written. {damaged_weights_hint(model)}"
        )
