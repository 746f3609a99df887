"""One road per case: ``lesionseg segment`` and ``lesionseg.segment`` give the same mask and the same sidecar
for a T1 on another grid, a FLAIR alone and a scan with skull; skull detection; labels on another grid."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import lesionseg
from lesionseg.cli.main import main
from lesionseg.io import Volume
from lesionseg.preprocess.geometry import resample_to_grid
from lesionseg.preprocess.skullstrip import has_skull

VOLATILE = ("date", "seconds")  # what may differ between two runs of one case


def first_case(folder: Path) -> Path:
    return sorted(p for p in folder.iterdir() if p.is_dir())[0]


def stable(record: dict | list, out_dir: Path) -> dict | list:
    """A sidecar without its timings and with its output folder replaced by OUT."""
    text = json.dumps(record).replace(str(out_dir), "OUT")
    data = json.loads(text)

    def strip(x):  # noqa: ANN001, ANN202
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in VOLATILE}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(data)


def cli_and_api(inputs: list[Path], tmp_path: Path, **api_options) -> tuple[dict, dict]:  # noqa: ANN003
    """Run ``lesionseg segment`` and ``lesionseg.segment(out=...)`` on ``inputs``; assert equal masks and
    return both sidecars."""
    cli_out, api_out = tmp_path / "cli" / "mask.nii.gz", tmp_path / "api" / "mask.nii.gz"
    cli_out.parent.mkdir()
    api_out.parent.mkdir()
    flags = [
        f"--{k.replace('_', '-')}" if v else f"--no-{k.replace('_', '-')}" for k, v in api_options.items()
    ]
    assert main(["segment", *map(str, inputs), "-o", str(cli_out), "--quiet", *flags]) == 0
    road = {k: ("on" if v else "off") if k == "skull_strip" else v for k, v in api_options.items()}
    labels = lesionseg.segment(*inputs, out=api_out, **road)
    cli_mask = np.asarray(nib.load(cli_out).dataobj)
    assert np.array_equal(cli_mask, np.asarray(nib.load(api_out).dataobj))
    assert np.array_equal(labels.array, cli_mask)
    assert np.allclose(nib.load(cli_out).affine, nib.load(inputs[0]).affine)
    cli_side = json.loads((tmp_path / "cli" / "mask.json").read_text())
    api_side = json.loads((tmp_path / "api" / "mask.json").read_text())
    assert stable(cli_side, tmp_path / "cli") == stable(api_side, tmp_path / "api")
    return cli_side, api_side


def test_a_t1_on_another_grid_is_registered_alike(phantom_dir: Path, tmp_path: Path) -> None:
    case = first_case(phantom_dir)
    t1 = lesionseg.read_volume(case / "t1.nii.gz")
    shifted = t1.affine.copy()
    shifted[:3, 3] += (3.0, -2.0, 4.0)  # the T1's grid moved by a few mm: it must be registered
    moved = resample_to_grid(t1.array, t1.affine, shifted, t1.shape, "image")
    t1_path = tmp_path / "t1_moved.nii.gz"
    lesionseg.write_volume(Volume(moved, shifted), t1_path)
    sidecar, _ = cli_and_api([case / "flair.nii.gz", t1_path], tmp_path)
    assert any(step["step"] == "register" for step in sidecar["steps"])


def test_a_scan_with_skull_is_found_and_stripped_alike(tmp_path: Path) -> None:
    from lesionseg.phantom import write_phantom_dataset

    manifest = write_phantom_dataset(tmp_path / "raw", 1, seed=3, shape=(48, 56, 32), spacing=(3.0, 3.0, 4.0))
    case = first_case(manifest.parent)
    sidecar, _ = cli_and_api([case / "flair.nii.gz", case / "t1.nii.gz"], tmp_path)
    decision = next(s for s in sidecar["steps"] if s["step"] == "skull_detection")
    assert decision["mode"] == "auto" and decision["skull_found"] is True
    assert any(s["step"] == "skull_strip" and s["tool"] == "deepbet" for s in sidecar["steps"])


def test_a_skull_stripped_scan_is_left_alone(phantom_dir: Path, tmp_path: Path) -> None:
    case = first_case(phantom_dir)
    sidecar, _ = cli_and_api([case / "flair.nii.gz", case / "t1.nii.gz"], tmp_path)
    decision = next(s for s in sidecar["steps"] if s["step"] == "skull_detection")
    assert decision["skull_found"] is False
    # the sidecar carries the lesion table's rows: one per lesion of the mask, ids 1..N
    mask = np.asarray(nib.load(tmp_path / "cli" / "mask.nii.gz").dataobj) > 0
    from scipy import ndimage

    count = ndimage.label(mask, np.ones((3, 3, 3)))[1]
    assert [int(row["id"]) for row in sidecar["lesions"]] == list(range(1, count + 1))
    assert not any(s["step"] == "skull_strip" for s in sidecar["steps"])


def test_skull_detection_on_phantoms_with_and_without_skull(tmp_path: Path) -> None:
    from lesionseg.phantom import write_phantom_dataset

    for stripped in (False, True):
        manifest = write_phantom_dataset(tmp_path / str(stripped), 1, seed=0, skull_stripped=stripped)
        flair = lesionseg.read_volume(first_case(manifest.parent) / "flair.nii.gz")
        assert has_skull(flair) is (not stripped)


def test_no_skull_strip_overrides_the_detection(tmp_path: Path) -> None:
    from lesionseg.phantom import write_phantom_dataset

    manifest = write_phantom_dataset(tmp_path / "raw", 1, seed=3, shape=(48, 56, 32), spacing=(3.0, 3.0, 4.0))
    case = first_case(manifest.parent)
    sidecar, _ = cli_and_api([case / "flair.nii.gz", case / "t1.nii.gz"], tmp_path, skull_strip=False)
    assert not any(s["step"] == "skull_strip" for s in sidecar["steps"])


@pytest.mark.skipif(
    not (Path(lesionseg.__file__).parent / "models" / "ms_flair").is_dir(), reason="no bundled FLAIR model"
)
def test_a_flair_alone_with_thick_slices_segments_alike_on_its_own_grid(tmp_path: Path) -> None:
    from lesionseg.phantom import write_phantom_dataset

    manifest = write_phantom_dataset(
        tmp_path / "thick", 1, seed=5, shape=(96, 112, 14), spacing=(1.5, 1.5, 4.4), skull_stripped=True
    )
    flair = first_case(manifest.parent) / "flair.nii.gz"
    sidecar, _ = cli_and_api([flair], tmp_path)
    assert list(sidecar["inputs"]) == ["FLAIR"]
    mask = nib.load(tmp_path / "cli" / "mask.nii.gz")
    assert mask.shape == nib.load(flair).shape and np.allclose(
        mask.header.get_zooms(), (1.5, 1.5, 4.4), atol=1e-4
    )


# -- a label on another grid, resampled through world coordinates -------------------------------------------
def rotation(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


def test_an_integer_shift_between_grids_is_an_exact_roll() -> None:
    label = np.zeros((20, 20, 20), np.uint8)
    label[5:9, 6:12, 7:10] = 1
    source = np.diag([1.0, 1.0, 1.0, 1.0])
    target = source.copy()
    target[:3, 3] = (2.0, -1.0, 3.0)  # target voxel v sits at source voxel v + (2, -1, 3)
    out = resample_to_grid(label, source, target, label.shape, "label")
    assert np.array_equal(out, np.roll(label, (-2, 1, -3), axis=(0, 1, 2)))


def test_a_sphere_follows_a_known_rotation_and_thicker_slices() -> None:
    """A 12 mm sphere drawn at world (4, -6, 10) on a fine rotated grid, resampled onto a 1 x 1 x 4.4 mm grid
    rotated the other way: it lands where the sphere is in the world (Dice against the analytic sphere)."""
    centre, radius = np.array([4.0, -6.0, 10.0]), 12.0
    fine = np.eye(4)
    fine[:3, :3] = rotation(10) @ np.diag([0.8, 0.8, 1.2])
    fine[:3, 3] = (-40.0, -40.0, -30.0)
    coarse = np.eye(4)
    coarse[:3, :3] = rotation(-7) @ np.diag([1.0, 1.0, 4.4])
    coarse[:3, 3] = (-35.0, -38.0, -20.0)

    def sphere_on(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        idx = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), -1).reshape(-1, 3)
        world = idx @ affine[:3, :3].T + affine[:3, 3]
        return (np.linalg.norm(world - centre, axis=1) <= radius).reshape(shape).astype(np.uint8)

    label = sphere_on(fine, (100, 100, 60))
    out = resample_to_grid(label, fine, coarse, (80, 80, 14), "label")
    truth = sphere_on(coarse, (80, 80, 14))
    dice = 2 * (out & truth).sum() / (out.sum() + truth.sum())
    assert dice > 0.93
    assert abs(int(out.sum()) - int(truth.sum())) / truth.sum() < 0.1


def test_a_manifest_label_on_another_grid_is_resampled_through_world(tmp_path: Path) -> None:
    from lesionseg.data.manifest import load_case, load_manifest

    image = np.random.default_rng(0).random((16, 16, 6)).astype(np.float32)
    image_affine = np.diag([1.0, 1.0, 4.0, 1.0])
    label = np.zeros((16, 16, 24), np.uint8)
    label[4:10, 5:11, 8:16] = 1  # slices 8-15 at 1 mm = world z 8-15 mm = image slices 2 and 3
    lesionseg.write_volume(Volume(image, image_affine), tmp_path / "img.nii.gz")
    lesionseg.write_volume(Volume(label, np.eye(4), "label"), tmp_path / "lab.nii.gz")
    manifest = {
        "name": "t",
        "channel_names": ["FLAIR"],
        "labels": {"background": 0, "lesion": 1},
        "cases": [
            {
                "id": "a",
                "images": {"FLAIR": "img.nii.gz"},
                "label": {"path": "lab.nii.gz", "resample": "world"},
            }
        ],
    }
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    loaded_manifest = load_manifest(tmp_path / "m.json")
    loaded = load_case(loaded_manifest, loaded_manifest.cases[0], tmp_path)
    assert loaded.label.shape == (16, 16, 6)
    assert loaded.label.array[4:10, 5:11, 2:4].all() and loaded.label.array.sum() == 6 * 6 * 2
    manifest["cases"][0]["label"] = "lab.nii.gz"  # without "resample": the grid mismatch is refused
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    with pytest.raises(lesionseg.LesionsegError, match="grid"):
        load_case(load_manifest(tmp_path / "m.json"), load_manifest(tmp_path / "m.json").cases[0], tmp_path)
