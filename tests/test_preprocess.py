"""preprocess: each step, the preprocessed grid's affine and the exact inverse, on small synthetic volumes."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from lesionseg.config.preprocess import PreprocessConfig
from lesionseg.errors import LesionsegError
from lesionseg.io import Volume
from lesionseg.preprocess import PreprocessRecord, apply_geometry, invert, preprocess_volumes
from lesionseg.preprocess.brainmask import border_value, clean_mask, derive_brain_mask

SPACING = (0.9, 1.2, 3.5)
WORLD_AXIS = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
GEOMETRY_ONLY = PreprocessConfig(normalize="none")


def rotation(degrees: float, axis: tuple[float, float, float]) -> np.ndarray:
    """Rodrigues' rotation matrix."""
    k = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    t = np.deg2rad(degrees)
    return np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * kx @ kx


def oblique_affine(codes: str, spacing=SPACING, degrees: float = 14.0) -> np.ndarray:
    """A voxel -> RAS affine whose axes point (roughly, rotated by ``degrees``) along ``codes``."""
    perm = np.zeros((3, 3))
    for voxel_axis, code in enumerate(codes):
        world_axis, sign = WORLD_AXIS[code]
        perm[world_axis, voxel_axis] = sign
    affine = np.eye(4)
    affine[:3, :3] = rotation(degrees, (1.0, 2.0, 0.5)) @ perm @ np.diag(spacing)
    affine[:3, 3] = (-31.5, 12.25, 7.0)
    return affine


def synthetic_case(codes: str = "LAS", shape=(36, 30, 14), seed: int = 0, channels: int = 2):
    """Channels with a random brain-shaped blob, a brain mask and random labels 0-3 inside the mask."""
    rng = np.random.default_rng(seed)
    affine = oblique_affine(codes)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    brain = (grid**2).sum(axis=0) < 0.6
    images = []
    for c in range(channels):
        array = np.where(brain, rng.uniform(50, 150, shape) + 40 * c, 0).astype(np.float32)
        images.append(Volume(array, affine, source=f"/data/case/ch{c}.nii.gz"))
    labels = np.where(brain & (rng.random(shape) < 0.3), rng.integers(1, 4, shape), 0).astype(np.uint8)
    mask = Volume(brain.astype(np.uint8), affine, "label", source="/data/case/mask.nii.gz")
    return images, mask, Volume(labels, affine, "label", source="/data/case/label.nii.gz")


def original_index(pre_affine: np.ndarray, original_affine: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    """Original voxel indices (float) of preprocessed voxels (N, 3), through world coordinates."""
    homogeneous = np.c_[voxels, np.ones(len(voxels))].T
    return (np.linalg.inv(original_affine) @ pre_affine @ homogeneous)[:3].T


@pytest.mark.parametrize("codes", ["LAS", "LPI", "PSR", "RAS", "SLP", "IRA"])
@pytest.mark.parametrize("mask_mode", ["file", "nonzero"])
def test_labels_round_trip_bitwise_and_affine_matches(codes: str, mask_mode: str) -> None:
    images, mask, label = synthetic_case(codes)
    assert "".join(nib.aff2axcodes(images[0].affine)) == codes
    result = preprocess_volumes(images, PreprocessConfig(normalize="none", brain_mask=mask_mode), mask, label)
    record = result.record
    assert record.exact and record.brain_mask == mask_mode
    assert result.image.shape[:3] == (2, 256, 256) and result.image.dtype == np.float32
    assert result.label.dtype == np.uint8 and result.mask.dtype == np.uint8
    assert nib.aff2axcodes(result.affine) == ("R", "A", "S")

    back = invert(result.label, record, "label")
    assert back.dtype == label.array.dtype and np.array_equal(back, label.array)
    assert np.array_equal(invert(result.mask, record, "label"), mask.array)

    # World coordinates of preprocessed voxels equal those of the original voxel holding the same value.
    voxels = np.argwhere(result.mask > 0)[::7]
    original = original_index(result.affine, images[0].affine, voxels)
    np.testing.assert_allclose(original, np.rint(original), atol=1e-6)
    ijk = tuple(np.rint(original).astype(int).T)
    for c, volume in enumerate(images):
        assert np.array_equal(result.image[c][tuple(voxels.T)], volume.array[ijk])
    assert np.array_equal(result.label[tuple(voxels.T)], label.array[ijk])
    axis_of = [WORLD_AXIS[code][0] for code in codes]
    np.testing.assert_allclose(result.spacing, [SPACING[axis_of.index(w)] for w in range(3)], rtol=1e-9)


def test_z_is_the_axial_axis_and_crop_keeps_margin() -> None:
    images, mask, label = synthetic_case("PSR")  # voxel axes: posterior, superior, right
    margin = (3, 2, 1)
    result = preprocess_volumes(images, PreprocessConfig(crop_margin=margin), mask, label)
    record = result.record
    assert record.reoriented_shape == (14, 36, 30)  # (R, A, S) <- original axes (2, 0, 1)
    assert result.shape[2] == record.crop_box[2][1] - record.crop_box[2][0]
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(result.mask.any(axis=other))
        before, after = record.pad[axis]
        lo, hi = record.crop_box[axis]
        # the brain sits `margin` voxels inside the cropped block, unless the crop met the volume's edge
        assert hits[0] - before == margin[axis] or lo == 0
        assert result.shape[axis] - after - 1 - hits[-1] == margin[axis] or hi == record.working_shape[axis]


def test_record_json_round_trip_is_exact() -> None:
    images, mask, label = synthetic_case("LPI")
    record = preprocess_volumes(images, PreprocessConfig(target_spacing=(1.0, 1.0, 2.0)), mask, label).record
    again = PreprocessRecord.from_json(record.to_json())
    assert again == record
    assert np.array_equal(again.affine_array(), record.affine_array())
    assert again.config == record.config and again.resample == record.resample


def test_invert_probability_stacks_keep_the_leading_axis() -> None:
    images, mask, label = synthetic_case("LPI")
    result = preprocess_volumes(images, GEOMETRY_ONLY, mask, label)
    onehot = (np.arange(4)[:, None, None, None] == result.label[None]).astype(np.float32)
    back = invert(onehot, result.record, "image")
    assert back.shape == (4, *label.shape) and back.dtype == np.float32
    assert np.array_equal(back.argmax(axis=0), label.array)
    assert np.array_equal(apply_geometry(label.array, result.record, "label"), result.label)
    with pytest.raises(ValueError, match="does not match the preprocessed grid"):
        invert(result.label[:-1], result.record)


def test_labels_outside_the_crop_box_are_lost_and_only_those() -> None:
    images, mask, label = synthetic_case("LAS")
    array = label.array.copy()
    array[0, 0, 0] = 2  # far outside the brain + margin
    result = preprocess_volumes(images, GEOMETRY_ONLY, mask, label.with_array(array))
    back = invert(result.label, result.record)
    assert back[0, 0, 0] == 0
    array[0, 0, 0] = 0
    assert np.array_equal(back, array)


def linear_field(affine: np.ndarray, shape) -> np.ndarray:
    """3x + 2y - z + 500 of each voxel's world position (mm): linear interpolation reproduces it exactly."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    world = (affine @ np.c_[ijk, np.ones(len(ijk))].T)[:3]
    return (np.array([3.0, 2.0, -1.0]) @ world + 500.0).reshape(shape).astype(np.float32)


@pytest.mark.parametrize(
    "config",
    [
        PreprocessConfig(brain_mask="none", normalize="none", target_spacing=(1.5, 0.8, 2.0)),
        PreprocessConfig(brain_mask="none", normalize="none", target_size=(24, 20), crop_margin=(0, 0, 0)),
    ],
    ids=["resample", "resize"],
)
def test_interpolating_paths_have_a_correct_affine(config: PreprocessConfig) -> None:
    shape = (36, 30, 14)
    affine = oblique_affine("LPI")
    image = Volume(linear_field(affine, shape), affine)
    result = preprocess_volumes([image], config)
    record = result.record
    assert not record.exact and (record.resample if config.target_spacing else record.resize) is not None
    if config.target_spacing:
        np.testing.assert_allclose(result.spacing, config.target_spacing, rtol=1e-9)
    else:
        assert result.shape[:2] == (24, 20)
    # Away from the borders (where interpolation clamps), the value at each preprocessed voxel is the
    # field at that voxel's world position.
    voxels = np.argwhere(np.ones(result.shape, bool))
    original = original_index(result.affine, affine, voxels)
    inside = np.all((original >= 0) & (original <= np.array(shape) - 1), axis=1)
    expected = linear_field(result.affine, result.shape)
    got = result.image[0]
    flat = tuple(voxels[inside].T)
    np.testing.assert_allclose(got[flat], expected[flat], rtol=1e-5, atol=1e-2)
    # Going back interpolates too, but the field survives inside the brain box.
    back = invert(result.image[0], record, "image")
    core = (slice(2, -2), slice(2, -2), slice(1, -1))
    np.testing.assert_allclose(back[core], image.array[core], rtol=1e-4, atol=0.05)


def test_resize_keeps_labels_close() -> None:
    images, mask, label = synthetic_case("RAS")
    blocky = np.zeros(label.shape, np.uint8)
    blocky[8:20, 6:18, 3:9] = 2
    result = preprocess_volumes(
        images, PreprocessConfig(target_size=(16, 16)), mask, label.with_array(blocky)
    )
    assert result.record.resize is not None and result.shape[:2] == (16, 16)
    back = invert(result.label, result.record)
    assert back.shape == blocky.shape and np.mean(back == blocky) > 0.97


def test_zscore_inside_mask_and_zero_outside() -> None:
    images, mask, label = synthetic_case("LAS")
    result = preprocess_volumes(images, PreprocessConfig(), mask, label)
    inside = result.mask > 0
    for c, volume in enumerate(images):
        values = result.image[c][inside].astype(np.float64)
        assert abs(values.mean()) < 1e-5 and abs(values.std() - 1.0) < 1e-5
        assert not result.image[c][~inside].any()
        brain = volume.array[mask.array > 0].astype(np.float64)
        assert result.record.channel_mean[c] == pytest.approx(brain.mean(), rel=1e-9)
        assert result.record.channel_std[c] == pytest.approx(brain.std(), rel=1e-6)


def test_nonzero_mask_handles_negative_backgrounds_and_cleans_up() -> None:
    shape = (30, 30, 12)
    image = np.full((1, *shape), -1.7, dtype=np.float32)  # a z-scored background
    image[0, 5:25, 5:25, 2:10] = 0.3
    image[0, 10:15, 10:15, 5:7] = -1.7  # a hole inside the brain
    image[0, 1, 1, 1] = 5.0  # a speck outside
    assert border_value(image[0]) == pytest.approx(-1.7)
    mask = derive_brain_mask(image, "nonzero")
    assert mask.dtype == np.uint8 and mask.sum() == 20 * 20 * 8
    assert np.array_equal(derive_brain_mask(image, "otsu"), mask)
    assert derive_brain_mask(image, "none").all()


@pytest.mark.parametrize("seed", range(6))
def test_clean_mask_on_the_bounding_box_equals_the_whole_volume(seed: int) -> None:
    """Hole filling and the largest component, computed on the mask's box, equal scipy on the full grid
    (blobs with holes, touching the border or not, several components)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.random((30, 26, 22)), 2.0) > 0.5 + 0.02 * rng.standard_normal()
    mask[rng.integers(0, 30), :, :] = seed % 2 == 0  # a plane that may reach the border
    filled = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(filled)
    expected = filled if count <= 1 else labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    assert mask.any() and np.array_equal(clean_mask(mask), expected)
    assert not clean_mask(np.zeros((4, 5, 6), dtype=bool)).any()


def test_file_mode_falls_back_to_nonzero_without_a_mask_file() -> None:
    images, _, label = synthetic_case("LAS")
    result = preprocess_volumes(images, PreprocessConfig(brain_mask="file"), None, label)
    assert result.record.brain_mask == "nonzero"


@pytest.mark.parametrize("mode", ["nonzero", "otsu", "file"])
def test_empty_brain_mask_names_the_file(mode: str) -> None:
    images, mask, _ = synthetic_case("LAS", channels=1)
    empty = [images[0].with_array(np.zeros(images[0].shape, np.float32))]
    if mode == "file":
        with pytest.raises(LesionsegError, match="/data/case/mask.nii.gz: brain mask is empty"):
            preprocess_volumes(images, PreprocessConfig(), mask.with_array(np.zeros(mask.shape, np.uint8)))
    else:
        with pytest.raises(LesionsegError, match="/data/case/ch0.nii.gz: brain mask is empty"):
            preprocess_volumes(empty, PreprocessConfig(brain_mask=mode))


def test_grid_mismatch_and_large_labels_are_user_errors() -> None:
    images, mask, label = synthetic_case("LAS")
    moved = Volume(label.array, label.affine.copy(), "label", source="/data/case/moved.nii.gz")
    moved.affine[0, 3] += 5.0
    with pytest.raises(LesionsegError, match="moved.nii.gz"):
        preprocess_volumes(images, PreprocessConfig(), mask, moved)
    big = Volume(label.array.astype(np.int32) * 100, label.affine, "label", source="/data/case/big.nii.gz")
    with pytest.raises(LesionsegError, match="big.nii.gz: label values up to 300"):
        preprocess_volumes(images, PreprocessConfig(), mask, big)


def test_n4_reduces_a_multiplicative_bias() -> None:
    shape = (48, 48, 32)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    brain = (grid**2).sum(axis=0) < 0.7
    rng = np.random.default_rng(1)
    truth = np.where(brain, 100.0 + rng.normal(0, 1.0, shape), 0.0)
    bias = np.exp(0.35 * grid[0] + 0.2 * grid[1] - 0.15 * grid[2] ** 2)
    image = Volume((truth * bias).astype(np.float32), np.diag([1.0, 1.0, 1.5, 1.0]))
    config = PreprocessConfig(
        n4=True, n4_shrink=2, n4_iterations=(20, 20, 20), normalize="none", brain_mask="nonzero"
    )
    result = preprocess_volumes([image], config)
    assert result.record.n4

    def cv(values: np.ndarray) -> float:
        return float(values.std() / values.mean())

    before = cv(image.array[brain])
    after = cv(result.image[0][result.mask > 0])
    assert after < 0.5 * before, (before, after)


def test_preprocessing_does_not_modify_its_inputs() -> None:
    images, mask, label = synthetic_case("LPI")
    copies = [v.array.copy() for v in (*images, mask, label)]
    preprocess_volumes(images, PreprocessConfig(n4=True, n4_iterations=(5,)), mask, label)
    for volume, copy in zip((*images, mask, label), copies, strict=True):
        assert np.array_equal(volume.array, copy)
