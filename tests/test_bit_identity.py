"""The bundled default embeds and greedily decodes to the same bits as the code of commit f29ffa1, before the
library was split by job (issue 34): the same script runs once on that commit's ``glae_st`` and once on this one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest

REFERENCE_COMMIT = "f29ffa1"

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import numpy as np
    import torch

    import glae_st

    out, expected_root = Path(sys.argv[1]), sys.argv[2]
    assert Path(glae_st.__file__).resolve().is_relative_to(Path(expected_root).resolve()), glae_st.__file__
    torch.manual_seed(0)
    model = glae_st.load_model(glae_st.DEFAULT_MODEL)
    own_long_text = model[0].long_text
    model[0].long_text = "truncate"
    long = " ".join(
        f"Sentence {i} of a long report says that the river rose by {i} centimetres overnight." for i in range(12)
    )
    texts = [
        "A cat sits on the mat.",
        "Stocks fell sharply after the announcement.",
        "The committee will meet again next Tuesday to vote on the budget.",
        "Wie spät ist es?",
        "x",
        long,
    ]
    embeddings = model.encode(texts, convert_to_numpy=True)
    np.save(out / "embeddings.npy", embeddings)
    model[0].long_text = "iterative"
    np.save(out / "iterative.npy", model.encode([long], convert_to_numpy=True))
    model[0].long_text = "truncate"
    decoded = glae_st.decode(model, embeddings[:3], num_candidates=1, refinement_steps=0)
    (out / "decoded.json").write_text(json.dumps(decoded), encoding="utf-8")
    model[0].long_text = own_long_text  # the model's own mode reads every short text as truncation does
    np.save(out / "short_own_mode.npy", model.encode(texts[:5], convert_to_numpy=True))
    """
)


def reference_package(tmp_path: Path) -> Path:
    """``glae_st`` of :data:`REFERENCE_COMMIT`, unpacked under ``tmp_path``; skips when git or the commit is missing."""
    try:
        root = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        archive = subprocess.run(
            ["git", "archive", REFERENCE_COMMIT, "glae_st"], cwd=root, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"git or commit {REFERENCE_COMMIT} is not available here: {exc}")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(tmp_path / "reference", filter="data")
    return tmp_path / "reference"


def run(python_path: Path, out: Path) -> None:
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(python_path), "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), str(python_path)], env=env, check=True, cwd=out, timeout=900
    )


@pytest.mark.slow
def test_default_model_embeds_and_decodes_as_before_the_split(tmp_path: Path):
    reference = reference_package(tmp_path)
    run(reference, tmp_path / "before")
    run(Path(__file__).resolve().parents[1], tmp_path / "after")
    for name in ("embeddings.npy", "iterative.npy", "short_own_mode.npy"):
        before, after = np.load(tmp_path / "before" / name), np.load(tmp_path / "after" / name)
        assert before.dtype == after.dtype and before.shape == after.shape
        assert before.tobytes() == after.tobytes(), name
    decoded = [json.loads((tmp_path / side / "decoded.json").read_text(encoding="utf-8")) for side in ("before", "after")]
    assert decoded[0] == decoded[1]
    assert all(decoded[0])
