"""Dry runs: any training config's full code path, on a tiny random Llama and a few rows, in seconds on a CPU.

``python -m training.train --config training/configs/glae-7b.yaml --output-dir /tmp/dry --dry-run`` trains the
glae-7b recipe as written (LoRA, gradient checkpointing, bf16 where the device has it, the loss, the batch samplers,
checkpoints, evaluators, the final save and the curves) with only the sizes shrunk: the backbone, the rows per
training dataset, the steps, the batch size and the evaluation sets. It checks a recipe, and a launch with
``accelerate launch`` or ``torchrun``, before any GPU time is spent on it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from datasets import DatasetDict
from transformers.utils.import_utils import is_torch_bf16_available_on_device

from glae_st.tiny import save_tiny_backbone
from training.evaluators import selected_evaluators

BATCH_SIZE = 4
MAX_STEPS = 2
ROWS_PER_DATASET = BATCH_SIZE * MAX_STEPS
"""Enough rows for every dataset to fill a batch at each step, with the last partial batch dropped."""
EVAL_SIZES = {"stsb_dev_limit": 8, "decode_texts": 2, "long_documents": 4}
BACKBONE_FOLDER = "dry-run-backbone"


def dry_run_config(config: dict[str, Any], output_dir: str | Path) -> dict[str, Any]:
    """A copy of ``config`` shrunk for a dry run, with its tiny random backbone written to ``output_dir``.

    - The backbone (and any ``init_from`` model) becomes a tiny random Llama (:func:`glae_st.tiny.save_tiny_backbone`)
      in ``output_dir/dry-run-backbone``, so the final model loads back. With bf16 its weights are stored in
      bfloat16, as the checkpoints of the large backbones that bf16 recipes train are, so they load in bfloat16 too.
    - bf16 stays on where the config asks for it and the device computes in bfloat16; on a machine without CUDA the
      trainer is told to use the CPU.
    - The run takes :data:`MAX_STEPS` steps of :data:`BATCH_SIZE` texts per device, and logs, evaluates and saves a
      checkpoint at every step; the evaluators get :data:`EVAL_SIZES` items.
    - Everything else (LoRA, gradient checkpointing, loss, samplers, seed, learning rate schedule) is kept.

    Under ``accelerate launch`` or ``torchrun`` only the main process writes the backbone and prints the summary.

    Args:
        config: A training config (see ``training/configs``).
        output_dir: The run's output folder.
    """
    config = copy.deepcopy(config)
    training = config["training"]
    on_cpu = not torch.cuda.is_available()
    bf16 = bool(training.get("bf16")) and is_torch_bf16_available_on_device("cpu" if on_cpu else "cuda")
    state = PartialState(cpu=on_cpu)  # what the trainer will use: DDP over gloo on CPUs, NCCL on GPUs
    backbone = Path(output_dir) / BACKBONE_FOLDER
    if state.is_main_process:
        save_tiny_backbone(backbone, dtype=torch.bfloat16 if bf16 else torch.float32)
    state.wait_for_everyone()
    training.update(
        max_steps=MAX_STEPS,
        batch_size=BATCH_SIZE,
        logging_steps=1,
        eval_steps=1,
        save_steps=1,
        bf16=bf16,
        use_cpu=on_cpu,
    )
    config["eval"].update({name: EVAL_SIZES[name] for name in selected_evaluators(config["eval"])})
    replaced = config.pop("init_from", None) or config["backbone"]
    config["backbone"] = str(backbone)
    if state.is_main_process:
        print(
            f"DRY RUN: {replaced!r} is replaced by a tiny random Llama ({backbone}), each training dataset is cut to "
            f"{ROWS_PER_DATASET} rows, and training={training}, eval={config['eval']}. This checks the recipe's code "
            "path; it trains no useful model.",
            flush=True,
        )
    return config


def cap_rows(datasets: DatasetDict, rows: int = ROWS_PER_DATASET) -> DatasetDict:
    """The first ``rows`` rows of every dataset."""
    return DatasetDict({name: dataset.select(range(min(rows, len(dataset)))) for name, dataset in datasets.items()})
