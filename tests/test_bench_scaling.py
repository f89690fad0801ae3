"""``python -m benchmarks.scaling``: every engine encodes in its own process and gives the single process's vectors."""

from __future__ import annotations

import math
from pathlib import Path

from benchmarks import scaling


def test_scaling_runs_every_engine_in_its_own_process_and_gives_the_single_process_vectors(saved_model_dir: Path):
    texts = [f"Sentence {i} about {'rain' if i % 2 else 'stocks'}." for i in range(12)]
    rows = scaling.run(list(scaling.ENGINES), [2], texts, batch_size=4, model_name=str(saved_model_dir))
    assert [(row["engine"], row["workers"]) for row in rows] == [("single", 1), ("st-pool", 2), ("ray", 2)]
    assert rows[0]["speedup_vs_single"] == 1.0 and rows[0]["max_abs_diff_vs_single"] == 0.0
    for row in rows:
        assert row["texts"] == 12 and math.isfinite(row["sentences_per_second"])
        assert row["max_abs_diff_vs_single"] < 1e-4
    # ray's time is the difference of two timed runs (N and 2N texts), which noise can outweigh at 12 texts
    assert all(row["sentences_per_second"] > 0 for row in rows if row["engine"] != "ray")
    table = scaling.format_table(rows).splitlines()
    assert len(table) == 2 + len(rows) and table[3].startswith("| st-pool | 2 |")
