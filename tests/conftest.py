"""Fixtures shared by the whole test suite.

- ``shared_data``: Path to the real sample sets (``<repo>/../shared/data`` or ``$LESIONSEG_DATA``); the
  test is skipped when the folder is absent.
- ``phantom_dir``: a 3-case phantom dataset (48 x 56 x 32 voxels at 3 x 3 x 4 mm, seed 0, same field of
  view as the default phantom), skull-stripped (as the bundled model's training scans; segment's skull
  detection leaves it alone, so deepbet runs only in the tests of skull handling), written once per
  session; ``phantom_dir / "manifest.json"`` describes it
  with paths relative to ``phantom_dir``. Read only: do not modify it.
- ``tiny_volume_factory``: writes small random volumes to ``tmp_path`` with a randomly chosen extension
  (.nii.gz, .nii, .nrrd, .mha; chosen per call, reproducibly per test), as TorchIO's tests do.
"""

from __future__ import annotations

import os
import random
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from lesionseg.io import Volume, write_volume

# The tests run tiny tensors, where one thread is as fast as two, and a second OpenMP thread that spins
# while other processes hold the cores can make a step 100 times slower (measured on the 2-core CI kind).
torch.set_num_threads(1)

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
PHANTOM_TEST_SHAPE = (48, 56, 32)
PHANTOM_TEST_SPACING = (3.0, 3.0, 4.0)


def shared_data_dir() -> Path:
    """Where the real sample sets live: $LESIONSEG_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("LESIONSEG_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def oblique_affine(spacing: tuple[float, float, float] = (1.2, 0.9, 2.5), degrees: float = 7.0) -> np.ndarray:
    """An anisotropic, oblique (rotated about x and z) affine with a non-zero origin."""
    a = np.deg2rad(degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(a / 2), -np.sin(a / 2), 0], [np.sin(a / 2), np.cos(a / 2), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx @ np.diag([-spacing[0], spacing[1], spacing[2]])
    affine[:3, 3] = (12.5, -30.25, 7.0)
    return affine


@pytest.fixture(scope="session")
def shared_data() -> Path:
    folder = shared_data_dir()
    if not folder.is_dir():
        pytest.skip(f"shared data not found at {folder} (set LESIONSEG_DATA)")
    return folder


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lesionseg.phantom import write_phantom_dataset

    out = tmp_path_factory.mktemp("phantom") / "data"
    write_phantom_dataset(
        out, 3, seed=0, shape=PHANTOM_TEST_SHAPE, spacing=PHANTOM_TEST_SPACING, skull_stripped=True
    )
    return out


@pytest.fixture
def tiny_volume_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Path]:
    """``make(name="volume", shape=(6, 7, 5), kind="image", array=None, affine=None, suffix=None) -> Path``.

    Without ``array``: float32 normal noise for images, random {0, 1} uint8 for labels. Without ``affine``:
    :func:`oblique_affine` (the same for every call, so volumes of one test share a grid). Without
    ``suffix``: one of VOLUME_SUFFIXES at random (seeded by the test id).
    """
    choose = random.Random(request.node.nodeid)
    data_rng = np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))

    def make(
        name: str = "volume",
        shape: tuple[int, ...] = (6, 7, 5),
        kind: str = "image",
        array: np.ndarray | None = None,
        affine: np.ndarray | None = None,
        suffix: str | None = None,
    ) -> Path:
        if array is None:
            if kind == "label":
                array = data_rng.integers(0, 2, size=shape).astype(np.uint8)
            else:
                array = data_rng.normal(size=shape).astype(np.float32)
        path = tmp_path / f"{name}{suffix or choose.choice(VOLUME_SUFFIXES)}"
        write_volume(Volume(array, oblique_affine() if affine is None else affine, kind), path)
        return path

    return make
