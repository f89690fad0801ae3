"""benchmarks/common.py: what the benchmark scripts share."""

from __future__ import annotations

import pytest

from benchmarks import common


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("glae", "glae"),
        ("runs/autoregembed-smollm2-135m", "autoregembed-smollm2-135m"),
        ("runs/brown/final", "brown/final"),
        ("runs/brown/checkpoint-300", "brown/checkpoint-300"),
    ],
)
def test_display_name_keeps_the_run_of_final_and_checkpoint_folders(name: str, label: str):
    assert common.display_name(name) == label
