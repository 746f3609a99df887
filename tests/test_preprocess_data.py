"""preprocess on one real case per set of ../shared/data: exact label round trip and a correct affine.

Skips cleanly when the data folder is absent (found at <repo>/../shared/data or $LESIONSEG_DATA).
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lesionseg.config.preprocess import PreprocessConfig
from lesionseg.data.cache import preprocess_case
from lesionseg.data.manifest import load_case, manifest_from_dict
from lesionseg.preprocess import PreprocessRecord, invert

DATA = Path(os.environ.get("LESIONSEG_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
OMS = "open_ms_data/cross_sectional/MNI/patient07/"
HIE = "bonbid_hie2023_subset/BONBID2023_Train/"
BRATS = "brats2015_deepmedic/test/brats_2013_pat0001_1/"

# One case per set, as a one-case manifest (independent of the shipped manifests).
CASES = {
    "open_ms_data/patient07": {
        "channel_names": ["FLAIR", "T1"],
        "labels": {"background": 0, "lesion": 1},
        "images": {
            "FLAIR": OMS + "FLAIR_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz",
            "T1": OMS + "T1_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz",
        },
        "label": OMS + "GOLD_STANDARD_N4_noneck_reduced_winsor_regtoFLAIR_regtoMNI.nii.gz",
    },
    "bonbid/MGHNICU_028": {  # oblique direction matrix, 1.47 x 1.56 x 4 mm, MetaImage
        "channel_names": ["ADC", "Z_ADC"],
        "labels": {"background": 0, "lesion": 1},
        "images": {
            "ADC": HIE + "1ADC_ss/MGHNICU_028-VISIT_01-ADC_ss.mha",
            "Z_ADC": HIE + "2Z_ADC/Zmap_MGHNICU_028-VISIT_01-ADC_smooth2mm_clipped10.mha",
        },
        "label": HIE + "3LABEL/MGHNICU_028-VISIT_01_lesion.mha",
    },
    "brats/pat0001": {  # negative background, mask file, labels 0-4
        "channel_names": ["FLAIR", "T1c"],
        "labels": {"background": 0, "necrosis": 1, "oedema": 2, "non-enhancing": 3, "enhancing": 4},
        "images": {
            "FLAIR": BRATS + "Flair_subtrMeanDivStd.nii.gz",
            "T1c": BRATS + "T1c_subtrMeanDivStd.nii.gz",
        },
        "label": BRATS + "OTMultiClass.nii.gz",
        "mask": BRATS + "brainmask.nii.gz",
    },
}


def one_case_manifest(name: str):
    spec = CASES[name]
    case = {
        "id": name.split("/")[1],
        "images": spec["images"],
        "label": spec["label"],
        "mask": spec.get("mask"),
    }
    raw = {"name": name, "channel_names": spec["channel_names"], "labels": spec["labels"], "cases": [case]}
    return manifest_from_dict(raw)


@pytest.fixture(scope="module", params=sorted(CASES))
def real_case(request):
    manifest = one_case_manifest(request.param)
    first = DATA / next(iter(CASES[request.param]["images"].values()))
    if not first.exists():
        pytest.skip(f"shared data not found: {first}")
    loaded = load_case(manifest, manifest.cases[0], DATA)
    return request.param, loaded, preprocess_case(loaded, PreprocessConfig())


@pytest.mark.data
def test_real_case_labels_round_trip_bitwise(real_case) -> None:
    name, loaded, result = real_case
    assert result.image.shape[:3] == (2, 256, 256) and result.record.exact
    assert nib.aff2axcodes(result.affine) == ("R", "A", "S")
    assert result.record.brain_mask == ("file" if "mask" in CASES[name] else "nonzero")
    label = loaded.label.array
    assert int(result.label.astype(np.int64).sum()) == int(label.astype(np.int64).sum())  # nothing cropped
    back = invert(result.label, result.record, "label")
    assert back.dtype == label.dtype and np.array_equal(back, label)
    if loaded.mask is not None:
        assert np.array_equal(invert(result.mask, result.record), loaded.mask.array)


@pytest.mark.data
def test_real_case_affine_and_values(real_case) -> None:
    _, loaded, result = real_case
    voxels = np.argwhere(result.mask > 0)[::997]
    homogeneous = np.c_[voxels, np.ones(len(voxels))].T
    original = (np.linalg.inv(loaded.reference.affine) @ result.affine @ homogeneous)[:3].T
    np.testing.assert_allclose(original, np.rint(original), atol=1e-5)
    ijk = tuple(np.rint(original).astype(int).T)
    record = result.record
    for c, volume in enumerate(loaded.images):
        expected = (volume.array[ijk] - record.channel_mean[c]) / record.channel_std[c]
        np.testing.assert_allclose(result.image[c][tuple(voxels.T)], expected, rtol=1e-4, atol=1e-4)
    assert PreprocessRecord.from_json(record.to_json()) == record
