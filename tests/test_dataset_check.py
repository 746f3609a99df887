"""dataset check: lesion statistics with hand-computed answers, the report, and the six real sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lesionseg.cli.main import main
from lesionseg.data.check import CaseSummary, CheckReport, check_dataset, format_report, summarise_label
from lesionseg.data.manifest import load_manifest


def test_summarise_binary_label_counts_26_connected_lesions() -> None:
    label = np.zeros((6, 6, 6), dtype=np.uint8)
    label[1, 1, 1] = label[2, 2, 2] = 1  # touch at a corner only: one lesion with 26-connectivity
    label[4:6, 4:6, 4] = 1  # 4 voxels, separate
    s = summarise_label(label, {"background": 0, "lesion": 1}, voxel_ml=0.002)
    assert s["lesion_voxels"] == 6 and s["lesion_count"] == 2
    assert s["label_voxels"] == {"lesion": 6}
    assert s["lesion_ml"] == pytest.approx(0.012)


def test_summarise_multiclass_label_per_class() -> None:
    labels = {"background": 0, "necrosis": 1, "oedema": 2, "non-enhancing": 3, "enhancing": 4}
    label = np.zeros((5, 5, 5), dtype=np.uint8)
    label[0:2, 0:2, 0:2] = 2  # 8 oedema voxels around ...
    label[0, 0, 0] = 4  # ... one enhancing voxel: one lesion in all
    s = summarise_label(label, labels, voxel_ml=0.001)
    assert s["label_voxels"] == {"necrosis": 0, "oedema": 7, "non-enhancing": 0, "enhancing": 1}
    assert s["label_ml"]["oedema"] == pytest.approx(0.007)
    assert s["lesion_voxels"] == 8 and s["lesion_count"] == 1


def test_report_table_and_totals() -> None:
    ok = CaseSummary("a", "s1", shape=(2, 3, 4), spacing=(1.0, 1.0, 2.0), has_label=True)
    ok.label_voxels, ok.label_ml = {"lesion": 10}, {"lesion": 0.02}
    ok.lesion_voxels, ok.lesion_ml, ok.lesion_count = 10, 0.02, 3
    bad = CaseSummary("b", "s1", error="/x/b.nii.gz: file not found")
    report = CheckReport("demo", "/x", ["lesion"], [ok, bad])
    lines = format_report(report)
    assert lines[0].split() == [
        "case",
        "subject",
        "shape",
        "spacing",
        "(mm)",
        "lesion",
        "vox",
        "lesion",
        "mL",
        "lesions",
    ]
    assert lines[1].split() == ["a", "s1", "2x3x4", "1x1x2", "10", "0.02", "3"]
    assert len(lines) == 3  # the failing case is reported apart, not in the table
    assert lines[-1] == "total: 2 cases (1 subject), 1 failed; lesion voxels 10 (0.02 mL), 3 lesions"
    assert report.to_dict()["totals"]["failed"] == 1


def test_check_on_phantom_matches_the_labels(phantom_dir: Path) -> None:
    report = check_dataset(load_manifest(phantom_dir), phantom_dir)
    assert not report.failed
    for case in report.cases:
        from lesionseg.io import read_volume

        label = read_volume(phantom_dir / case.id / "lesion.nii.gz", "label")
        assert case.lesion_voxels == int(label.array.sum()) > 0
        assert case.lesion_ml == pytest.approx(label.array.sum() * 3 * 3 * 4 / 1000)
        assert case.has_mask and case.lesion_count >= 1


def test_json_output(phantom_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sub" / "check.json"
    rc = main(["dataset", "check", str(phantom_dir), "--root", str(phantom_dir), "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["manifest"] == "phantom" and data["totals"]["cases"] == 3 and data["totals"]["failed"] == 0
    assert all(c["ok"] and c["shape"] == [48, 56, 32] for c in data["cases"])
    assert capsys.readouterr().out.splitlines()[-1].startswith("total: 3 cases (3 subjects), 0 failed")


def test_dataset_list(capsys) -> None:
    assert main(["dataset", "list"]) == 0
    assert "brats2015_deepmedic: 4 cases / 4 subjects" in capsys.readouterr().out


# --- the real sample sets: every manifest passes and the lesion voxels match the data README ----------

README_LESION_VOXELS = {
    "open_ms_data": {"patient07": 1300, "patient19": 49769, "patient26": 8227},
    "mslesseg": {"P14_T1": 24799, "P14_T2": 29678, "P14_T3": 24508},
    "bonbid_hie2023_subset": {"MGHNICU_028": 2711, "MGHNICU_405": 6733},
    "lgg_kaggle3m_subset": {"TCGA_CS_4943_20000902": 14535, "TCGA_HT_7874_19950902": 11117},
    "isles22_sample": {"sub-strokecase0009_ses-0001": 523},
}
README_BRATS_CLASSES = {  # classes 1/2/3/4
    "pat0001": (26371, 53050, 818, 31485),
    "pat0005": (23030, 35416, 3882, 18354),
    "pat0006": (41838, 109935, 22228, 43379),
    "pat0004": (12956, 45203, 44699, 17816),
}
README_SUBJECTS = {"open_ms_data": 3, "mslesseg": 1, "bonbid_hie2023_subset": 2, "brats2015_deepmedic": 4,
                   "lgg_kaggle3m_subset": 2, "isles22_sample": 1}  # fmt: skip


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(README_SUBJECTS))
def test_real_set_passes_and_matches_readme(shared_data: Path, name: str) -> None:
    root = shared_data / name
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    report = check_dataset(load_manifest(name), root)
    assert not report.failed, [c.error for c in report.failed]
    assert len({c.subject for c in report.cases}) == README_SUBJECTS[name]
    if name == "brats2015_deepmedic":
        names = ["necrosis", "oedema", "non-enhancing", "enhancing"]
        got = {c.id: tuple(c.label_voxels[n] for n in names) for c in report.cases}
        assert got == README_BRATS_CLASSES
        assert all(c.has_mask for c in report.cases)
    else:
        assert {c.id: c.lesion_voxels for c in report.cases} == README_LESION_VOXELS[name]
    assert all(c.lesion_count >= 1 for c in report.cases)
