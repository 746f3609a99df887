"""Subject-wise splits: never by slice, balanced, reused, refused when they mix roles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lesionseg.data.splits import load_splits, make_splits
from lesionseg.errors import LesionsegError


def test_every_subject_is_tested_exactly_once_and_never_trains_in_its_fold() -> None:
    subjects = [f"s{i}" for i in range(13)]
    splits = make_splits(subjects, 5, seed=3)
    tested = [s for f in splits.folds for s in f.test]
    assert sorted(tested) == sorted(subjects)
    for fold in splits.folds:
        assert not set(fold.test) & (set(fold.train) | set(fold.val))
        assert not set(fold.train) & set(fold.val)
        assert sorted(fold.train + fold.val + fold.test) == sorted(subjects)
    assert splits.scheme == "k-fold" and len(splits.folds) == 5


def test_lesion_load_is_balanced_across_folds() -> None:
    loads = {f"s{i}": float(i**2) for i in range(10)}

    def spread(splits) -> float:  # noqa: ANN001
        per_fold = [sum(loads[s] for s in f.test) for f in splits.folds]
        return max(per_fold) - min(per_fold)

    balanced = spread(make_splits(list(loads), 5, seed=0, lesion_load=loads))
    random = [spread(make_splits(list(loads), 5, seed=seed)) for seed in range(20)]
    assert balanced == 40.0  # snake order: 81+0, 64+1, 49+4, 36+9, 25+16
    assert balanced < sorted(random)[len(random) // 4]


def test_more_folds_than_subjects_is_leave_one_subject_out() -> None:
    splits = make_splits(["a", "b", "c"], 5)
    assert splits.scheme == "leave-one-subject-out"
    assert sorted(f.test[0] for f in splits.folds) == ["a", "b", "c"]
    assert all(len(f.test) == 1 for f in splits.folds)


@pytest.mark.parametrize("k", [1, 0, -1])
def test_fewer_than_two_folds_is_refused(k: int) -> None:
    with pytest.raises(LesionsegError, match=f"at least 2 folds, got {k}"):
        make_splits(["a", "b", "c"], k)


def test_splits_are_seeded_and_round_trip_through_json(tmp_path: Path) -> None:
    a, b = make_splits(list("abcdefgh"), 4, seed=7), make_splits(list("abcdefgh"), 4, seed=7)
    assert a.to_dict() == b.to_dict()
    a.save(tmp_path / "splits.json")
    assert load_splits(tmp_path / "splits.json").to_dict() == a.to_dict()


def test_a_split_file_with_a_subject_in_training_and_validation_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"folds": [{"train": ["a", "b"], "val": ["b"], "test": ["c"]}]}))
    with pytest.raises(LesionsegError, match=r"splits.json.*'b'.*train and val"):
        load_splits(path)


def test_a_subject_tested_in_two_folds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"folds": [{"train": ["a"], "test": ["c"]}, {"train": ["a"], "test": ["c"]}]}))
    with pytest.raises(LesionsegError, match="test subject in folds"):
        load_splits(path)


def test_longitudinal_scans_of_one_subject_stay_in_one_fold() -> None:
    from lesionseg.data.manifest import load_manifest

    manifest = load_manifest("mslesseg")
    assert manifest.subjects == ["P14"]
    both = load_manifest("open_ms_data").subjects + manifest.subjects
    splits = make_splits(both, 4)
    assert sum("P14" in f.test for f in splits.folds) == 1
