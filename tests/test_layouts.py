"""Other tools' layouts built from the phantom: an nnU-Net v2 raw dataset passes ``dataset check`` (and loads
as a manifest), a BIDS root passes ``segment`` with masks in a derivatives-style layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lesionseg.cli.main import main
from lesionseg.data.layouts import bids_cases, nnunet_manifest_dict
from lesionseg.data.manifest import load_manifest


@pytest.fixture
def nnunet_dir(phantom_dir: Path, tmp_path: Path) -> Path:
    """Dataset001_Phantom: imagesTr/CASE_0000 (FLAIR), CASE_0001 (T1), labelsTr/CASE, dataset.json."""
    root = tmp_path / "Dataset001_Phantom"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    cases = sorted(p.name for p in phantom_dir.iterdir() if p.is_dir())
    for case in cases:
        shutil.copy(phantom_dir / case / "flair.nii.gz", root / "imagesTr" / f"{case}_0000.nii.gz")
        shutil.copy(phantom_dir / case / "t1.nii.gz", root / "imagesTr" / f"{case}_0001.nii.gz")
        shutil.copy(phantom_dir / case / "lesion.nii.gz", root / "labelsTr" / f"{case}.nii.gz")
    dataset = {
        "channel_names": {"0": "FLAIR", "1": "T1"},
        "labels": {"background": 0, "lesion": 1},
        "numTraining": len(cases),
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(dataset))
    return root


def test_nnunet_raw_dataset_reads_as_a_manifest(nnunet_dir: Path) -> None:
    manifest = load_manifest(nnunet_dir)
    assert manifest.channel_names == ["FLAIR", "T1"]
    assert manifest.labels == {"background": 0, "lesion": 1}
    assert [c.id for c in manifest.cases] == ["phantom_000", "phantom_001", "phantom_002"]
    case = manifest.cases[1]
    assert case.images["T1"].path == "imagesTr/phantom_001_0001.nii.gz"
    assert case.label.path == "labelsTr/phantom_001.nii.gz" and case.subject == "phantom_001"


def test_nnunet_raw_dataset_passes_dataset_check(nnunet_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["dataset", "check", str(nnunet_dir)]) == 0  # --root defaults to the dataset folder
    out = capsys.readouterr().out
    assert "3 case(s)" in out
    assert main(["dataset", "check", str(nnunet_dir), "--root", str(nnunet_dir)]) == 0


def test_nnunet_missing_channel_file_fails_that_case(nnunet_dir: Path, capsys: pytest.CaptureFixture) -> None:
    (nnunet_dir / "imagesTr" / "phantom_002_0001.nii.gz").unlink()
    assert main(["dataset", "check", str(nnunet_dir)]) == 1
    err = capsys.readouterr().err
    assert "phantom_002" in err and "phantom_002_0001.nii.gz" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"labels": {"background": 0, "whole": [1, 2]}}, "region-based"),
        ({"channel_names": {"1": "T1"}}, "numbered 0, 1"),
        ({"labels": None}, "malformed"),
    ],
)
def test_bad_nnunet_dataset_json_is_one_line(
    nnunet_dir: Path, capsys: pytest.CaptureFixture, change: dict, problem: str
) -> None:
    raw = json.loads((nnunet_dir / "dataset.json").read_text()) | change
    (nnunet_dir / "dataset.json").write_text(json.dumps(raw))
    assert main(["dataset", "check", str(nnunet_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and problem in err[0] and "dataset.json" in err[0]
    with pytest.raises(Exception, match=problem):
        nnunet_manifest_dict(nnunet_dir)


@pytest.fixture
def bids_root(phantom_dir: Path, tmp_path: Path) -> Path:
    """sub-01/ses-1 and sub-01/ses-2 (longitudinal), sub-02 without sessions, sub-03 with no T1w."""
    root = tmp_path / "bids"
    cases = sorted(p for p in phantom_dir.iterdir() if p.is_dir())
    layout = {
        "sub-01/ses-1/anat/sub-01_ses-1": cases[0],
        "sub-01/ses-2/anat/sub-01_ses-2": cases[1],
        "sub-02/anat/sub-02": cases[2],
    }
    for prefix, case in layout.items():
        (root / prefix).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(case / "flair.nii.gz", root / f"{prefix}_FLAIR.nii.gz")
        shutil.copy(case / "t1.nii.gz", root / f"{prefix}_T1w.nii.gz")
    (root / "dataset_description.json").write_text('{"Name": "phantom", "BIDSVersion": "1.9.0"}')
    return root


def test_bids_root_pairs_flair_with_t1w_of_the_same_entities(bids_root: Path) -> None:
    cases = bids_cases(bids_root, ["FLAIR", "T1"])
    assert [c.id for c in cases] == ["sub-02", "sub-01_ses-1", "sub-01_ses-2"]
    assert all(not c.problems for c in cases)
    assert cases[1].channels["T1"].name == "sub-01_ses-1_T1w.nii.gz"
    assert str(cases[1].output_prefix) == "sub-01/ses-1/anat/sub-01_ses-1"


def test_segment_bids_root_writes_derivatives(
    bids_root: Path, phantom_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (bids_root / "sub-03" / "anat").mkdir(parents=True)
    shutil.copy(bids_root / "sub-02/anat/sub-02_FLAIR.nii.gz", bids_root / "sub-03/anat/sub-03_FLAIR.nii.gz")
    out = tmp_path / "derivatives" / "lesionseg"
    assert main(["segment", str(bids_root), "-o", str(out), "--quiet"]) == 1  # sub-03 has no T1w
    err = capsys.readouterr().err
    assert "sub-03" in err and "sub-03_T1w.nii.gz" in err and "Traceback" not in err
    for prefix in ("sub-01/ses-1/anat/sub-01_ses-1", "sub-01/ses-2/anat/sub-01_ses-2", "sub-02/anat/sub-02"):
        mask_path = out / f"{prefix}_space-orig_desc-lesion_mask.nii.gz"
        mask, flair = nib.load(mask_path), nib.load(bids_root / f"{prefix}_FLAIR.nii.gz")
        assert mask.shape == flair.shape and np.allclose(mask.affine, flair.affine)
        assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
        sidecar = json.loads((out / f"{prefix}_space-orig_desc-lesion_mask.json").read_text())
        assert sidecar["inputs"]["FLAIR"].endswith(f"{Path(prefix).name}_FLAIR.nii.gz")
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert not (out / "sub-03").exists()
