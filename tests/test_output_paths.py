"""Output names and paths: named after their input, never outside --out whatever the case id ('..', absolute,
odd characters), options checked before work starts, no silent overwrite, one exit-code convention, shards,
and the header's voxel count refused before any allocation."""

from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lesionseg.cli.main import main
from lesionseg.errors import LesionsegError
from lesionseg.io import read_volume
from lesionseg.io.paths import inside, safe_name
from lesionseg.models import bundled_model_path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sub-01", "sub-01"),
        ("..", "__"),
        ("../../x", "___.._x"),
        ("/etc/passwd", "_etc_passwd"),
        ("C:\\temp\\x", "C__temp_x"),
        ("a b?*<>|\x00c", "a_b______c"),
        (".hidden", "_hidden"),
        ("", "_"),
        ("patient.07", "patient.07"),
    ],
)
def test_safe_name_table(text: str, expected: str) -> None:
    assert safe_name(text) == expected


def test_inside_refuses_escapes_and_links(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert inside(out, out / "a" / "b.nii.gz") == out / "a" / "b.nii.gz"
    for escape in (out / ".." / "x.nii.gz", Path("/tmp/x.nii.gz"), tmp_path / "x.nii.gz"):
        with pytest.raises(LesionsegError, match="outside the output folder"):
            inside(out, escape)
    (out / "link").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(LesionsegError, match="outside the output folder"):
        inside(out, out / "link" / "x.nii.gz")


def case_files(phantom_dir: Path, i: int = 0) -> tuple[Path, Path]:
    case = sorted(p for p in phantom_dir.iterdir() if p.is_dir())[i]
    return case / "flair.nii.gz", case / "t1.nii.gz"


def all_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_manifest_ids_cannot_write_outside_out(phantom_dir: Path, tmp_path: Path) -> None:
    ids = ["../../escaped", str(tmp_path / "absolute"), "odd id?*:", "a/b", "a_b"]
    flair, t1 = case_files(phantom_dir)
    manifest = {
        "channel_names": ["FLAIR", "T1"],
        "labels": {"background": 0, "lesion": 1},
        "cases": [{"id": i, "images": {"FLAIR": str(flair), "T1": str(t1)}} for i in ids],
    }
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    out = tmp_path / "deep" / "out"
    before = all_files(tmp_path)
    code = main(["predict", "--model", str(bundled_model_path()), "--manifest", str(tmp_path / "m.json"),
                 "--root", "/", "--allow-outside-root", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 1  # 'a_b' collides with 'a/b' and is refused, the others are written
    written = all_files(tmp_path) - before
    assert written and all(out in p.parents for p in written)
    names = sorted(p.name for p in written if p.name.endswith("_mask.nii.gz"))
    expected = ["___.._escaped", safe_name(str(tmp_path / "absolute")), "a_b", "odd_id___"]
    assert names == sorted(f"{n}_mask.nii.gz" for n in expected)
    assert (
        not (tmp_path / "escaped_mask.nii.gz").exists() and not (tmp_path / "absolute_mask.nii.gz").exists()
    )


@pytest.mark.parametrize("case_id", ["../../x", "/abs/x", "bad:name*"])
def test_case_id_stays_under_out(phantom_dir: Path, tmp_path: Path, case_id: str) -> None:
    flair, t1 = case_files(phantom_dir)
    out = tmp_path / "a" / "out"
    before = all_files(tmp_path)
    args = ["predict", "--model", str(bundled_model_path()), "--flair", str(flair), "--t1", str(t1)]
    assert main([*args, "--case-id", case_id, "--out", str(out)]) == 0
    written = all_files(tmp_path) - before
    assert {p.name for p in written} == {
        f"{safe_name(case_id)}_mask.nii.gz",
        f"{safe_name(case_id)}_mask.json",
        f"{safe_name(case_id)}_mask.lesions.csv",
    }
    assert all(p.parent == out for p in written)


def test_two_patients_into_one_out_do_not_collide(phantom_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for i in (0, 1):
        flair, t1 = case_files(phantom_dir, i)
        inputs = tmp_path / f"in{i}"
        inputs.mkdir()
        shutil.copy(flair, inputs / f"patient{i}_FLAIR.nii.gz")
        shutil.copy(t1, inputs / f"patient{i}_T1.nii.gz")
        args = [
            "predict",
            "--model",
            str(bundled_model_path()),
            "--flair",
            str(inputs / f"patient{i}_FLAIR.nii.gz"),
        ]
        assert main([*args, "--t1", str(inputs / f"patient{i}_T1.nii.gz"), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {
        "patient0_mask.nii.gz", "patient0_mask.json", "patient0_mask.lesions.csv",
        "patient1_mask.nii.gz", "patient1_mask.json", "patient1_mask.lesions.csv",
    }  # fmt: skip
    sidecar = json.loads((out / "patient1_mask.json").read_text())
    assert sidecar["inputs"]["FLAIR"].endswith("patient1_FLAIR.nii.gz")
    steps = [s["step"] for s in sidecar["steps"]]
    assert steps == ["read", "read", "skull_detection"]  # same grid: no registration; no skull found


@pytest.mark.parametrize("value", ["1.5", "0", "1", "-0.1", "nan", "inf"])
def test_threshold_outside_0_1_is_one_line(phantom_dir: Path, tmp_path: Path, capsys, value: str) -> None:
    flair, t1 = case_files(phantom_dir)
    code = main(["segment", str(flair), str(t1), "-o", str(tmp_path / "m.nii.gz"), "--threshold", value])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--threshold must be a number in (0, 1)" in err[0]
    assert not (tmp_path / "m.nii.gz").exists()


def test_probabilities_are_not_overwritten_without_overwrite(
    phantom_dir: Path, tmp_path: Path, capsys
) -> None:
    flair, t1 = case_files(phantom_dir)
    prob = tmp_path / "m_prob.nii.gz"
    prob.write_bytes(b"keep me")
    args = ["segment", str(flair), str(t1), "-o", str(tmp_path / "m.nii.gz"), "--probabilities"]
    assert main(args) == 2
    assert "use --overwrite" in capsys.readouterr().err and prob.read_bytes() == b"keep me"
    assert not (tmp_path / "m.nii.gz").exists()
    assert main([*args, "--overwrite"]) == 0
    assert nib.load(prob).shape == nib.load(flair).shape


def test_all_zero_flair_is_a_clear_error(phantom_dir: Path, tmp_path: Path, capsys) -> None:
    flair, t1 = case_files(phantom_dir)
    image = nib.load(flair)
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.float32), image.affine), tmp_path / "zero.nii.gz")
    code = main(["segment", str(tmp_path / "zero.nii.gz"), str(t1), "-o", str(tmp_path / "m.nii.gz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "zero.nii.gz" in err[0] and "constant" in err[0]
    assert not (tmp_path / "m.nii.gz").exists()


def test_file_not_found_exits_2_from_every_verb(tmp_path: Path, capsys) -> None:
    missing = str(tmp_path / "missing.nii.gz")
    model = str(bundled_model_path())
    commands = [
        ["segment", missing, missing, "-o", str(tmp_path / "m.nii.gz")],
        ["predict", "--model", model, "--flair", missing, "--t1", missing, "--out", str(tmp_path / "o")],
        [
            "predict",
            "--model",
            str(tmp_path / "missing.pt"),
            "--flair",
            missing,
            "--out",
            str(tmp_path / "o"),
        ],
        ["dataset", "check", str(tmp_path / "missing.json"), "--root", str(tmp_path)],
    ]
    for command in commands:
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "missing" in err[0], (command, err)


def test_device_cuda_without_cuda_is_one_line(phantom_dir: Path, tmp_path: Path, capsys) -> None:
    import torch

    flair, t1 = case_files(phantom_dir)
    code = main(["segment", str(flair), str(t1), "-o", str(tmp_path / "m.nii.gz"), "--device", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()
    if torch.cuda.is_available():
        assert code == 0
    else:
        assert code == 2 and len(err) == 1 and "CUDA" in err[0]


def test_shards_split_a_folder_without_overlap(phantom_dir: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        flair, t1 = case_files(phantom_dir, i)
        shutil.copy(flair, inputs / f"c{i}_FLAIR.nii.gz")
        shutil.copy(t1, inputs / f"c{i}_T1.nii.gz")
    base = ["predict", "--model", str(bundled_model_path()), "--input", str(inputs), "--quiet"]
    assert main([*base, "--out", str(tmp_path / "s0"), "--shard", "0/2"]) == 0
    assert main([*base, "--out", str(tmp_path / "s1"), "--shard", "1/2"]) == 0
    masks = [sorted(p.name for p in (tmp_path / s).glob("*_mask.nii.gz")) for s in ("s0", "s1")]
    assert masks == [["c0_mask.nii.gz", "c2_mask.nii.gz"], ["c1_mask.nii.gz"]]
    with pytest.raises(SystemExit):
        main([*base, "--out", str(tmp_path / "s2"), "--shard", "2/2"])


def test_header_claiming_1024_cubed_fails_before_allocating(tmp_path: Path, monkeypatch) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((1024, 1024, 1024))
    header.set_data_dtype(np.float32)
    path = tmp_path / "huge.nii.gz"
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4))
    assert path.stat().st_size < 100
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(LesionsegError) as info:
        read_volume(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "1024x1024x1024" in message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000  # kB: nothing allocated
    monkeypatch.setenv("LESIONSEG_MAX_VOXELS", str(8 * 8 * 8 - 1))
    small = tmp_path / "small.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), small)
    with pytest.raises(LesionsegError, match="LESIONSEG_MAX_VOXELS"):
        read_volume(small)
    monkeypatch.setenv("LESIONSEG_MAX_VOXELS", "512")
    assert read_volume(small).shape == (8, 8, 8)


def test_header_limit_applies_to_metaimage_and_truncated_nii(tmp_path: Path, monkeypatch) -> None:
    mha = tmp_path / "big.mha"
    mha.write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 1024 1024 1024\nElementType = MET_FLOAT\n"
        "ElementDataFile = LOCAL\n"
    )
    with pytest.raises(LesionsegError, match="1024x1024x1024"):
        read_volume(mha)
    header = nib.Nifti1Header()
    header.set_data_shape((64, 64, 64))
    header.set_data_dtype(np.float32)
    nii = tmp_path / "cut.nii"
    nii.write_bytes(header.binaryblock + b"\0" * 1000)
    with pytest.raises(LesionsegError, match="truncated"):
        read_volume(nii)
    assert os.environ.get("LESIONSEG_MAX_VOXELS") is None


@pytest.mark.parametrize("command", ["train", "cv", "preprocess"])
def test_bad_input_leaves_no_output_folder_behind(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A manifest naming a missing file: one line, exit 2, and the output folder the command would have
    created is not left half-written; a folder that existed before keeps what it held."""
    manifest = {
        "channel_names": ["FLAIR"],
        "labels": {"background": 0, "lesion": 1},
        "cases": [{"id": "a", "images": {"FLAIR": "missing.nii.gz"}, "label": "missing_label.nii.gz"}],
    }
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    base = [command, "--manifest", str(tmp_path / "m.json"), "--root", str(tmp_path)]
    fresh = tmp_path / "fresh"
    assert main([*base, "--out", str(fresh)]) == 2
    assert "missing.nii.gz: file not found" in capsys.readouterr().err
    assert not fresh.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert main([*base, "--out", str(kept)]) == 2
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]
