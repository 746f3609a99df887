"""predict / segment / export: outputs on the input's grid, no silent overwrite, folder runs that survive a
bad case, ensembles with uncertainty, and ONNX giving the same mask."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from lesionseg.cli.main import main
from lesionseg.config.train import resolve_train_config
from lesionseg.data.cache import PreprocessCache
from lesionseg.data.manifest import load_manifest
from lesionseg.train.run import train_model


@pytest.fixture(scope="module")
def tiny_models(phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two tiny checkpoints trained for a few steps on the test phantom."""
    out = tmp_path_factory.mktemp("models")
    manifest = load_manifest(phantom_dir / "manifest.json")
    paths = []
    for seed, method in ((0, "wmh-dice"), (1, "wmh-binary-focal")):
        cfg = resolve_train_config(
            method,
            "cpu",
            overrides=[
                "epochs=1",
                "steps_per_epoch=3",
                "batch_size=2",
                "width=4",
                "val_max_slices=2",
                f"seed={seed}",
                "preprocess.target_size=[64,64]",
                "augmentation=none",
                "lr=1e-2",
            ],
        )
        result = train_model(
            cfg,
            manifest,
            phantom_dir,
            manifest.subjects[:2],
            manifest.subjects[2:],
            out / method,
            PreprocessCache(out / "cache"),
            progress=False,
        )
        paths.append(result.best)
    return paths


def case_files(phantom_dir: Path) -> tuple[Path, Path]:
    case = sorted(p for p in phantom_dir.iterdir() if p.is_dir())[0]
    return case / "flair.nii.gz", case / "t1.nii.gz"


def test_predict_writes_a_mask_on_the_input_grid_and_never_overwrites(
    tiny_models: list[Path], phantom_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    flair, t1 = case_files(phantom_dir)
    args = [
        "predict",
        "--model",
        str(tiny_models[0]),
        "--flair",
        str(flair),
        "--t1",
        str(t1),
        "--out",
        str(tmp_path),
        "--probabilities",
        "--case-id",
        "case",
    ]
    assert main(args) == 0
    mask, ref = nib.load(tmp_path / "case_mask.nii.gz"), nib.load(flair)
    assert mask.shape == ref.shape and np.allclose(mask.affine, ref.affine)
    assert int(mask.header["qform_code"]) == int(ref.header["qform_code"])
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
    prob = np.asarray(nib.load(tmp_path / "case_prob.nii.gz").dataobj)
    assert prob.min() >= 0 and prob.max() <= 1
    before = (tmp_path / "case_mask.nii.gz").stat().st_mtime_ns
    assert main(args) == 2  # refused: a single case's error stops the command (exit 2, as for every verb)
    assert "use --overwrite" in capsys.readouterr().err
    assert (tmp_path / "case_mask.nii.gz").stat().st_mtime_ns == before
    assert main([*args, "--overwrite"]) == 0


def test_folder_run_reports_a_bad_case_and_still_predicts_the_others(
    tiny_models: list[Path], phantom_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    flair, t1 = case_files(phantom_dir)
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(flair, inputs / "sub-01_FLAIR.nii.gz")
    shutil.copy(t1, inputs / "sub-01_T1.nii.gz")
    (inputs / "sub-02_FLAIR.nii.gz").write_bytes(b"not an image")
    shutil.copy(t1, inputs / "sub-02_T1.nii.gz")
    shutil.copy(flair, inputs / "sub-03_FLAIR.nii.gz")  # no T1
    code = main(
        ["predict", "--model", str(tiny_models[0]), "--input", str(inputs), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert (tmp_path / "o" / "sub-01_mask.nii.gz").exists()
    assert not (tmp_path / "o" / "sub-02_mask.nii.gz").exists()
    assert "sub-02" in err and "sub-02_FLAIR.nii.gz" in err and "Traceback" not in err
    assert "sub-03" in err and "missing channel" in err
    assert not [p for p in (tmp_path / "o").iterdir() if p.name.startswith(".")]


def test_a_disk_fault_on_a_later_case_keeps_the_cases_already_written(
    tiny_models: list[Path], phantom_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    import errno

    from lesionseg.cli import predict as predict_cli

    flair, t1 = case_files(phantom_dir)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for case in ("sub-01", "sub-02"):
        shutil.copy(flair, inputs / f"{case}_FLAIR.nii.gz")
        shutil.copy(t1, inputs / f"{case}_T1.nii.gz")
    real_predict_job = predict_cli.predict_job

    def disk_full_on_second(predictor, job, out_dir, args):  # noqa: ANN001, ANN202
        if job.id == "sub-02":
            raise OSError(errno.ENOSPC, "No space left on device", str(out_dir / "sub-02_mask.nii.gz"))
        return real_predict_job(predictor, job, out_dir, args)

    monkeypatch.setattr(predict_cli, "predict_job", disk_full_on_second)
    out = tmp_path / "o"  # created by this run: a fault must not remove what it finished
    code = main(
        ["predict", "--model", str(tiny_models[0]), "--input", str(inputs), "--out", str(out), "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert (out / "sub-01_mask.nii.gz").exists()
    assert "sub-02" in err and "No space left on device" in err and "sub-02_mask.nii.gz" in err
    assert "Traceback" not in err and "[Errno" not in err


def test_ensemble_averages_members_and_writes_their_spread(
    tiny_models: list[Path], phantom_dir: Path, tmp_path: Path
) -> None:
    flair, t1 = case_files(phantom_dir)
    models = [a for m in tiny_models for a in ("--model", str(m))]
    assert (
        main(
            [
                "predict",
                *models,
                "--flair",
                str(flair),
                "--t1",
                str(t1),
                "--out",
                str(tmp_path),
                "--probabilities",
                "--uncertainty",
            ]
        )
        == 0
    )
    # named after the input's folder (the phantom's files are just flair.nii.gz, t1.nii.gz)
    spread = np.asarray(nib.load(tmp_path / "phantom_000_uncertainty.nii.gz").dataobj)
    assert spread.shape == nib.load(flair).shape and spread.max() > 0


def test_optimised_path_matches_the_plain_one(tiny_models: list[Path], phantom_dir: Path) -> None:
    from lesionseg.infer.predictor import Predictor, load_members
    from lesionseg.io import read_volume

    images = [read_volume(p) for p in case_files(phantom_dir)]
    plain = Predictor(load_members(tiny_models[:1]), optimize=False).predict(images)
    fast = Predictor(load_members(tiny_models[:1]), optimize=True).predict(images)
    assert np.abs(plain.probability.array - fast.probability.array).max() < 1e-3


def test_onnx_export_gives_the_same_mask(tiny_models: list[Path], phantom_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from lesionseg.infer.export import OnnxModel
    from lesionseg.infer.predictor import Predictor, load_members
    from lesionseg.io import read_volume

    onnx_path = tmp_path / "model.onnx"
    assert main(["export", "--model", str(tiny_models[0]), "--out", str(onnx_path)]) == 0
    images = [read_volume(p) for p in case_files(phantom_dir)]
    torch_pred = Predictor(load_members(tiny_models[:1]), optimize=False).predict(images)
    members = load_members(tiny_models[:1])
    members[0].model = OnnxModel(onnx_path)
    onnx_pred = Predictor(members, optimize=False).predict(images)
    assert np.array_equal(torch_pred.label.array, onnx_pred.label.array)
    assert np.abs(torch_pred.probability.array - onnx_pred.probability.array).max() < 1e-4


def test_the_bundled_model_is_three_mirrored_networks_with_their_average_calibration() -> None:
    from lesionseg.infer.ensemble_file import ENSEMBLE_FILE, read_ensemble_file
    from lesionseg.infer.files import load_predictor
    from lesionseg.models import bundled_model_path

    saved = read_ensemble_file(bundled_model_path() / ENSEMBLE_FILE)
    predictor = load_predictor()  # what predict and segment use when no --model is given
    assert len(predictor.members) == 3 and predictor.flip_tta
    assert {m.source for m in predictor.members} == {str(p) for p in saved["members"]}
    assert (predictor.threshold, predictor.min_lesion_mm3) == (saved["threshold"], saved["min_lesion_mm3"])
    first, *others = [next(iter(m.model.state_dict().values())) for m in predictor.members]
    assert not any(torch.equal(first, other) for other in others)  # three trainings, not one copied


def test_segment_with_the_bundled_model_lines_up_with_the_flair(phantom_dir: Path, tmp_path: Path) -> None:
    from lesionseg.models import bundled_model_path

    try:
        bundled_model_path()
    except Exception:  # noqa: BLE001
        pytest.fail("the bundled model must ship with the package")
    flair, t1 = case_files(phantom_dir)
    out = tmp_path / "mask.nii.gz"
    assert main(["segment", str(flair), str(t1), "-o", str(out)]) == 0
    mask, ref = nib.load(out), nib.load(flair)
    assert mask.shape == ref.shape and np.allclose(mask.affine, ref.affine)


def test_segment_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        [
            "segment",
            str(tmp_path / "missing.nii.gz"),
            str(tmp_path / "t1.nii.gz"),
            "-o",
            str(tmp_path / "out.nii.gz"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "missing.nii.gz" in err[0]


@pytest.mark.parametrize("outputs", [1, 3])
def test_slices_the_network_skips_are_background(outputs: int) -> None:
    """Slices without brain (and the margin outside a crop window) are background: lesion probability 0 and,
    for softmax outputs, class probabilities that still sum to 1."""
    from lesionseg.infer.slicewise import foreground_probability as foreground
    from lesionseg.infer.slicewise import predict_volume

    torch.manual_seed(0)
    model = torch.nn.Conv2d(2, outputs, 3, padding=1)
    image = np.random.default_rng(0).standard_normal((2, 32, 32, 6)).astype(np.float32)
    mask = np.zeros((32, 32, 6), dtype=np.uint8)
    mask[8:20, 10:22, 2:4] = 1  # brain on slices 2 and 3 only
    for crop in (0, 16):
        prob = predict_volume(model, image, mask, context_slices=1, crop_multiple=crop)
        assert prob.shape == (outputs, 32, 32, 6)
        lesion = foreground(prob)
        assert np.all(lesion[..., [0, 1, 4, 5]] == 0) and np.any(lesion[..., 2:4] > 0)
        if outputs > 1:
            np.testing.assert_allclose(prob.sum(axis=0), 1.0, atol=1e-5)
