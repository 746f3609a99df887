"""Fuzzing (issue 15): malformed NIfTI headers and manifest JSON give a LesionsegError (one line naming the
file) or a valid result, never another exception. Readers and the manifest loader run in-process."""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lesionseg.data.manifest import load_manifest
from lesionseg.errors import LesionsegError
from lesionseg.io import read_volume

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_nifti() -> bytes:
    image = nib.Nifti1Image(np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3), np.diag([1, 1, 2, 1.0]))
    return image.to_bytes()


VALID_NIFTI = _valid_nifti()

# (offset, struct format) of the NIfTI-1 header fields a reader trusts
HEADER_FIELDS = {
    "sizeof_hdr": (0, "<i"),
    "dim": (40, "<8h"),
    "datatype": (70, "<h"),
    "bitpix": (72, "<h"),
    "pixdim": (76, "<8f"),
    "vox_offset": (108, "<f"),
    "scl_slope": (112, "<f"),
    "scl_inter": (116, "<f"),
    "qform_code": (252, "<h"),
    "sform_code": (254, "<h"),
    "quatern": (256, "<6f"),
    "srow": (280, "<12f"),
}
floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
int16 = st.integers(-(2**15), 2**15 - 1)


def field_values(name: str) -> st.SearchStrategy:
    fmt = HEADER_FIELDS[name][1]
    count = int(fmt[1:-1] or 1)
    element = (
        floats if fmt.endswith("f") else (st.integers(-(2**31), 2**31 - 1) if fmt.endswith("i") else int16)
    )
    if name == "dim":  # mostly plausible dimensions, sometimes huge or negative
        element = st.one_of(st.integers(-2, 8), st.sampled_from([0, 1, 2, 3, 4, 7, 1024, 32767]), int16)
    if name == "datatype":
        element = st.one_of(
            st.sampled_from([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 2304]), int16
        )
    return st.lists(element, min_size=count, max_size=count)


header_edits = st.dictionaries(st.sampled_from(sorted(HEADER_FIELDS)), st.none(), min_size=1).flatmap(
    lambda chosen: st.fixed_dictionaries({name: field_values(name) for name in chosen})
)


def _read(data: bytes, suffix: str, kind: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        previous = os.environ.get("LESIONSEG_MAX_VOXELS")
        os.environ["LESIONSEG_MAX_VOXELS"] = str(2_000_000)  # keep a lying header from allocating GiBs
        try:
            volume = read_volume(path, kind)
        except LesionsegError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
            return
        finally:
            if previous is None:
                os.environ.pop("LESIONSEG_MAX_VOXELS", None)
            else:
                os.environ["LESIONSEG_MAX_VOXELS"] = previous
        assert volume.array.ndim == 3 and volume.affine.shape == (4, 4)


@FUZZ
@given(edits=header_edits, kind=st.sampled_from(["image", "label"]), gz=st.booleans())
def test_fuzzed_nifti_header_fields(edits: dict[str, list], kind: str, gz: bool) -> None:
    data = bytearray(VALID_NIFTI)
    for name, values in edits.items():
        offset, fmt = HEADER_FIELDS[name]
        struct.pack_into(fmt, data, offset, *values)
    payload = bytes(data)
    if gz:
        import gzip

        payload = gzip.compress(payload)
    _read(payload, ".nii.gz" if gz else ".nii", kind)


@pytest.mark.parametrize("kind", ["image", "label"])
def test_a_header_with_a_zero_dimension_is_a_one_line_error(kind: str, tmp_path: Path) -> None:
    """Found by the fuzzer: dim [3, 0, 0, 0] read as an empty array, and a label's range check crashed."""
    data = bytearray(VALID_NIFTI)
    offset, fmt = HEADER_FIELDS["dim"]
    struct.pack_into(fmt, data, offset, 3, 0, 0, 0, 0, 0, 0, 0)
    path = tmp_path / "empty.nii"
    path.write_bytes(bytes(data))
    with pytest.raises(LesionsegError, match="no voxels") as error:
        read_volume(path, kind)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, len(VALID_NIFTI) - 1), st.integers(0, 255)), max_size=12),
    cut=st.one_of(st.none(), st.integers(0, len(VALID_NIFTI))),
)
def test_fuzzed_nifti_bytes_and_truncation(flips: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(VALID_NIFTI)
    for index, value in flips:
        data[index] = value
    _read(bytes(data[:cut]) if cut is not None else bytes(data), ".nii", "image")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

VALID_MANIFEST = {
    "name": "fuzz",
    "channel_names": ["FLAIR", "T1"],
    "labels": {"background": 0, "lesion": 1},
    "regions": {},
    "cases": [
        {
            "id": "a",
            "subject": "s1",
            "images": {"FLAIR": "a/FLAIR.nii.gz", "T1": "a/T1.nii.gz"},
            "label": "a/label.nii.gz",
            "mask": None,
        }
    ],
}
MANIFEST_PATHS = [
    ("name",),
    ("channel_names",),
    ("labels",),
    ("labels", "lesion"),
    ("regions",),
    ("cases",),
    ("cases", 0),
    ("cases", 0, "id"),
    ("cases", 0, "subject"),
    ("cases", 0, "images"),
    ("cases", 0, "images", "FLAIR"),
    ("cases", 0, "label"),
    ("cases", 0, "mask"),
]


def _load(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.json"
        path.write_text(text, encoding="utf-8")
        try:
            manifest = load_manifest(path)
        except LesionsegError as exc:
            assert "\n" not in str(exc)
            return
        assert isinstance(manifest.cases, list) and isinstance(manifest.channel_names, list)


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(MANIFEST_PATHS), st.booleans(), json_values), max_size=4))
def test_fuzzed_manifest_fields(edits: list[tuple[tuple, bool, object]]) -> None:
    raw = json.loads(json.dumps(VALID_MANIFEST))
    for path, delete, value in edits:
        parent = raw
        try:
            for key in path[:-1]:
                parent = parent[key]
            if delete:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced the parent
    _load(json.dumps(raw))


@FUZZ
@given(value=json_values)
def test_fuzzed_manifest_documents(value: object) -> None:
    _load(json.dumps(value))


@FUZZ
@given(text=st.text(max_size=200))
def test_fuzzed_manifest_text(text: str) -> None:
    _load(text)


# ------------------------------------------------------------------------------------------ geometry
def _tiny_predictor():  # noqa: ANN202
    """An untrained width-4 U-Net on FLAIR + T1 (64 x 64 slices): what segment does with the geometry, not
    what a trained model finds, is under test."""
    import torch

    from lesionseg.config.preprocess import PreprocessConfig
    from lesionseg.infer.predictor import Member, Predictor
    from lesionseg.nets import create_network

    torch.manual_seed(0)
    net = create_network("unet", in_channels=2, num_classes=1, width=4, context_slices=1).eval()
    member = Member(net, 1, 0.5, [0, 1], ["FLAIR", "T1"], PreprocessConfig(target_size=(64, 64)), "tiny")
    return Predictor([member], bf16=False, device="cpu")


def _rotation(
    angles: tuple[float, float, float], flips: tuple[bool, bool, bool], order: list[int]
) -> np.ndarray:
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    permute = np.eye(3)[order] @ np.diag([-1.0 if f else 1.0 for f in flips])
    return rz @ ry @ rx @ permute


GEOMETRY = settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.slow
@GEOMETRY
@given(
    shape=st.tuples(*[st.integers(1, 72)] * 3),
    spacing=st.tuples(*[st.floats(-2.5, 2.0).map(lambda e: float(10**e))] * 3),
    angles=st.tuples(*[st.floats(-np.pi, np.pi)] * 3),
    flips=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    order=st.permutations([0, 1, 2]),
    origin=st.tuples(*[st.floats(-500, 500)] * 3),
)
def test_fuzzed_geometry_through_segment_gives_a_mask_on_the_input_grid_or_one_line(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    angles: tuple[float, float, float],
    flips: tuple[bool, bool, bool],
    order: list[int],
    origin: tuple[float, float, float],
) -> None:
    """Random spacings (0.003 to 100 mm), orientations and shapes through ``lesionseg.segment``: either a
    0/1 mask on the input's grid whose lesions lie inside the head (its non-zero voxels, grown by two
    voxels for in-plane resizing), given only for spacings and sizes inside the stated range
    (``preprocess.limits``), or a LesionsegError of one line."""
    from scipy import ndimage

    import lesionseg
    from lesionseg.io import Volume
    from lesionseg.preprocess.limits import MIN_PLANE_VOXELS, SPACING_RANGE_MM

    global _PREDICTOR
    if _PREDICTOR is None:
        _PREDICTOR = _tiny_predictor()
    affine = np.eye(4)
    affine[:3, :3] = _rotation(angles, flips, order) @ np.diag(spacing)
    affine[:3, 3] = origin
    rng = np.random.default_rng(sum(shape))
    grid = np.indices(shape, dtype=np.float32)
    centre = (np.asarray(shape, np.float32) - 1) / 2
    head = (((grid - centre[:, None, None, None]) / np.maximum(centre, 1)[:, None, None, None]) ** 2).sum(
        0
    ) < 0.8
    images = []
    for name in ("flair", "t1"):
        array = np.where(head, rng.normal(1.0, 0.3, shape), 0.0).astype(np.float32)
        images.append(Volume(array, affine, "image", source=Path(f"{name}.nii.gz")))
    try:
        labels = lesionseg.segment(images[0], images[1], model=_PREDICTOR)
    except LesionsegError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("flair.nii.gz: "), str(exc)
        return
    low, high = SPACING_RANGE_MM  # a mask only for the geometry the model card states
    assert low * (1 - 1e-6) <= min(spacing) and max(spacing) <= high * (1 + 1e-6), spacing
    assert sorted(shape)[1] >= MIN_PLANE_VOXELS, shape
    assert labels.kind == "label" and labels.shape == shape and np.array_equal(labels.affine, affine)
    assert set(np.unique(labels.array).tolist()) <= {0, 1}
    lesion = labels.array > 0
    assert not np.any(lesion & ~ndimage.binary_dilation(head, iterations=2))


_PREDICTOR = None
