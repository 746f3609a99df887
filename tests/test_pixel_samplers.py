"""Pixel samplers for PixelNet: class balance (Islam and Ren 2018, section 2.1), fill rule, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from lesionseg.data.pixel_samplers import class_balanced_pixels, uniform_pixels


def labels_at(label: np.ndarray, coords: np.ndarray) -> np.ndarray:
    return label[coords[:, 0], coords[:, 1]]


def three_class_map() -> np.ndarray:
    label = np.zeros((33, 47), dtype=np.int64)
    label[5:25, 5:25] = 1  # 400 pixels
    label[28:33, 30:47] = 4  # 85 pixels; labels need not be contiguous
    return label


def assert_valid(coords: np.ndarray, label: np.ndarray, n: int) -> None:
    assert coords.shape == (n, 2) and coords.dtype == np.int64
    assert (coords >= 0).all()
    assert (coords[:, 0] < label.shape[0]).all() and (coords[:, 1] < label.shape[1]).all()


@pytest.mark.parametrize(("n", "expected"), [(60, [20, 20, 20]), (62, [21, 21, 20]), (2, [1, 1, 0])])
def test_class_balanced_gives_n_over_k_per_class(n: int, expected: list[int]) -> None:
    label = three_class_map()
    coords = class_balanced_pixels(label, n, np.random.default_rng(0))
    assert_valid(coords, label, n)
    values = labels_at(label, coords)
    # the remainder n % K goes to the first classes in ascending label order: deterministic
    assert [int((values == v).sum()) for v in (0, 1, 4)] == expected
    assert len({tuple(c) for c in coords}) == n


def test_class_with_too_few_pixels_gives_all_and_the_rest_is_filled_from_the_image() -> None:
    label = np.zeros((20, 30), dtype=np.int64)
    rare = [(3, 4), (3, 5), (10, 20)]
    for r, c in rare:
        label[r, c] = 1
    coords = class_balanced_pixels(label, 100, np.random.default_rng(1))
    assert_valid(coords, label, 100)
    chosen = {tuple(c) for c in coords}
    assert len(chosen) == 100  # distinct while the image has pixels to spare
    assert set(rare) <= chosen  # the rare class gives everything it has...
    assert (labels_at(label, coords[:53]) == np.array([0] * 50 + [1] * 3)).all()
    # ...and its 47 missing pixels come at random from the rest of the image (here all background)
    assert (labels_at(label, coords[53:]) == 0).all()


def test_fill_draws_from_the_whole_image() -> None:
    label = np.zeros((10, 10), dtype=np.int64)
    label[0, 0] = 1
    label[5:, :] = 2  # 50 pixels
    rng = np.random.default_rng(2)
    fills = np.concatenate([labels_at(label, class_balanced_pixels(label, 30, rng))[21:] for _ in range(50)])
    # 10 + 1 + 10 by quota, 9 fills per draw, over both large classes roughly in proportion (49 : 50)
    assert set(np.unique(fills)) == {0, 2}
    assert 0.35 < (fills == 2).mean() < 0.65


def test_single_class_and_edge_sizes() -> None:
    label = np.full((4, 5), 3, dtype=np.uint8)
    rng = np.random.default_rng(3)
    assert_valid(class_balanced_pixels(label, 7, rng), label, 7)
    assert class_balanced_pixels(label, 0, rng).shape == (0, 2)
    many = class_balanced_pixels(label, 45, rng)  # more than the 20 pixels: every pixel, then repeats
    assert_valid(many, label, 45)
    assert len({tuple(c) for c in many}) == 20


def test_same_seed_same_pixels() -> None:
    label = three_class_map()
    a = class_balanced_pixels(label, 50, np.random.default_rng(7))
    b = class_balanced_pixels(label, 50, np.random.default_rng(7))
    assert np.array_equal(a, b)


def test_uniform_pixels_in_bounds_and_distinct() -> None:
    label = three_class_map()
    coords = uniform_pixels(label, 500, np.random.default_rng(0))
    assert_valid(coords, label, 500)
    assert len({tuple(c) for c in coords}) == 500
    assert np.array_equal(coords, uniform_pixels(label, 500, np.random.default_rng(0)))
    assert_valid(uniform_pixels(label, 2000, np.random.default_rng(0)), label, 2000)


def test_bad_arguments_raise() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="2D"):
        class_balanced_pixels(np.zeros((2, 3, 4)), 5, rng)
    with pytest.raises(ValueError, match="non-negative"):
        uniform_pixels(np.zeros((3, 4)), -1, rng)
