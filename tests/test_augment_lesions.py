"""Lesion transplant and synthetic small lesions (augment/lesions.py): where the new lesion goes, what it
looks like, and that the batcher applies them only when asked."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from scipy import ndimage

from lesionseg.augment.lesions import EDGE_PX, add_synthetic_lesions, carve_lesion, paste_lesion
from lesionseg.config.train import resolve_train_config
from lesionseg.train.samples import SliceBatcher


def disc_brain(size: int = 64, radius: int = 26) -> np.ndarray:
    rows, cols = np.indices((size, size))
    return np.hypot(rows - size / 2, cols - size / 2) < radius


def test_transplant_keeps_lesion_contrast_over_the_recipient_tissue() -> None:
    brain = disc_brain()
    donor = np.where(brain, 0.5, 0.0)[None].astype(np.float32)  # donor tissue 0.5, lesion 0.5 + 2.0
    donor_label = np.zeros(brain.shape, np.int64)
    donor_label[30:34, 20:24] = 1
    donor[0][donor_label > 0] = 2.5
    piece = carve_lesion(donor, donor_label, brain, donor_label > 0)
    assert piece.base[0] == np.float32(0.5) and (piece.label > 0).sum() == 16

    recipient = np.where(brain, -1.0, 0.0)[None].astype(np.float32)  # another site: tissue at -1
    label = np.zeros(brain.shape, np.int64)
    image, out = paste_lesion(recipient, label, brain, piece, np.random.default_rng(0))
    new = out > 0
    assert new.sum() == 16 and ndimage.label(new)[1] == 1
    np.testing.assert_allclose(image[0][new], 1.0)  # -1 + (2.5 - 0.5): the contrast moved, not the value
    inner = ndimage.binary_erosion(brain, iterations=EDGE_PX)
    assert inner[new].all()  # off the brain's edge
    far = ndimage.distance_transform_edt(~new) > 3
    np.testing.assert_array_equal(image[0][far], recipient[0][far])  # nothing beyond the margin changes


def test_transplant_avoids_existing_lesions_and_leaves_input_when_no_site_fits() -> None:
    brain = disc_brain()
    donor = np.where(brain, 0.0, 0.0)[None].astype(np.float32)
    donor_label = np.zeros(brain.shape, np.int64)
    donor_label[30:33, 30:33] = 1
    piece = carve_lesion(donor, donor_label, brain, donor_label > 0)
    label = np.zeros(brain.shape, np.int64)
    label[20:44, 20:44] = 1  # the recipient's lesion
    for seed in range(5):
        _, out = paste_lesion(donor, label, brain, piece, np.random.default_rng(seed))
        added = (out > 0) & (label == 0)
        if added.any():
            assert ndimage.distance_transform_edt(label == 0)[added].min() > 2
    tiny = disc_brain(radius=5)  # no site EDGE_PX inside it
    image, out = paste_lesion(donor, np.zeros_like(label), tiny, piece, np.random.default_rng(0))
    assert image is donor and not out.any()


def test_synthetic_lesions_are_small_bright_and_on_flair_only() -> None:
    brain = disc_brain()
    image = np.zeros((6, 64, 64), np.float32)  # 3 context slices x (FLAIR, T1)
    label = np.zeros((64, 64), np.int64)
    out_image, out_label = add_synthetic_lesions(image, label, brain, 2, np.random.default_rng(3))
    components, count = ndimage.label(out_label > 0, structure=np.ones((3, 3)))
    assert 1 <= count <= 3
    assert np.bincount(components.ravel())[1:].max() <= 30  # radius <= 2.5 px: under 100 mm^3 at 1 mm
    assert out_image[2][out_label > 0].min() >= 1.5 * 0.5  # FLAIR of slice t at least half the contrast
    assert np.abs(out_image[[1, 3, 5]]).max() == 0  # T1 untouched
    assert out_image[0].max() < out_image[2].max()  # neighbours dimmer
    assert brain[out_label > 0].all()


def test_batcher_pastes_lesions_only_when_asked() -> None:
    rng = np.random.default_rng(0)
    brain = np.repeat(disc_brain()[..., None], 5, axis=2)
    cases = []
    for subject in ("a", "b"):
        image = rng.normal(0, 0.1, (1, 64, 64, 5)).astype(np.float32) * brain
        label = np.zeros((64, 64, 5), np.uint8)
        if subject == "a":
            label[28:32, 28:32, 2] = 1
            image[0][label > 0] = 3.0
        cases.append(SimpleNamespace(image=image, label=label, mask=brain, subject=subject))

    def lesion_pixels(**overrides: float) -> int:
        sets = [f"{k}={v}" for k, v in overrides.items()]
        plain = ["batch_size=16", "augmentation=none"]
        cfg = resolve_train_config("lesion-unet", "cpu", overrides=[*plain, *sets])
        cfg = type(cfg)(**{**cfg.__dict__, "intensity_augmentation": False, "patch_size": None})
        batcher = SliceBatcher(cases, cfg, [0, 1], 2)
        return int(batcher.batch(np.random.default_rng(1))["targets"].sum())

    plain = lesion_pixels()
    assert lesion_pixels(lesion_transplant=1.0) > plain
    assert lesion_pixels(synthetic_lesions=1.0) > plain
