"""A WMH epoch as one pass over the training slices (steps_per_epoch 0), its augmented copies counted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from lesionseg.config.train import resolve_train_config
from lesionseg.train.samples import SliceBatcher, steps_per_epoch_for


@pytest.mark.parametrize(
    ("steps", "slices", "batch", "expected"),
    [(0, 96, 8, 12), (0, 97, 8, 13), (0, 1, 8, 1), (0, 5562, 8, 696), (50, 1000, 8, 50), (1, 3, 8, 1)],
)
def test_steps_per_epoch_for(steps: int, slices: int, batch: int, expected: int) -> None:
    assert steps_per_epoch_for(steps, slices, batch) == expected


@pytest.mark.parametrize(("steps", "slices", "batch"), [(-1, 10, 8), (0, 0, 8), (0, 10, 0)])
def test_steps_per_epoch_for_rejects(steps: int, slices: int, batch: int) -> None:
    with pytest.raises(ValueError, match="need steps_per_epoch"):
        steps_per_epoch_for(steps, slices, batch)


@dataclass
class Case:
    image: np.ndarray
    label: np.ndarray
    mask: np.ndarray


def test_a_wmh_pass_counts_the_lesion_slices_and_their_ten_copies() -> None:
    mask = np.zeros((32, 32, 6), dtype=np.uint8)
    mask[4:28, 4:28, :] = 1
    label = np.zeros_like(mask)
    label[10:14, 10:14, [1, 2, 4]] = 1  # 3 lesion slices
    case = Case(np.ones((1, 32, 32, 6), dtype=np.float32) * mask, label, mask)
    cfg = resolve_train_config("wmh-dice", "paper")  # lesion slices only, 10 augmented copies of each
    batcher = SliceBatcher([case], cfg, label_values=[0, 1], num_outputs=1)
    assert len(batcher) == 3 * (1 + 10)
    assert steps_per_epoch_for(0, len(batcher), cfg.batch_size) == 5  # ceil(33 / 8)
    shards = [SliceBatcher([case], cfg, [0, 1], 1, rank=r, world_size=2) for r in (0, 1)]
    assert sum(len(s) for s in shards) == len(batcher)  # two processes' shares make one pass together
