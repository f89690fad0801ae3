"""Plot STS-B dev Spearman against held-out decode token F1 for the loss-weight sweep (training/sweep.sh).

    bash training/sweep.sh && python benchmarks/pareto.py

Reads the trainer log histories in ``training/logs`` (the default's own run and each sweep run) and writes
``benchmarks/results/pareto.json`` and ``benchmarks/results/pareto.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "training" / "logs"
RESULTS = ROOT / "benchmarks" / "results"


def last_evaluation(log_path: Path) -> dict[str, float]:
    """The last ``eval_*`` entry of a trainer log history: STS-B dev Spearman and decode token F1."""
    entries = [e for e in json.loads(log_path.read_text()) if "eval_sts-dev_spearman_cosine" in e]
    if not entries:
        raise ValueError(f"{log_path} has no evaluation entry.")
    last = entries[-1]
    return {
        "step": last["step"],
        "sts_dev_spearman": 100 * last["eval_sts-dev_spearman_cosine"],
        "decode_token_f1": last["eval_held-out_decode_token_f1"],
    }


def main() -> None:
    points = {"default (160 steps, w1=1, w2=1)": last_evaluation(LOGS / "smollm2-default.training_log.json")}
    for log_path in sorted(LOGS.glob("sweep_*.training_log.json")):
        name = log_path.name.removeprefix("sweep_").removesuffix(".training_log.json")
        points[f"default + 40 steps, {name}"] = last_evaluation(log_path)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pareto.json").write_text(json.dumps(points, indent=1))
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for name, point in points.items():
        axis.scatter(point["decode_token_f1"], point["sts_dev_spearman"], s=40)
        axis.annotate(
            name,
            (point["decode_token_f1"], point["sts_dev_spearman"]),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    axis.set_xlabel("held-out decode token F1 (16 Lee news sentences)")
    axis.set_ylabel("STS-B dev Spearman x100 (300 pairs)")
    axis.set_title("GLAE SmolLM2-135M: similarity vs reconstruction")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(RESULTS / "pareto.png", dpi=120)
    for name, point in points.items():
        print(f"{name:45s} STS-B dev {point['sts_dev_spearman']:.1f}  token F1 {point['decode_token_f1']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
