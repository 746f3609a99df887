"""io: round trips for every format, writing on a reference header, slice stacks, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import VOLUME_SUFFIXES, oblique_affine
from PIL import Image

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume, atomic_output, read_slice_stack, read_volume, write_volume


@pytest.mark.parametrize("suffix", VOLUME_SUFFIXES)
@pytest.mark.parametrize("kind", ["image", "label"])
def test_round_trip_keeps_data_and_oblique_anisotropic_affine(tmp_path: Path, suffix: str, kind: str) -> None:
    rng = np.random.default_rng(1)
    if kind == "label":
        array = rng.integers(0, 5, size=(7, 6, 5)).astype(np.uint8)
    else:
        array = rng.normal(100, 30, size=(7, 6, 5)).astype(np.float32)
    affine = oblique_affine((0.8, 1.3, 3.0), degrees=11.0)
    path = write_volume(Volume(array, affine, kind), tmp_path / f"v{suffix}")
    back = read_volume(path, kind)
    assert back.kind == kind
    assert back.array.dtype == (np.uint8 if kind == "label" else np.float32)
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.affine, affine, atol=1e-5)  # NIfTI stores float32
    np.testing.assert_allclose(back.spacing, (0.8, 1.3, 3.0), atol=1e-5)


def test_tiny_volume_factory_writes_readable_volumes(tiny_volume_factory) -> None:
    for i in range(4):
        path = tiny_volume_factory(f"v{i}", shape=(3, 4, 5))
        assert read_volume(path).shape == (3, 4, 5)
        np.testing.assert_allclose(read_volume(path).affine, oblique_affine(), atol=1e-5)


@pytest.mark.parametrize(("top", "dtype"), [(4, np.uint8), (300, np.uint16), (70000, np.int32)])
def test_label_dtype_fits_the_values(tmp_path: Path, top: int, dtype: type) -> None:
    array = np.zeros((3, 3, 3), dtype=np.int64)
    array[1, 1, 1] = top
    path = write_volume(Volume(array, np.eye(4), "label"), tmp_path / "l.nii.gz")
    assert nib.load(path).get_data_dtype() == dtype
    assert int(read_volume(path, "label").array.max()) == top


def _reference(tmp_path: Path, qcode: int = 1, scode: int = 2) -> Volume:
    affine = oblique_affine()
    image = nib.Nifti1Image(np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32), affine)
    image.set_qform(affine, code=qcode)
    image.set_sform(affine, code=scode)
    image.header["descrip"] = b"reference scan"
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, tmp_path / "ref.nii.gz")
    return read_volume(tmp_path / "ref.nii.gz")


def test_write_with_reference_keeps_affine_and_header(tmp_path: Path) -> None:
    ref = _reference(tmp_path, qcode=1, scode=2)
    mask = np.zeros(ref.shape, dtype=np.uint8)
    mask[1:3, 2:4, 3:5] = 1
    shifted = np.eye(4)  # the volume's own affine is ignored in favour of the reference's
    path = write_volume(Volume(mask, shifted, "label"), tmp_path / "mask.nii.gz", reference=ref)
    out = nib.load(path)
    assert int(out.header["qform_code"]) == 1 and int(out.header["sform_code"]) == 2
    assert out.header["descrip"].tobytes().rstrip(b"\0") == b"reference scan"
    assert out.header.get_xyzt_units() == ("mm", "sec")
    assert out.get_data_dtype() == np.uint8
    np.testing.assert_allclose(out.affine, ref.affine, atol=1e-6)
    np.testing.assert_allclose(out.header.get_qform(), ref.affine, atol=1e-4)  # float32 quaternion
    np.testing.assert_array_equal(np.asarray(out.dataobj), mask)


def test_write_with_reference_of_another_grid_fails(tmp_path: Path) -> None:
    ref = _reference(tmp_path)
    with pytest.raises(LesionsegError, match="reference grid"):
        write_volume(Volume(np.zeros((2, 2, 2)), np.eye(4)), tmp_path / "x.nii.gz", reference=ref)
    assert not (tmp_path / "x.nii.gz").exists()


def test_trailing_singleton_axis_is_dropped(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6, 1), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    assert read_volume(tmp_path / "v.nii.gz").shape == (4, 5, 6)


def test_written_files_get_normal_permissions(tmp_path: Path) -> None:
    path = write_volume(Volume(np.zeros((2, 2, 2)), np.eye(4)), tmp_path / "v.nii.gz")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_failed_write_leaves_no_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_write(image, filename):  # writes some bytes, then dies like a full disk would
        Path(filename).write_bytes(b"\x1f\x8b partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(nib, "save", half_write)
    with pytest.raises(OSError):
        write_volume(Volume(np.zeros((2, 2, 2)), np.eye(4)), tmp_path / "out" / "v.nii.gz")
    assert list((tmp_path / "out").iterdir()) == []


def test_unsupported_output_format_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(LesionsegError, match="slice stacks"):
        write_volume(Volume(np.zeros((2, 2, 2)), np.eye(4)), tmp_path / "v.png")
    with pytest.raises(LesionsegError, match="unknown image format"):
        write_volume(Volume(np.zeros((2, 2, 2)), np.eye(4)), tmp_path / "v.jpg")
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_removes_temporary_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "table.csv") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(tmp_path / "table.csv") as tmp:
        tmp.write_text("whole")
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


# --- slice stacks --------------------------------------------------------------------------------------


def _write_slices(folder: Path, numbers: list[int], mask: bool = False) -> None:
    folder.mkdir(exist_ok=True)
    for n in numbers:
        rgb = np.zeros((8, 10, 3), dtype=np.uint8)  # (rows, cols, channel)
        rgb[..., 0], rgb[..., 1], rgb[..., 2] = n, 100 + n, 200
        rgb[2, 5, 1] = 255  # a bright FLAIR pixel at row 2, col 5 ...
        Image.fromarray(rgb).save(folder / f"TCGA_X_{n}.tif")
        if mask:
            m = np.zeros((8, 10), dtype=np.uint8)
            m[2, 5] = 255  # ... and the mask marks the same pixel
            Image.fromarray(m).save(folder / f"TCGA_X_{n}_mask.tif")


def test_slice_stack_is_in_numeric_order(tmp_path: Path) -> None:
    numbers = [1, 2, 3, 9, 10, 11, 20]
    _write_slices(tmp_path, numbers)
    paths = sorted(tmp_path.glob("*.tif"))  # lexicographic: 1, 10, 11, 2, 20, 3, 9
    volume = read_slice_stack(paths, component=0, spacing=(0.5, 0.5, 3.0))
    assert volume.shape == (10, 8, len(numbers))  # x = column, y = row, z = slice
    assert [int(volume.array[0, 0, k]) for k in range(len(numbers))] == numbers
    np.testing.assert_allclose(volume.spacing, (0.5, 0.5, 3.0))


def test_slice_stack_mask_lines_up_with_image(tmp_path: Path) -> None:
    _write_slices(tmp_path, [1, 2, 10], mask=True)
    images = [p for p in tmp_path.glob("*.tif") if not p.name.endswith("_mask.tif")]
    flair = read_slice_stack(images, component=1)
    mask = read_slice_stack(list(tmp_path.glob("*_mask.tif")), kind="label")
    assert flair.same_grid(mask)
    assert mask.array.dtype == np.uint8
    np.testing.assert_array_equal(np.argwhere(mask.array == 255), [[5, 2, 0], [5, 2, 1], [5, 2, 2]])
    assert np.all(flair.array[mask.array == 255] == 255)
    assert int(flair.array[0, 0, 2]) == 110  # component 1 of slice 10


def test_slice_stack_rejects_duplicate_numbers_and_missing_component(tmp_path: Path) -> None:
    _write_slices(tmp_path, [1, 2], mask=True)
    with pytest.raises(LesionsegError, match="two slices numbered"):
        read_slice_stack(list(tmp_path.glob("*.tif")), component=0)
    with pytest.raises(LesionsegError, match="colour channels"):
        read_slice_stack([tmp_path / "TCGA_X_1.tif"])
