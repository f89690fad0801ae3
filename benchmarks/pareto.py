"""Plot STS-B dev Spearman against held-out decode token F1 for the training runs of the default.

    bash training/sweep.sh && python -m benchmarks.pareto

Reads the trainer log histories in ``training/logs``: the first 160-step default, each 40-step sweep run from it,
every evaluation of the 400-step continuation (``smollm2-long``) and of its 40-step repulsion-weighted finish
(``smollm2-long-w2-0.1``, the 600-step model), then every evaluation of the 360-step reconstruction stage on
Wikipedia sentences that continued it (``smollm2-recon``) and of that stage's repulsion-weighted finish
(``smollm2-recon-w2-0.1``, the 1,000-step default), and of the 300-step reconstruction stage on Brown corpus
sentences that continued the Wikipedia stage (``smollm2-brown``), its finish (``smollm2-brown-w2-0.1``) and a second
finish at twice the learning rate (``smollm2-brown-w2-0.1-lr2e-4``, the 1,340-step default); then the stages that
continued it: the distillation stage (``smollm2-distill``, the 1,740-step default), the long-text stage
(``smollm2-iterative``), the two runs of the stage-10 sweep (``smollm2-stage10-*``, the 2,140-step default) and the
recurrence stage on top of the CoSENT run (``smollm2-stage11``), and the decoder adapter trained over the frozen
CoSENT run (``smollm2-stage12-decoder``), its variant that reads the vector as 4 tokens (``smollm2-stage13-slots``),
and the CoSENT recipe with three times the reconstruction weight (``smollm2-stage15-recon3``):
their decode scores are on 64 Lee dev sentences, not 16, so their paths start apart. The continuations are drawn as
paths. Writes ``benchmarks/results/pareto.json`` and ``benchmarks/results/pareto.png``.

The second panel is the selection itself: every model ``training/select_on_dev.py`` scored on full STS-B dev (1,500
pairs) and 64 Lee dev sentences, read from ``training/logs/*.dev-selection.json``. Stage 14 (the recurrence adapter,
``smollm2-stage14-recurrence``) is there only: it trains no short-text path, so it sits on the default's dot.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from glae_st.atomic import atomic_path, write_text

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "training" / "logs"
RESULTS = ROOT / "benchmarks" / "results"


def evaluations(log_path: Path) -> list[dict[str, float]]:
    """The ``eval_*`` entries of a trainer log history: step, STS-B dev Spearman x100 and decode token F1."""
    entries = [e for e in json.loads(log_path.read_text()) if "eval_sts-dev_spearman_cosine" in e]
    if not entries:
        raise ValueError(f"{log_path} has no evaluation entry.")
    return [
        {
            "step": entry["step"],
            "sts_dev_spearman": 100 * entry["eval_sts-dev_spearman_cosine"],
            "decode_token_f1": entry["eval_held-out_decode_token_f1"],
        }
        for entry in entries
    ]


def path(log_name: str, label: str) -> dict[str, dict[str, float]]:
    """Every evaluation of one run, keyed by ``label`` with ``{step}`` filled in from the evaluation."""
    return {label.format(step=point["step"]): point for point in evaluations(LOGS / log_name)}


def dev_selection_points() -> dict[str, dict[str, float]]:
    """Every model of the ``*.dev-selection.json`` files, keyed by its run folder (a later file's figures of the same
    folder replace an earlier one's)."""
    points = {}
    for selection_path in sorted(LOGS.glob("*.dev-selection.json")):
        for folder, scores in json.loads(selection_path.read_text()).items():
            points[folder] = {
                "sts_dev_spearman": scores["stsb_dev_spearman_1500"],
                "decode_token_f1": scores["dev64_token_f1_raw"],
            }
    return points


def scatter(axis: plt.Axes, points: dict[str, dict[str, float]]) -> None:
    """One labelled dot per point."""
    for name, point in points.items():
        axis.scatter(point["decode_token_f1"], point["sts_dev_spearman"], s=40)
        axis.annotate(
            name,
            (point["decode_token_f1"], point["sts_dev_spearman"]),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    axis.margins(x=0.25)
    axis.grid(alpha=0.3)


def main() -> None:
    first = evaluations(LOGS / "smollm2-default.training_log.json")[-1]
    points = {"first default (160 steps, w1=1, w2=1)": first}
    for log_path in sorted(LOGS.glob("sweep_*.training_log.json")):
        name = log_path.name.removeprefix("sweep_").removesuffix(".training_log.json")
        points[f"first + 40 steps, {name}"] = evaluations(log_path)[-1]
    continuation = path("smollm2-long.training_log.json", "first + {step} steps, lr 5e-4")
    model_600 = evaluations(LOGS / "smollm2-long-w2-0.1.training_log.json")[-1]
    reconstruction = path("smollm2-recon.training_log.json", "600 + {step} steps on Wikipedia, w1=0.1")
    finish = path("smollm2-recon-w2-0.1.training_log.json", "600 + 360 + {step} steps, w1-1.0_w2-0.1")
    brown = path("smollm2-brown.training_log.json", "960 + {step} steps on Brown, w1=0.1")
    brown_finish = path("smollm2-brown-w2-0.1.training_log.json", "960 + 300 + {step} steps, w1-1.0_w2-0.1")
    second_finish = path("smollm2-brown-w2-0.1-lr2e-4.training_log.json", "960 + 340 + {step} steps, w2=0.1, lr 2e-4")
    distill = path("smollm2-distill.training_log.json", "1340 + {step} steps, distillation (stage 8)")
    last_name, shipped = distill.popitem()
    distill[f"{last_name}, shipped"] = shipped
    iterative = path("smollm2-iterative.training_log.json", "1740 + {step} steps, recurrence (stage 9)")
    stage10 = {
        name: path(f"smollm2-stage10-{name}.training_log.json", f"1740 + {{step}} steps, {name} (stage 10)")
        for name in ("control", "cosent")
    }
    stage11 = path("smollm2-stage11.training_log.json", "2140 + {step} steps, recurrence (stage 11)")
    stage12 = path(
        "smollm2-stage12-decoder.training_log.json", "2140 + {step} decoder-adapter steps (stage 12, 64 texts)"
    )
    stage13 = path(
        "smollm2-stage13-slots.training_log.json", "2140 + {step} steps, 4-slot decoder (stage 13, 64 texts)"
    )
    stage15 = path("smollm2-stage15-recon3.training_log.json", "2140 + {step} steps, w2=3 (stage 15, 64 texts)")
    points.update(continuation)
    points["600: first + 400 + 40 steps, w1-1.0_w2-0.1"] = model_600
    points.update(reconstruction)
    points.update(finish)
    points.update(brown)
    points.update(brown_finish)
    points.update(second_finish)
    for stage in (distill, iterative, *stage10.values(), stage11, stage12, stage13, stage15):
        points.update(stage)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS / "pareto.json", json.dumps(points, indent=1))
    selection = dev_selection_points()
    write_text(RESULTS / "pareto-dev-selection.json", json.dumps(selection, indent=1))
    figure, (axis, selection_axis) = plt.subplots(1, 2, figsize=(16, 6))
    lines = (
        [first, *continuation.values(), model_600],
        [model_600, *reconstruction.values(), *finish.values()],
        [list(reconstruction.values())[-1], *brown.values(), *brown_finish.values(), *second_finish.values()],
        [list(second_finish.values())[-1], *distill.values()],
        *([list(distill.values())[-1], *stage.values()] for stage in (iterative, *stage10.values())),
        [list(stage10["cosent"].values())[-1], *stage11.values()],
        list(stage12.values()),  # not joined to stage 10: their decode scores are on 64 dev sentences
        list(stage13.values()),
        list(stage15.values()),
    )
    for line in lines:
        axis.plot([p["decode_token_f1"] for p in line], [p["sts_dev_spearman"] for p in line], color="0.7", zorder=0)
    scatter(axis, points)
    axis.set_xlabel("held-out decode token F1 (16 Lee news sentences)")
    axis.set_ylabel("STS-B dev Spearman x100 (300 pairs)")
    axis.set_title("GLAE SmolLM2-135M: similarity vs reconstruction during training")
    scatter(selection_axis, selection)
    selection_axis.set_xlabel("greedy decode token F1 (64 Lee dev sentences)")
    selection_axis.set_ylabel("STS-B dev Spearman x100 (1,500 pairs)")
    selection_axis.set_title("The models compared for the default (training/select_on_dev.py)")
    figure.tight_layout()
    with atomic_path(RESULTS / "pareto.png") as temporary:
        figure.savefig(temporary, dpi=120)
    for name, point in points.items():
        print(f"{name:50s} STS-B dev {point['sts_dev_spearman']:.1f}  token F1 {point['decode_token_f1']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
