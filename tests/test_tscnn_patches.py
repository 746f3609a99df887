"""TS-CNN patch placement as the authors ran it: every training patch is centred on a lesion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from lesionseg.config.train import METHOD_PRESETS, resolve_train_config
from lesionseg.data.slicing import random_patch_origin
from lesionseg.train.samples import SliceBatcher

# the TS-CNN Table 1 rows: the presets with TS-CNN's 128 x 128 patches
TSCNN_METHODS = sorted(m for m, p in METHOD_PRESETS.items() if p.get("patch_size") == (128, 128))


@dataclass
class Case:
    image: np.ndarray
    label: np.ndarray
    mask: np.ndarray


def punctate_case(seed: int) -> Case:
    """A 200 x 180 x 8 case whose lesions are 2 x 2 pixels (PWML-sized), on slices 2, 3 and 5 only."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((200, 180, 8), dtype=np.uint8)
    mask[20:180, 20:160, :] = 1
    label = np.zeros_like(mask)
    for z in (2, 3, 5):
        for _ in range(2):
            r, c = rng.integers(30, 168), rng.integers(30, 148)
            label[r : r + 2, c : c + 2, z] = 1
    image = (rng.normal(size=(1, *mask.shape)) * mask).astype(np.float32)
    return Case(image, label, mask)


def test_the_tscnn_presets_are_found() -> None:
    assert {"resunet-focal", "tscnn-focal", "tscnn-focal-aug", "tscnn64-focal-aug", "tscnn-sbfl"} <= set(
        TSCNN_METHODS
    )


@pytest.mark.parametrize("method", TSCNN_METHODS)
@pytest.mark.parametrize("profile", ["paper", "cpu"])
def test_every_tscnn_patch_contains_lesion(method: str, profile: str) -> None:
    cfg = resolve_train_config(method, profile)
    assert cfg.lesion_patch_probability == 1.0
    cases = [punctate_case(0), punctate_case(1)]
    batcher = SliceBatcher(cases, cfg, label_values=[0, 1], num_outputs=1)
    lesion_slices = {(e.case, e.z) for e in batcher.entries if cases[e.case].label[..., e.z].any()}
    assert lesion_slices
    rng = np.random.default_rng(5)
    for _ in range(12):
        picks = rng.integers(len(batcher.entries), size=cfg.batch_size)
        for i in picks:
            entry = batcher.entries[i]
            image, target = batcher.sample(entry, rng)
            assert target.shape == (128, 128) and image.shape[1:] == (128, 128)
            if (entry.case, entry.z) in lesion_slices:
                assert target.any(), f"{method}: a patch of lesion slice {entry.z} holds no lesion"
    if profile == "paper":  # the authors train on lesion slices only
        assert all((e.case, e.z) in lesion_slices for e in batcher.entries)


def test_random_patch_origin_keeps_the_lesion_pixel_inside_at_every_border() -> None:
    rng = np.random.default_rng(0)
    for r, c in [(0, 0), (0, 199), (199, 0), (199, 199), (100, 3), (5, 120)]:
        label = np.zeros((200, 200), dtype=np.uint8)
        label[r, c] = 1
        for _ in range(50):
            top, left = random_patch_origin((200, 200), (128, 96), rng, label, lesion_probability=1.0)
            assert 0 <= top <= 72 and 0 <= left <= 104
            assert top <= r < top + 128 and left <= c < left + 96
