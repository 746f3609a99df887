"""Bad inputs around training and reports (issue 17 items 2-4): cache members that are not arrays, cached
labels outside the manifest's labels, a config that is not an object, --resume that cannot resume, a batch
that cannot fit in memory, manifest paths outside --root, ensemble files outside the model folder, non-numeric
metrics, --shard -1/2. docs/faults.md lists which test covers which fault."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lesionseg.cli.main import main

TINY = [
    "epochs=1",
    "steps_per_epoch=2",
    "batch_size=2",
    "width=4",
    "patch_size=[32,32]",
    "val_max_slices=2",
    "preprocess.target_size=[64,64]",
    "augmentation=none",
]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def train_args(phantom_dir: Path, out: Path, *extra: str) -> list[str]:
    sets = [x for item in TINY for x in ("--set", item)]
    return [
        "train",
        "--manifest",
        str(phantom_dir / "manifest.json"),
        "--root",
        str(phantom_dir),
        "--out",
        str(out),
        "--method",
        "tscnn-focal",
        "--seed",
        "0",
        "--quiet",
        "--cache",
        str(out.parent / "cache"),
        *sets,
        *extra,
    ]


# ------------------------------------------------------------------------------------------ cache
def _entry(phantom_dir: Path, tmp_path: Path):  # noqa: ANN202
    from lesionseg.config.preprocess import PreprocessConfig
    from lesionseg.data.cache import PreprocessCache
    from lesionseg.data.manifest import load_manifest

    manifest = load_manifest(phantom_dir / "manifest.json")
    cache, config = PreprocessCache(tmp_path / "cache"), PreprocessConfig(target_size=(64, 64))
    case = manifest.cases[0]
    first = cache.get(manifest, case, phantom_dir, config)
    return manifest, cache, config, case, first, cache.case_dir(config, case.id)


def _zero_byte_member(folder: Path) -> None:
    """arrays.npz whose 'mask' member has zero bytes: np.load hands it back as bytes, not an array."""
    with np.load(folder / "arrays.npz") as data:
        arrays = {name: data[name] for name in data.files}
    (folder / "arrays.npz").unlink()
    with zipfile.ZipFile(folder / "arrays.npz", "w") as archive:
        for name, value in arrays.items():
            if name == "mask":
                archive.writestr("mask.npy", b"")
            else:
                with archive.open(f"{name}.npy", "w") as member:
                    np.lib.format.write_array(member, value)


def _label_seven(folder: Path) -> None:
    with np.load(folder / "arrays.npz") as data:
        arrays = {name: data[name] for name in data.files}
    arrays["label"] = arrays["label"].copy()
    arrays["label"][0, 0, 0] = 7
    np.savez_compressed(folder / "arrays.npz", **arrays)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [(_zero_byte_member, "member(s) mask that are not arrays"), (_label_seven, "label values [7] outside")],
)
def test_cache_member_that_is_no_array_or_a_label_outside_the_manifest_is_rebuilt(
    phantom_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage,
    expected: str,  # noqa: ANN001
) -> None:
    manifest, cache, config, case, first, folder = _entry(phantom_dir, tmp_path)
    damage(folder)
    with caplog.at_level("WARNING"):
        assert not cache.is_cached(manifest, case, phantom_dir, config)
        again = cache.get(manifest, case, phantom_dir, config)
    assert np.array_equal(again.label, first.label) and set(np.unique(again.label)) <= {0, 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert str(folder) in warnings[0] and expected in warnings[0] and "rebuilding" in warnings[0]


def test_a_label_file_outside_the_manifest_labels_is_refused_naming_it(
    phantom_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import shutil

    from lesionseg.io import read_volume, write_volume

    data = tmp_path / "data"
    shutil.copytree(phantom_dir, data)
    manifest = json.loads((data / "manifest.json").read_text())
    label_path = data / manifest["cases"][0]["label"]
    label = read_volume(label_path, "label")
    array = label.array.copy()
    array[0, 0, 0] = 7
    write_volume(label.with_array(array), label_path)
    out = tmp_path / "pre"
    args = ["preprocess", "--manifest", str(data / "manifest.json"), "--root", str(data), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]  # after the progress bar
    assert "Traceback" not in err and line.startswith("lesionseg preprocess: error: ")
    assert str(label_path) in line and "label values [7] are not among the manifest's labels [0, 1]" in line


# ------------------------------------------------------------------------------------------ config, resume
def test_a_config_file_that_is_a_json_list_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "config.json"
    config.write_text("[1, 2]")
    args = [
        "train",
        "--manifest",
        "x.json",
        "--root",
        ".",
        "--out",
        str(tmp_path / "o"),
        "--config",
        str(config),
    ]
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{config}: a config file holds one JSON object of TrainConfig values, not a list" in line


def test_resume_refuses_a_folder_without_a_checkpoint_and_a_changed_width(
    phantom_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    assert main(train_args(phantom_dir, out, "--resume")) == 2  # nothing to resume: not a fresh start
    line = one_error_line(capsys.readouterr().err)
    assert line.endswith(f"{out}: --resume: no checkpoint (last.pt) of an earlier run here to continue")
    assert not out.exists()
    assert main(train_args(phantom_dir, out)) == 0
    capsys.readouterr()
    assert main(train_args(phantom_dir, out, "--resume", "--set", "width=8")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{out / 'last.pt'}: cannot resume: the checkpoint was trained with width 4 (now 8)" in line


def test_a_batch_that_cannot_fit_in_memory_is_refused_before_anything_is_written(
    phantom_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from lesionseg.train.memory import available_bytes, step_bytes

    out = tmp_path / "run"
    assert main(train_args(phantom_dir, out, "--set", "batch_size=100000000")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "batch_size 100000000 needs about" in line and "GiB free on cpu; lower batch_size" in line
    assert not out.exists()
    # the estimate grows with the batch and stays far below the free memory for the tiny run
    assert step_bytes(10**6, 8, 10**5) < step_bytes(10**6, 16, 10**5)
    assert available_bytes(__import__("torch").device("cpu")) > step_bytes(2 * 10**6, 2, 10**6)


# ------------------------------------------------------------------------------------------ paths
@pytest.fixture
def escaping_manifest(phantom_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(manifest, root): a copy of the phantom set whose first case's FLAIR is read from ../outside."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(phantom_dir, root)
    (tmp_path / "outside").mkdir()
    shutil.move(root / "phantom_000" / "flair.nii.gz", tmp_path / "outside" / "flair.nii.gz")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["cases"][0]["images"]["FLAIR"] = "../outside/flair.nii.gz"
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root / "manifest.json", root


@pytest.mark.parametrize("command", ["dataset", "preprocess", "train", "cv", "predict"])
def test_manifest_paths_outside_root_are_refused_unless_allowed(
    escaping_manifest: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture, command: str
) -> None:
    manifest, root = escaping_manifest
    out = tmp_path / "out"
    args = {
        "dataset": ["dataset", "check", str(manifest), "--root", str(root)],
        "preprocess": ["preprocess", "--manifest", str(manifest), "--root", str(root), "--out", str(out)],
        "train": [
            "train",
            "--manifest",
            str(manifest),
            "--root",
            str(root),
            "--out",
            str(out),
            "--seed",
            "0",
        ],
        "cv": ["cv", "--manifest", str(manifest), "--root", str(root), "--out", str(out), "--seed", "0"],
        "predict": [
            "predict",
            "--manifest",
            str(manifest),
            "--root",
            str(root),
            "--out",
            str(out),
            "--model",
        ],
    }[command]
    if command == "predict":
        from lesionseg.models import bundled_model_path

        args.append(str(bundled_model_path()))
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"lesionseg {command}: error: {manifest}: case 'phantom_000': channel FLAIR path")
    assert "'../outside/flair.nii.gz' lies outside --root" in line and "--allow-outside-root" in line
    assert not out.exists()
    if command == "dataset":  # allowed: read as before
        assert main([*args, "--allow-outside-root"]) == 0


def test_ensemble_file_listing_members_outside_its_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import shutil

    from lesionseg.errors import LesionsegError
    from lesionseg.infer.ensemble_file import ENSEMBLE_FILE, expand_model_folders
    from lesionseg.models import bundled_model_path

    bundled = bundled_model_path()
    folder = tmp_path / "model"
    shutil.copytree(bundled, folder)
    saved = json.loads((folder / ENSEMBLE_FILE).read_text())
    assert len(expand_model_folders([folder])) == len(saved["members"])  # members inside: read
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(folder / "seed_0", elsewhere)
    saved["members"][0] = "../elsewhere/best.pt"
    (folder / ENSEMBLE_FILE).write_text(json.dumps(saved))
    with pytest.raises(LesionsegError, match="lists member .*elsewhere/best.pt outside its model folder"):
        expand_model_folders([folder])
    args = ["segment", "f.nii.gz", "t.nii.gz", "-o", str(tmp_path / "m.nii.gz"), "--model", str(folder)]
    assert main(args) == 2
    assert "outside its model folder" in one_error_line(capsys.readouterr().err)


def test_report_of_a_metrics_table_with_a_word_among_numbers_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "metrics.csv").write_text("case,label,dsc,hd95\nc1,1,0.5,3.0\nc2,1,high,nan\n")
    assert main(["report", str(tmp_path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{tmp_path / 'metrics.csv'}: metrics table line 3, column 'dsc': 'high' is not a number" in line


def test_a_negative_shard_gets_the_shard_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["predict", "--flair", "f.nii.gz", "--t1", "t.nii.gz", "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as caught:
        main([*args, "--shard", "-1/2"])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and "expected I/N with 0 <= I < N, got '-1/2'" in err
    assert "expected one argument" not in err
