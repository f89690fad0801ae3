"""Loss and evaluation curves of a training run, from the trainer's log history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from glae_st.atomic import atomic_path


def plot_training_curves(log_history: list[dict[str, Any]], output_path: str | Path) -> None:
    """Save a PNG with the training loss and every ``eval_*`` metric against the step."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for entry in log_history:
        for key, value in entry.items():
            if key == "loss" or (
                key.startswith("eval_") and any(name in key for name in ("spearman", "decode", "ndcg@10"))
            ):
                steps, values = series.setdefault(key, ([], []))
                steps.append(entry["step"])
                values.append(value)
    if not series:
        return
    figure, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 3.5), squeeze=False)
    for axis, (key, (steps, values)) in zip(axes[0], series.items()):
        axis.plot(steps, values, marker="." if len(steps) < 30 else None)
        axis.set_title(key.removeprefix("eval_"))
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(output_path) as temporary:  # written beside it and renamed in: never a partial PNG
        figure.savefig(temporary, dpi=110)
    plt.close(figure)
