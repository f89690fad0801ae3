"""How much of a training batch is text and how much padding, with random batches and with length-grouped ones.

    python -m training.padding runs/stage12-decoder/teacher-labelled-data --batch-size 32

Reads the datasets a run saved (``teacher-labelled-data``), counts backbone tokens per row (its text columns, each
cut at ``--max-seq-length`` as the encoder cuts them) and reports, for one epoch of each batch sampler, the share of
real tokens among the padded ones and the padded tokens in all. The decode prompt, the same for every row, is left
out. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from datasets import DatasetDict
from torch.utils.data import BatchSampler, RandomSampler
from transformers import AutoTokenizer

from glae_st.backbone import cached_smollm2
from training.batching import length_grouped_batches
from training.data import text_columns


def padding_report(lengths: np.ndarray, batches: Sequence[Sequence[int]]) -> dict[str, float]:
    """Share of real tokens in right-padded batches, and the padded tokens in all."""
    real = sum(int(lengths[batch].sum()) for batch in batches)
    padded = sum(int(lengths[batch].max()) * len(batch) for batch in batches)
    return {"real_token_share": round(real / padded, 4), "padded_tokens": padded}


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, help="A run's teacher-labelled-data folder.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=64)
    args = parser.parse_args(argv)
    if not (args.data_dir / "dataset_dict.json").is_file():
        parser.error(f"{args.data_dir} is not a saved DatasetDict (no dataset_dict.json); pass a run's data folder.")
    tokenizer = AutoTokenizer.from_pretrained(cached_smollm2())  # the default backbone's, as training/speed.py
    report = {}
    for name, dataset in DatasetDict.load_from_disk(str(args.data_dir)).items():
        lengths = np.zeros(len(dataset), dtype=np.int64)
        for column in text_columns(dataset):
            ids = tokenizer(list(dataset[column]), add_special_tokens=False)["input_ids"]
            lengths += np.array([min(len(row), args.max_seq_length) + 1 for row in ids])  # + </text>
        generator = torch.Generator().manual_seed(0)
        random_batches = list(BatchSampler(RandomSampler(dataset, generator=generator), args.batch_size, True))
        grouped = list(length_grouped_batches(dataset, args.batch_size, True, generator=generator))
        report[name] = {
            "random": padding_report(lengths, random_batches),
            "length_grouped": padding_report(lengths, grouped),
        }
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
