"""Manifests: the six built-in ones, parsing and round trips, load_case on tiny synthetic cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lesionseg.data.manifest import (
    ImageSpec,
    builtin_manifests,
    load_case,
    load_manifest,
    manifest_from_dict,
    save_manifest,
)
from lesionseg.errors import LesionsegError

# name: (cases, subjects, channels, labels)
BUILTIN = {
    "open_ms_data": (3, 3, ["FLAIR", "T1"], 2),
    "mslesseg": (3, 1, ["FLAIR", "T1"], 2),
    "bonbid_hie2023_subset": (2, 2, ["ADC", "Z_ADC"], 2),
    "brats2015_deepmedic": (4, 4, ["FLAIR", "T1c"], 5),
    "lgg_kaggle3m_subset": (2, 2, ["pre-contrast", "FLAIR", "post-contrast"], 2),
    "isles22_sample": (1, 1, ["DWI", "ADC"], 2),
}


def test_the_six_real_set_manifests_are_shipped() -> None:
    assert set(BUILTIN) <= set(builtin_manifests())


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_manifest_fields(name: str) -> None:
    m = load_manifest(name)
    cases, subjects, channels, labels = BUILTIN[name]
    assert m.name == name
    assert (len(m.cases), len(m.subjects), m.channel_names, m.num_classes) == (
        cases,
        subjects,
        channels,
        labels,
    )
    assert m.description and m.licence and m.spacing_note
    assert m.labels["background"] == 0
    for case in m.cases:
        assert case.label is not None
        assert set(case.images) == set(channels)
    assert manifest_from_dict(m.to_dict()).to_dict() == m.to_dict()


def test_builtin_specifics() -> None:
    brats = load_manifest("brats2015_deepmedic")
    assert brats.labels == {"background": 0, "necrosis": 1, "oedema": 2, "non-enhancing": 3, "enhancing": 4}
    assert brats.regions == {"WT": [1, 2, 3, 4], "TC": [1, 3, 4], "ET": [4]}
    assert all(c.mask is not None and c.mask.threshold == 0.5 for c in brats.cases)
    lgg = load_manifest("lgg_kaggle3m_subset")
    case = lgg.cases[0]
    assert [case.images[ch].component for ch in lgg.channel_names] == [0, 1, 2]
    assert case.label.value_map == {255: 1} and case.label.slices.endswith("_mask.tif")
    assert "assumed" in lgg.spacing_note.lower()
    assert {c.subject for c in load_manifest("mslesseg").cases} == {"P14"}
    isles = load_manifest("isles22_sample")
    assert "FLAIR" in isles.description and "co-registered" in isles.description


def test_name_beats_a_folder_of_that_name_without_manifest(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "open_ms_data").mkdir()  # e.g. running from inside ../shared/data
    assert load_manifest("open_ms_data").name == "open_ms_data"


def test_folder_with_manifest_json_is_accepted(tmp_path: Path) -> None:
    m = load_manifest("isles22_sample")
    save_manifest(m, tmp_path / "manifest.json")
    assert load_manifest(tmp_path).to_dict() == m.to_dict()


def test_unknown_manifest_lists_builtins() -> None:
    with pytest.raises(LesionsegError, match="open_ms_data") as info:
        load_manifest("no_such_set")
    assert "no_such_set" in str(info.value)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{not json", "cannot read manifest"),
        (json.dumps({"labels": {"background": 0}, "cases": []}), "channel_names"),
        (json.dumps({"channel_names": ["A"], "labels": [0, 1], "cases": []}), "malformed"),
        (
            json.dumps({"channel_names": ["A"], "labels": {"bg": 0}, "cases": [{"id": "c", "images": {}}]}),
            "KeyError",
        ),
        (
            json.dumps(
                {
                    "channel_names": ["A"],
                    "labels": {"bg": 0},
                    "cases": [{"id": "c", "images": {"A": {"path": "a", "slices": "*.png"}}}],
                }
            ),
            "case 0 channel A",
        ),
    ],
)
def test_malformed_manifest_names_the_file(tmp_path: Path, raw: str, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(raw)
    with pytest.raises(LesionsegError, match=problem) as info:
        load_manifest(path)
    assert str(path) in str(info.value)


def test_image_spec_json_round_trip() -> None:
    for raw in [
        "a/b.nii.gz",
        {"path": "m.nii.gz", "threshold": 0.5},
        {"slices": "p/*.tif", "exclude": "p/*_mask.tif", "component": 1, "spacing": [1.0, 1.0, 2.0]},
        {"slices": "p/*_mask.tif", "spacing": [1.0, 1.0, 1.0], "value_map": {"255": 1}},
    ]:
        assert ImageSpec.parse(raw, "x").to_json() == raw


def _tiny_manifest(tmp_path: Path, factory, label_values=(0, 1), mask_value: float = 0.9) -> Path:
    shape = (6, 7, 5)
    label = np.zeros(shape, dtype=np.uint8)
    label[1:3, 1:3, 1:3] = label_values[-1]
    mask = np.zeros(shape, dtype=np.float32)
    mask[1:5, 1:6, 1:4] = mask_value
    files = {
        "A": factory("a", shape=shape),
        "B": factory("b", shape=shape),
        "label": factory("label", shape=shape, kind="label", array=label),
        "mask": factory("mask", shape=shape, array=mask),
    }
    manifest = {
        "name": "tiny",
        "channel_names": ["A", "B"],
        "labels": {"background": 0, "lesion": 1},
        "cases": [
            {
                "id": "c1",
                "images": {"A": files["A"].name, "B": files["B"].name},
                "label": {"path": files["label"].name, "value_map": {str(label_values[-1]): 1}},
                "mask": {"path": files["mask"].name, "threshold": 0.5},
            }
        ],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path / "manifest.json"


def test_load_case_reads_channels_label_and_mask(tmp_path: Path, tiny_volume_factory) -> None:
    path = _tiny_manifest(tmp_path, tiny_volume_factory, label_values=(0, 7))
    m = load_manifest(path)
    assert m.cases[0].subject == "c1"  # subject defaults to the case id
    loaded = load_case(m, m.cases[0], tmp_path)
    assert loaded.image_array().shape == (2, 6, 7, 5) and loaded.image_array().dtype == np.float32
    assert set(np.unique(loaded.label.array)) == {0, 1}  # value_map 7 -> 1
    assert loaded.mask.array.dtype == np.uint8 and int(loaded.mask.array.sum()) == 4 * 5 * 3
    assert loaded.reference is loaded.images[0]
    assert load_case(m, m.cases[0], tmp_path, with_label=False).label is None


def test_case_lookup_and_unique_ids() -> None:
    m = load_manifest("open_ms_data")
    assert m.case("patient19").subject == "patient19"
    with pytest.raises(LesionsegError, match="no case"):
        m.case("patient99")
    raw = m.to_dict()
    raw["cases"].append(raw["cases"][0])
    with pytest.raises(LesionsegError, match="not unique"):
        manifest_from_dict(raw)
