"""Batch samplers of a training config (``training.batch_sampler``), for sentence-transformers' trainer."""

from __future__ import annotations

import torch
from datasets import Dataset
from sentence_transformers.base.sampler import BatchSamplers, DefaultBatchSampler
from transformers.trainer_pt_utils import LengthGroupedSampler

from training.data import text_columns


def length_grouped_batches(
    dataset: Dataset,
    batch_size: int,
    drop_last: bool,
    valid_label_columns: list[str] | None = None,
    generator: torch.Generator | None = None,
    seed: int = 0,
) -> DefaultBatchSampler:
    """Batches of texts of similar length (``training.batch_sampler: length_grouped``), so little of a step is spent
    on padding: transformers' ``LengthGroupedSampler`` shuffles, sorts megabatches of 50 batches by characters of
    text, and yields the batches of each in random order."""
    columns = text_columns(dataset)
    lengths = [sum(len(row[name]) for name in columns) for row in dataset.select_columns(columns)]
    sampler = LengthGroupedSampler(batch_size, lengths=lengths, generator=generator)
    return DefaultBatchSampler(
        sampler, batch_size, drop_last, valid_label_columns=valid_label_columns, generator=generator, seed=seed
    )


BATCH_SAMPLERS = {"no_duplicates": BatchSamplers.NO_DUPLICATES, "length_grouped": length_grouped_batches}
"""``training.batch_sampler`` of a config (default ``no_duplicates``: in-batch negatives must differ)."""
