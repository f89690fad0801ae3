"""Writing files and folders all at once: to a temporary name beside the target, renamed into place when complete.

Every file that glae-st writes (vectors, reports, plots, translators, the backbone cache, model folders) goes
through :func:`atomic_path`, :func:`atomic_folder` or :func:`files_into` (a folder whose files are each renamed in:
each is then old or new). A failure (a full disk, Ctrl-C, an error while the data is
produced) leaves the target as it was, old file included, and no partial file beside it; the error names the file
and says that nothing was written. Without ``force`` an existing target is never replaced, even by a file that
appears while the new one is being written. The new file or folder gets the mode that writing in place would have
given it (the old file's, else the usual one under the umask), not ``tempfile``'s private one.

This module imports only the standard library, so that the ``glae`` command can check its outputs before any heavy
import.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_PREFIX = ".glae-tmp-"
"""The start of the names of temporary files and folders (hidden, beside their target)."""


class OutputError(OSError):
    """An output could not be written; the message names it and says that nothing was written."""


class OutputExistsError(OutputError, FileExistsError):
    """The output exists and was not to be replaced (no ``force``)."""


def exists_message(target: str | os.PathLike[str]) -> str:
    """The one line for an output that exists and may not be replaced."""
    return f"{os.fspath(target)} already exists; pass --force to overwrite it."


def _failed(target: Path, exc: BaseException) -> OutputError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    return OutputError(
        f"could not write {target}: {reason}; nothing was written ({target} is as it was before, if it existed)."
    )


def check_can_write(target: str | os.PathLike[str], force: bool = False) -> None:
    """Refuse now, before any work, an output that could not be written later: a missing folder, a folder that is
    not writable (tried by creating and removing a temporary file in it), a target that is a folder, or one that
    exists (unless ``force``).

    Raises:
        OutputExistsError: The target exists and ``force`` is false.
        OutputError: Any other reason, in one line.
    """
    path = Path(target)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give the name of a file to write.")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: the folder {path.parent} does not exist; create it first.")
    if path.exists() and not force:
        raise OutputExistsError(exists_message(path))
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=TEMP_PREFIX):
            pass
    except OSError as exc:
        raise OutputError(
            f"cannot write {path}: the folder {path.parent} is not writable ({exc.strerror or exc}); nothing was "
            "done."
        ) from None


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux), else set and put back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _give_mode(temporary: Path, target: Path, folder: bool = False) -> None:
    """Give a temporary file or folder (created private by ``tempfile``) the mode that writing ``target`` in place
    would have given it: the old target's mode when it exists, else the usual one under the umask."""
    try:
        mode = target.stat().st_mode & 0o7777
    except OSError:
        mode = (0o777 if folder else 0o666) & ~_umask()
    os.chmod(temporary, mode)


def _publish(temporary: Path, target: Path, force: bool) -> None:
    """Move a finished temporary file onto ``target``: replace it if ``force``, else only if it does not exist."""
    if force:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails if target exists, atomically (no window between check and write)
    except FileExistsError:
        raise OutputExistsError(exists_message(target)) from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise OutputExistsError(exists_message(target)) from None
        os.replace(temporary, target)
        return
    temporary.unlink()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], force: bool = True) -> Iterator[Path]:
    """A temporary path beside ``target`` (same folder, same extension) to write to; renamed onto ``target`` when
    the block ends without an error, removed when it does not.

    Use it for writers that take a path (``figure.savefig(tmp)``, ``save_file(tensors, tmp)``)::

        with atomic_path("report.png", force=False) as tmp:
            figure.savefig(tmp)

    Raises:
        OutputExistsError: ``target`` exists (or appeared meanwhile) and ``force`` is false; nothing was written.
        OutputError: Writing failed with an ``OSError`` (for example a full disk); nothing was written. Other
            errors of the block pass through unchanged, after the temporary file is removed.
    """
    target = Path(target)
    if not force and target.exists():
        raise OutputExistsError(exists_message(target))
    try:
        handle, name = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX, suffix=target.suffix)
    except OSError as exc:
        raise _failed(target, exc) from None
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        _give_mode(temporary, target)  # once written: a read-only old file must not make the new one unwritable
        _publish(temporary, target, force)
    except OutputExistsError:
        temporary.unlink(missing_ok=True)
        raise
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise _failed(target, exc) from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes(target: str | os.PathLike[str], data: bytes, force: bool = True) -> None:
    """Write ``data`` to ``target`` all at once (see :func:`atomic_path`), flushed to disk before the rename."""
    with atomic_path(target, force) as temporary, open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def write_text(target: str | os.PathLike[str], text: str, force: bool = True) -> None:
    """Write ``text`` as UTF-8 to ``target`` all at once (see :func:`atomic_path`)."""
    write_bytes(target, text.encode("utf-8"), force)


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """A new temporary folder beside ``target`` to fill; renamed to ``target`` when the block ends without an error,
    removed when it does not. With ``force`` an existing ``target`` is replaced (moved aside first, removed after
    the new folder is in place, so a failure keeps it).

    Raises:
        OutputExistsError: ``target`` exists and ``force`` is false; nothing was written.
        OutputError: Writing failed with an ``OSError``; nothing was written.
    """
    target = Path(target)
    if not force and target.exists():
        raise OutputExistsError(exists_message(target))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(dir=target.parent, prefix=TEMP_PREFIX))
    except OSError as exc:
        raise _failed(target, exc) from None
    try:
        yield temporary
        _give_mode(temporary, target, folder=True)
        replace_folder(temporary, target, force)
    except OutputExistsError:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    except OSError as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        raise _failed(target, exc) from exc
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def replace_folder(finished: Path, target: Path, force: bool = True) -> None:
    """Rename the complete folder ``finished`` to ``target``; an existing ``target`` is replaced if ``force`` (moved
    aside, then removed), else :class:`OutputExistsError`."""
    if not target.exists():
        try:
            os.rename(finished, target)  # fails if a folder appeared there meanwhile (and is not empty)
            return
        except OSError:
            if not target.exists():
                raise
    if not force:
        raise OutputExistsError(exists_message(target))
    aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=TEMP_PREFIX + "old-"))
    os.replace(target, aside / "old")
    try:
        os.rename(finished, target)
    except OSError:
        os.replace(aside / "old", target)  # put the old one back
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def files_into(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder beside ``folder`` to write files to; when the block ends without an error each file is
    renamed into ``folder`` (created if missing), so every file there is either its old or its complete new
    version; on an error the temporary folder is removed and ``folder`` is left as it was. For writers into a
    folder that may already hold other files (a module's ``save(path)``)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=TEMP_PREFIX))
    except OSError as exc:
        raise _failed(folder, exc) from None
    try:
        yield temporary
        for path in sorted(temporary.rglob("*")):
            if path.is_file():
                destination = folder / path.relative_to(temporary)
                destination.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, destination)
    except OSError as exc:
        raise _failed(folder, exc) from exc
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
