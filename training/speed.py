"""Training speed of float32 against bf16 autocast, and the quality of both after the same number of steps.

Each setting trains the same config from the same start, data and seed for ``--steps`` steps in a fresh process
(``training/train.py``, so the trainer, LoRA and loss are those of a real run), then evaluates once (STS-B dev
Spearman and decode token F1 on the held-out dev sentences). Reported per setting: seconds per step (the trainer's
``train_runtime`` over the steps, evaluation excluded), text tokens per second (the mean backbone tokens of a
training row's texts, times rows per step, over seconds per step) and the two scores.

    python -m training.speed --steps 20                      # fp32 and bf16 on configs/smollm2-distill.yaml
    python -m training.speed --config training/configs/smollm2-default.yaml --steps 10

Writes ``<output-dir>/speed.json`` (default ``training/logs/speed``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from datasets import DatasetDict
from transformers import AutoTokenizer

from glae_st.atomic import write_text

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"fp32": "false", "bf16": "true"}
"""Setting name -> the value of ``training.bf16``."""
SMALL_DATA = [
    "data.mix={nlp_corpus: 1000, news: 1000, state_of_the_union: 300, wordnet: 300, bible: 200, brown: 300}",
    "data.bible_pairs_limit=800",
]
"""Overrides that keep the teacher-labelling of the data short; the rows of a step are drawn as in a full run."""


def mean_text_tokens_per_row(data_dir: Path, tokenizer_dir: Path) -> float:
    """Mean backbone tokens of all text columns of a training row, over the labelled datasets of a run."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    datasets = DatasetDict.load_from_disk(str(data_dir))
    totals, rows = 0, 0
    for dataset in datasets.values():
        for column in (name for name in dataset.column_names if name != "label"):
            totals += sum(len(ids) for ids in tokenizer(list(dataset[column]), add_special_tokens=False)["input_ids"])
        rows += len(dataset)
    return totals / rows


def run_setting(config: str, output_dir: Path, bf16: str, steps: int, extra: list[str]) -> dict[str, Any]:
    """Train ``steps`` steps with ``training.bf16=bf16`` in a fresh process; return its timings and final scores."""
    overrides = [
        f"training.bf16={bf16}",
        f"training.max_steps={steps}",
        f"training.eval_steps={steps}",
        f"training.save_steps={steps}",
        "training.warmup_steps=0",
        *extra,
    ]
    command = [sys.executable, "-m", "training.train", "--config", config, "--output-dir"]
    command += [str(output_dir), *(argument for override in overrides for argument in ("--set", override))]
    subprocess.run(command, check=True, cwd=REPO_ROOT)
    log = json.loads((output_dir / "final" / "training_log.json").read_text())
    summary = next(entry for entry in log if "train_runtime" in entry)
    evaluation = next(entry for entry in reversed(log) if "eval_sts-dev_spearman_cosine" in entry)
    return {
        "steps": steps,
        "seconds_per_step": summary["train_runtime"] / steps,
        "stsb_dev_spearman": 100 * evaluation["eval_sts-dev_spearman_cosine"],
        "decode_token_f1": evaluation["eval_held-out_decode_token_f1"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="training/configs/smollm2-distill.yaml")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "training" / "logs" / "speed")
    parser.add_argument("--runs-dir", type=Path, default=REPO_ROOT / "runs" / "speed", help="Checkpoints go here.")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}.")
    from glae_st.backbone import cached_smollm2

    results = {}
    extra = [*SMALL_DATA, f"training.batch_size={args.batch_size}"]
    for name, bf16 in SETTINGS.items():
        results[name] = run_setting(args.config, args.runs_dir / name, bf16, args.steps, extra)
        tokens = mean_text_tokens_per_row(args.runs_dir / name / "teacher-labelled-data", cached_smollm2())
        results[name]["text_tokens_per_second"] = tokens * args.batch_size / results[name]["seconds_per_step"]
    for measurement in results.values():
        measurement["speedup_vs_fp32"] = results["fp32"]["seconds_per_step"] / measurement["seconds_per_step"]
    payload = {
        "command": " ".join(["python", "-m", "training.speed", *(argv if argv is not None else sys.argv[1:])]),
        "config": args.config,
        "results": results,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_text(args.output_dir / "speed.json", json.dumps(payload, indent=2) + "\n")
    print("| setting | s/step | text tokens/s | vs fp32 | STS-B dev | decode token F1 (dev) |")
    print("|---|---|---|---|---|---|")
    for name, m in results.items():
        print(
            f"| {name} | {m['seconds_per_step']:.2f} | {m['text_tokens_per_second']:.0f} | {m['speedup_vs_fp32']:.2f}x "
            f"| {m['stsb_dev_spearman']:.1f} | {m['decode_token_f1']:.3f} |"
        )
    return payload


if __name__ == "__main__":
    main()
