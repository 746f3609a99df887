"""`lesionseg cv` end to end on the phantom for every method (tiny sizes): folds by subject, predictions on
the original grids, metrics, the TS-CNN Table 1 layout."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from lesionseg.cli.main import main
from lesionseg.config.train import method_names
from lesionseg.errors import LesionsegError

TINY = [
    "epochs=1",
    "steps_per_epoch=2",
    "batch_size=2",
    "width=4",
    "val_max_slices=2",
    "patch_size=[32,32]",
    "preprocess.target_size=[64,64]",
    "augmented_copies=1",
    "pixels_per_image=40",
    "steps=4",  # budget-planned methods (lesion-unet): a fixed step count instead of the budget
    "budget_s=null",
    "evaluations=2",
]
PIXELNET = ['network_options={"fc_width": 8, "mlp_width": 8}']


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cv-cache")


@pytest.mark.parametrize("method", method_names())
def test_cv_runs_end_to_end_for_every_method(
    method: str, phantom_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cv"
    sets = [a for s in TINY + (PIXELNET if method.startswith("pixelnet") else []) for a in ("--set", s)]
    code = main(
        [
            "cv",
            "--manifest",
            str(phantom_dir / "manifest.json"),
            "--root",
            str(phantom_dir),
            "--method",
            method,
            "--folds",
            "5",
            "--out",
            str(out),
            "--cache",
            str(cache_dir),
            "--quiet",
            *sets,
        ]
    )
    assert code == 0
    splits = json.loads((out / "splits.json").read_text())
    assert splits["scheme"] == "leave-one-subject-out" and len(splits["folds"]) == 3
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["case"] for r in rows) == sorted(f"phantom_{i:03d}" for i in range(3))
    for row in rows:
        assert 0.0 <= float(row["dsc"]) <= 1.0
        fold = splits["folds"][int(row["fold"])]
        assert row["subject"] in fold["test"] and row["subject"] not in fold["train"] + fold["val"]
        prediction = nib.load(out / f"fold_{row['fold']}" / "predictions" / f"{row['case']}.nii.gz")
        reference = nib.load(phantom_dir / row["case"] / "flair.nii.gz")
        assert prediction.shape == reference.shape and np.allclose(prediction.affine, reference.affine)
    table = (out / "table.md").read_text()
    assert "| Fold | DSC | Sensitivity | Specificity | Hausdorff Distance |" in table
    assert "Median over folds" in table


def test_cv_says_when_folds_become_leave_one_out_without_validation() -> None:
    from lesionseg.data.splits import make_splits
    from lesionseg.evaluate.cv import split_notes

    splits = make_splits(["a", "b"], 5, seed=0)
    notes = split_notes(splits, 5, 2)
    assert any("leave-one-subject-out (2 folds)" in n for n in notes)
    assert sum("no validation subject" in n for n in notes) == 2
    assert split_notes(make_splits(["a", "b", "c", "d"], 4, seed=0), 4, 4) == []


@pytest.mark.parametrize(
    ("folds", "only", "message"),
    [
        ("0", None, "at least 2 folds, got 0"),
        ("2", "7", "--only-fold 7 is not a fold of the split (2 folds)"),
    ],
)
def test_bad_fold_options_are_one_line_errors(
    folds: str,
    only: str | None,
    message: str,
    phantom_dir: Path,
    cache_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    out = tmp_path / "cv"
    argv = [
        "cv",
        "--manifest",
        str(phantom_dir / "manifest.json"),
        "--root",
        str(phantom_dir),
        "--folds",
        folds,
    ]
    argv += ["--out", str(out), "--cache", str(cache_dir)] + (["--only-fold", only] if only else [])
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing trained: the folder the command made is gone


def test_ensemble_threshold_is_calibrated_on_the_validation_subject_from_averaged_probabilities(
    phantom_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """WMH thesis section 2.4: the ensemble's threshold is chosen on validation from the averaged members,
    not taken from one member's own calibration."""
    from lesionseg.data.cache import PreprocessCache
    from lesionseg.data.manifest import load_manifest
    from lesionseg.infer.predictor import Predictor, load_members
    from lesionseg.infer.slicewise import foreground_probability
    from lesionseg.train.calibrate import calibrate

    out = tmp_path / "cv"
    sets = [a for s in [*TINY, "calibrate=true"] for a in ("--set", s)]
    args = ["cv", "--manifest", str(phantom_dir / "manifest.json"), "--root", str(phantom_dir)]
    args += ["--method", "wmh-ensemble", "--folds", "3", "--out", str(out), "--cache", str(cache_dir)]
    assert main([*args, "--quiet", "--only-fold", "0", *sets]) == 0
    saved = json.loads((out / "fold_0" / "ensemble_calibration.json").read_text())
    fold = json.loads((out / "splits.json").read_text())["folds"][0]
    manifest = load_manifest(phantom_dir / "manifest.json")
    members = sorted((out / "fold_0").glob("wmh-*/best.pt"))
    assert len(members) == 3
    predictor = Predictor(load_members(members))
    cache = PreprocessCache(cache_dir)
    probs, refs, voxels = [], [], []
    for case in (c for c in manifest.cases if c.subject in fold["val"]):
        pre = cache.get(manifest, case, phantom_dir, predictor.preprocess_config)
        probs.append(foreground_probability(predictor.predict_preprocessed(pre)[1]))
        refs.append(np.asarray(pre.label) > 0)
        voxels.append(float(np.prod(pre.spacing)))
    expected = calibrate(probs, refs, voxels)
    assert saved["cases"] == len(fold["val"]) == 1
    assert (saved["threshold"], saved["min_lesion_mm3"]) == (expected.threshold, expected.min_lesion_mm3)


def test_a_trained_ensemble_saves_its_own_calibration_and_predict_uses_it(
    phantom_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """`lesionseg train --method wmh-ensemble` then `predict` with its members (or its folder): the
    threshold is the ensemble's, chosen on validation, not the first member's."""
    from lesionseg.infer.ensemble_file import ENSEMBLE_FILE
    from lesionseg.infer.files import load_predictor

    out = tmp_path / "ens"
    sets = [a for s in [*TINY, "calibrate=true"] for a in ("--set", s)]
    args = ["train", "--manifest", str(phantom_dir / "manifest.json"), "--root", str(phantom_dir)]
    args += ["--method", "wmh-ensemble", "--out", str(out), "--cache", str(cache_dir), "--quiet", *sets]
    assert main(args) == 0
    saved = json.loads((out / ENSEMBLE_FILE).read_text())
    members = sorted(out.glob("wmh-*/best.pt"))
    assert len(members) == 3 and sorted(saved["members"]) == [f"{m.parent.name}/best.pt" for m in members]
    expected = (saved["threshold"], saved["min_lesion_mm3"])
    for given in (members, [out]):
        predictor = load_predictor(given)
        assert len(predictor.members) == 3
        assert (predictor.threshold, predictor.min_lesion_mm3) == expected
    assert load_predictor(members[:2]).threshold == load_predictor(members[:1]).threshold  # not this set
    (out / ENSEMBLE_FILE).write_text("{not json")
    with pytest.raises(LesionsegError, match=ENSEMBLE_FILE):
        load_predictor([out])


def test_seeds_train_one_network_each_and_calibrate_their_average(
    phantom_dir: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`--seeds 0 1` (the bundled model's way: one recipe, several seeds, averaged): one network per seed,
    each with its own seed in its config, the average calibrated on validation and read back by predict
    from the folder; cv keeps each fold's networks apart in the same way; a repeated seed is refused."""
    from lesionseg.infer.ensemble_file import ENSEMBLE_FILE
    from lesionseg.infer.files import load_predictor

    sets = [a for s in TINY for a in ("--set", s)]
    data = [
        "--manifest",
        str(phantom_dir / "manifest.json"),
        "--root",
        str(phantom_dir),
        "--cache",
        str(cache_dir),
    ]
    out = tmp_path / "seeds"
    assert main(["train", *data, "--seeds", "0", "1", "--out", str(out), "--quiet", *sets]) == 0
    members = sorted(out.glob("seed_*/best.pt"))
    assert [m.parent.name for m in members] == ["seed_0", "seed_1"]
    assert [json.loads((m.parent / "config.json").read_text())["seed"] for m in members] == [0, 1]
    weights = [torch.load(m, weights_only=True)["model"] for m in members]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # two networks, not one
    saved = json.loads((out / ENSEMBLE_FILE).read_text())
    predictor = load_predictor([out])
    assert len(predictor.members) == 2
    assert (predictor.threshold, predictor.min_lesion_mm3) == (saved["threshold"], saved["min_lesion_mm3"])

    cv_out = tmp_path / "cv"
    args = ["cv", *data, "--seeds", "0", "1", "--folds", "3", "--out", str(cv_out), "--quiet"]
    assert main([*args, "--only-fold", "0", *sets]) == 0
    assert sorted(p.parent.name for p in (cv_out / "fold_0").glob("*/best.pt")) == [
        "lesion-unet_seed_0",
        "lesion-unet_seed_1",
    ]
    assert (cv_out / "fold_0" / ENSEMBLE_FILE).is_file()
    assert json.loads((cv_out / "summary.json").read_text())["seeds"] == [0, 1]

    bad = ["train", *data, "--seeds", "2", "2", "--out", str(tmp_path / "x"), "--quiet", *sets]
    assert main(bad) != 0
    assert "--seeds repeats a seed (2 2)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
