"""Bad input: each gets one line that names the file and the problem, a non-zero exit, no traceback, and
nothing half-written. Everything goes through the real entry point, ``lesionseg.cli.main.main``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import oblique_affine

from lesionseg.cli.main import main
from lesionseg.io import Volume, write_volume
from lesionseg.phantom import write_phantom_dataset

SHAPE = (8, 9, 7)
FILES = ("flair.nii.gz", "t1.nii.gz", "label.nii.gz", "mask.nii.gz")


def _save(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> None:
    nib.save(nib.Nifti1Image(array, oblique_affine() if affine is None else affine), path)


def _write_case(root: Path, case_id: str) -> Path:
    folder = root / case_id
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[2:4, 2:5, 2:4] = 1
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[1:7, 1:8, 1:6] = 1
    _save(folder / "flair.nii.gz", rng.normal(size=SHAPE).astype(np.float32))
    _save(folder / "t1.nii.gz", rng.normal(size=SHAPE).astype(np.float32))
    _save(folder / "label.nii.gz", label)
    _save(folder / "mask.nii.gz", mask)
    return folder


def _dataset(root: Path) -> Path:
    """Two cases, 'good' and 'bad', each FLAIR + T1 + label + brain mask; returns the manifest."""
    cases = []
    for cid in ("good", "bad"):
        _write_case(root, cid)
        cases.append(
            {
                "id": cid,
                "images": {"FLAIR": f"{cid}/flair.nii.gz", "T1": f"{cid}/t1.nii.gz"},
                "label": f"{cid}/label.nii.gz",
                "mask": f"{cid}/mask.nii.gz",
            }
        )
    manifest = {
        "name": "bad_input",
        "channel_names": ["FLAIR", "T1"],
        "labels": {"background": 0, "lesion": 1},
    }
    (root / "manifest.json").write_text(json.dumps({**manifest, "cases": cases}))
    return root / "manifest.json"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_mha_label(folder: Path) -> None:  # the label becomes an unreadable .mha
    (folder / "label.nii.gz").unlink()
    (folder / "label.mha").write_bytes(b"ObjectType = Image\nNDims = 3\n" + b"\x00garbage" * 20)


def _label_as_mha(manifest: Path) -> None:
    raw = json.loads(manifest.read_text())
    raw["cases"][1]["label"] = "bad/label.mha"
    manifest.write_text(json.dumps(raw))


def _with_nan(folder: Path) -> None:
    array = np.ones(SHAPE, np.float32)
    array[3, 3, 3] = np.nan
    _save(folder / "flair.nii.gz", array)


def _with_inf(folder: Path) -> None:
    array = np.ones(SHAPE, np.float32)
    array[0, 0, 0] = np.inf
    _save(folder / "t1.nii.gz", array)


def _label_value(value: float) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        label = np.zeros(SHAPE, np.float32)
        label[1, 1, 1] = value
        _save(folder / "label.nii.gz", label)

    return apply


def _shifted_affine(folder: Path) -> None:
    affine = oblique_affine()
    affine[:3, 3] += (2.0, 0.0, 0.0)
    _save(folder / "t1.nii.gz", np.ones(SHAPE, np.float32), affine)


# (break the 'bad' case, the file the message must name, words the message must hold)
BREAKAGES = {
    "missing file": (lambda f: (f / "t1.nii.gz").unlink(), "t1.nii.gz", "file not found"),
    "truncated gzip": (lambda f: _truncate(f / "flair.nii.gz"), "flair.nii.gz", "cannot read image"),
    "garbage bytes": (lambda f: (f / "label.nii.gz").write_bytes(b"\x00\x01garbage" * 50), "label.nii.gz",
                      "cannot read image"),
    "corrupt mha": (_corrupt_mha_label, "label.mha", "cannot read image"),
    "2D image": (lambda f: _save(f / "flair.nii.gz", np.ones((8, 9), np.float32)), "flair.nii.gz", "2D"),
    "4D image": (lambda f: _save(f / "t1.nii.gz", np.ones((*SHAPE, 2), np.float32)), "t1.nii.gz", "4D"),
    "NaN voxels": (_with_nan, "flair.nii.gz", "NaN"),
    "Inf voxels": (_with_inf, "t1.nii.gz", "infinite"),
    "grid shape": (lambda f: _save(f / "t1.nii.gz", np.ones((8, 9, 6), np.float32)), "t1.nii.gz", "grid"),
    "grid affine": (_shifted_affine, "t1.nii.gz", "affine differs"),
    "label outside manifest": (_label_value(3), "label.nii.gz", "label values [3]"),
    "label not integer": (_label_value(0.5), "label.nii.gz", "non-integer"),
    "empty brain mask": (lambda f: _save(f / "mask.nii.gz", np.zeros(SHAPE, np.uint8)), "mask.nii.gz",
                         "empty"),
}  # fmt: skip


@pytest.mark.parametrize("what", sorted(BREAKAGES))
def test_bad_case_is_one_line_naming_the_file(tmp_path: Path, capsys, what: str) -> None:
    manifest = _dataset(tmp_path)
    breaker, filename, problem = BREAKAGES[what]
    breaker(tmp_path / "bad")
    if filename.endswith(".mha"):
        _label_as_mha(manifest)
    rc = main(["dataset", "check", str(manifest), "--root", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "case bad" in lines[0] and str(tmp_path / "bad" / filename) in lines[0] and problem in lines[0]
    assert "good" in out and "1 failed" in out  # the other case was still checked


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["no_such_manifest.json", "--root", "."], "manifest not found"),
        (["{manifest}", "--root", "{root}/missing"], "data root is not a folder"),
        (["{broken}", "--root", "{root}"], "cannot read manifest"),
    ],
)
def test_bad_manifest_or_root_is_one_line(tmp_path: Path, capsys, args: list[str], problem: str) -> None:
    manifest = _dataset(tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": ')
    args = [a.format(manifest=manifest, root=tmp_path, broken=broken) for a in args]
    rc = main(["dataset", "check", *args])
    out, err = capsys.readouterr()
    assert rc == 2 and "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1 and problem in err


def test_all_good_exits_zero(tmp_path: Path, capsys) -> None:
    manifest = _dataset(tmp_path)
    assert main(["dataset", "check", str(manifest), "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""


# --- nothing half-written ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--cases", "0"], "--cases must be at least 1"),
        (["--shape", "8", "8", "8"], "shape must be"),
        (["--spacing", "0", "1", "1"], "spacing must be"),
        (["--spacing", "nan", "1", "1"], "spacing must be"),
    ],
)
def test_phantom_bad_arguments_write_nothing(tmp_path: Path, capsys, extra: list[str], problem: str) -> None:
    out_dir = tmp_path / "deep" / "out"
    rc = main(["phantom", str(out_dir), "--cases", "2", *extra])
    out, err = capsys.readouterr()
    assert rc == 2 and problem in err and str(out_dir) in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_phantom_refuses_a_non_empty_folder_or_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    (tmp_path / "file").write_text("x")
    assert main(["phantom", str(tmp_path / "notes"), "--cases", "1"]) == 2
    assert main(["phantom", str(tmp_path / "notes"), "--cases", "1", "--overwrite"]) == 2  # no manifest.json
    assert main(["phantom", str(tmp_path / "file"), "--cases", "1"]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "notes"]
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["keep.txt"]


def test_phantom_argparse_errors_exit_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["phantom", str(tmp_path / "out"), "--cases", "many"])
    assert info.value.code == 2
    assert list(tmp_path.iterdir()) == []


def test_phantom_failing_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lesionseg.phantom.dataset as dataset

    real = dataset.make_phantom_case
    calls = []

    def fail_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(dataset, "make_phantom_case", fail_on_second)
    assert main(["phantom", str(tmp_path / "out"), "--cases", "3", "--shape", "32", "32", "16"]) == 130
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KeyboardInterrupt):
        calls.clear()
        write_phantom_dataset(tmp_path / "out", 3, shape=(32, 32, 16))
    assert list(tmp_path.iterdir()) == []


def test_write_volume_failure_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import SimpleITK as sitk

    def broken_write(image, filename, *args, **kwargs):
        Path(filename).write_bytes(b"ObjectType = Image\n")  # half a file ...
        raise RuntimeError("disk full")  # ... then the writer dies

    monkeypatch.setattr(sitk, "WriteImage", broken_write)
    with pytest.raises(RuntimeError):
        write_volume(Volume(np.zeros(SHAPE, np.float32), np.eye(4)), tmp_path / "v.mha")
    assert list(tmp_path.iterdir()) == []
