"""The lesion recipe: budget -> step count, the schedule over it, calibration saved and used by predict,
forced lesion share, intensity augmentation, --device and the train overwrite guard."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lesionseg.augment import (
    IntensityParams,
    apply_intensity,
    drop_modalities,
    reduce_lesion_contrast,
    sample_intensity_params,
)
from lesionseg.config.train import DEFAULT_METHOD, resolve_train_config
from lesionseg.data.cache import PreprocessCache
from lesionseg.data.manifest import load_manifest
from lesionseg.errors import LesionsegError
from lesionseg.infer.predictor import Predictor, load_members
from lesionseg.nets.checkpoint import load_checkpoint
from lesionseg.nets.device import resolve_device
from lesionseg.train.budget import plan_steps, step_learning_rate
from lesionseg.train.calibrate import calibrate
from lesionseg.train.run import train_model
from lesionseg.train.samples import SliceBatcher

RECIPE_TINY = ["width=4", "batch_size=2", "evaluations=2", "val_max_slices=4"]


def train_cli(*args: str) -> subprocess.CompletedProcess:
    """``lesionseg train ARGS`` in a fresh process (stderr and exit code as a user sees them)."""
    command = [sys.executable, "-m", "lesionseg.cli.main", "train", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def recipe(*extra: str):  # noqa: ANN201
    return resolve_train_config(DEFAULT_METHOD, "cpu", overrides=[*RECIPE_TINY, *extra])


def train(phantom_dir: Path, out: Path, cfg):  # noqa: ANN001, ANN201
    manifest = load_manifest(phantom_dir / "manifest.json")
    subjects = manifest.subjects
    cache = PreprocessCache(out.parent / "cache")
    return train_model(cfg, manifest, phantom_dir, subjects[:2], subjects[2:], out, cache, progress=False)


@pytest.mark.parametrize(
    ("options", "seeds"),
    [
        ([], [0, 1, 2]),  # the shipped recipe: three networks of 5 CPU minutes, averaged
        (["--method", "lesion-unet", "--budget", "2m"], [0, 1, 2]),
        (["--seed", "4"], [4]),
        (["--set", "seed=5"], [5]),
        (["--seeds", "7", "8"], [7, 8]),
        (["--method", "tscnn-focal"], [0]),  # the papers' presets: one network, the config's seed
    ],
)
def test_train_and_cv_default_to_the_recipes_seeds(options: list[str], seeds: list[int]) -> None:
    from lesionseg.cli.main import build_parser
    from lesionseg.cli.options import member_configs

    for command in ("train", "cv"):
        argv = [command, "--manifest", "ms_flair_t1", "--root", ".", "--out", "o", *options]
        configs = member_configs(build_parser().parse_args(argv))
        assert [c.seed for c in configs] == seeds
        budget = 120 if "2m" in options else 300
        assert all(c.budget_s == budget for c in configs if c.method == "lesion-unet")


def test_the_default_method_is_the_budget_planned_recipe() -> None:
    cfg = resolve_train_config(DEFAULT_METHOD, "cpu")
    assert cfg.method == "lesion-unet" and cfg.lr_schedule == "poly" and cfg.budget_s == 300
    assert cfg.calibrate and cfg.lesion_sample_fraction == pytest.approx(1 / 3) and cfg.patch_size is None
    assert cfg.loss == "dice_bce_loss" and cfg.intensity_augmentation


@pytest.mark.parametrize(
    ("budget", "spent", "step_s", "val_s", "cal_s", "expected"),
    [(100.0, 10.0, 0.5, 2.0, 5.0, int((100 - 10 - 10 * 2 - 5) / 0.5)), (60.0, 0.0, 0.1, 1.0, 0.0, 500)],
)
def test_the_budget_becomes_a_step_count_split_into_evaluations(  # noqa: PLR0913
    budget: float, spent: float, step_s: float, val_s: float, cal_s: float, expected: int
) -> None:
    cfg = replace(recipe(), budget_s=budget, evaluations=10)
    plan = plan_steps(cfg, spent, step_s, val_s, cal_s)
    assert plan.epochs == 10 and plan.steps == plan.epochs * plan.steps_per_epoch
    assert expected <= plan.steps < expected + 10


def test_fixed_steps_win_over_the_budget() -> None:
    plan = plan_steps(replace(recipe(), steps=37, budget_s=1e6, evaluations=5), 0.0, 1.0, 1.0, 0.0)
    assert (plan.steps, plan.epochs, plan.steps_per_epoch) == (40, 5, 8)


@pytest.mark.parametrize("schedule", ["poly", "cosine"])
def test_the_schedule_warms_up_then_ends_at_the_last_step(schedule: str) -> None:
    cfg = replace(recipe(), lr_schedule=schedule, warmup_fraction=0.1, lr=1e-3)
    total = 200
    lrs = [step_learning_rate(cfg, s, total) for s in range(total + 1)]
    assert lrs[0] == pytest.approx(1e-3 / 20) and lrs[19] == pytest.approx(1e-3)  # 20 warm-up steps
    assert all(a >= b for a, b in zip(lrs[19:], lrs[20:], strict=False))  # then never rises
    assert 0 < lrs[total - 1] < 2e-5 and lrs[total] == pytest.approx(0.0, abs=1e-12)


def test_a_budgeted_run_records_its_plan_and_trains_exactly_that_many_steps(
    phantom_dir: Path, tmp_path: Path
) -> None:
    result = train(phantom_dir, tmp_path / "run", recipe("budget_s=3"))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert saved["steps"] == plan["steps"] == saved["epochs"] * saved["steps_per_epoch"]
    trained = sum(h["steps"] for h in result.history)
    if result.stopped_by == "budget":  # the safety net (25 % over budget): a loaded machine can slow a
        assert plan["steps"] / 2 <= trained < plan["steps"]  # 3-second plan's steps by more than that
    else:
        assert result.stopped_by == "epochs" and trained == plan["steps"]
    assert plan["step_seconds"] > 0 and plan["validation_seconds"] > 0
    assert result.history[-1]["lr"] < result.history[0]["lr"]  # the decay reached the end


def test_fixed_steps_train_exactly_that_many(phantom_dir: Path, tmp_path: Path) -> None:
    result = train(phantom_dir, tmp_path / "run", recipe("steps=6", "budget_s=null"))
    assert sum(h["steps"] for h in result.history) == 6
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 6


def test_calibration_picks_the_threshold_and_size_that_remove_noise() -> None:
    rng = np.random.default_rng(0)
    ref = np.zeros((40, 40, 20), bool)
    ref[10:20, 10:20, 5:10] = True
    prob = np.where(ref, 0.7, 0.05).astype(np.float32)
    noise = rng.random(ref.shape) < 0.002  # isolated false-positive voxels of high probability
    prob[noise & ~ref] = 0.95
    result = calibrate([prob], [ref], [1.0])
    assert result.min_lesion_mm3 >= 3.0 and result.threshold <= 0.7
    assert result.val_dice == pytest.approx(1.0) and result.default_dice < result.val_dice


def test_calibrated_threshold_and_size_are_saved_and_used_by_predict(
    phantom_dir: Path, tmp_path: Path
) -> None:
    result = train(phantom_dir, tmp_path / "run", recipe("steps=4", "budget_s=null"))
    state = load_checkpoint(result.best)
    calibration = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert state["threshold"] == calibration["threshold"]
    assert state["min_lesion_mm3"] == calibration["min_lesion_mm3"]
    predictor = Predictor(load_members([result.best]))
    assert predictor.threshold == state["threshold"]
    assert predictor.min_lesion_mm3 == state["min_lesion_mm3"]
    explicit = Predictor(load_members([result.best]), threshold=0.42, min_lesion_mm3=7.0)
    assert (explicit.threshold, explicit.min_lesion_mm3) == (0.42, 7.0)


def test_the_mirrored_prediction_is_calibrated_saved_and_used_by_predict(
    phantom_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lesionseg.train.trainer as trainer
    from lesionseg.cli.main import main

    mirrored: list[bool] = []
    original = trainer.predict_volume

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        mirrored.append(bool(kwargs.get("flip_tta", False)))
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "predict_volume", recording)
    result = train(phantom_dir, tmp_path / "run", recipe("steps=4", "budget_s=null"))
    assert True in mirrored  # the recipe calibrates on the mirror-averaged probabilities ...
    assert Predictor(load_members([result.best])).flip_tta is True  # ... so predict uses them by default
    assert Predictor(load_members([result.best]), flip_tta=False).flip_tta is False
    mirrored.clear()
    plain = train(phantom_dir, tmp_path / "plain", recipe("steps=4", "budget_s=null", "flip_tta=false"))
    assert mirrored and True not in mirrored
    assert Predictor(load_members([plain.best])).flip_tta is False
    with pytest.raises(LesionsegError, match="test-time mirroring"):  # members that disagree: no default
        Predictor(load_members([result.best, plain.best]))
    assert Predictor(load_members([result.best, plain.best]), flip_tta=False).flip_tta is False

    case = sorted(p for p in phantom_dir.iterdir() if p.is_dir())[0]
    inputs = [
        "--model",
        str(result.best),
        "--flair",
        str(case / "flair.nii.gz"),
        "--t1",
        str(case / "t1.nii.gz"),
    ]
    for flag, expected in (([], True), (["--no-tta"], False)):
        out = tmp_path / f"out{len(flag)}"
        assert main(["predict", *inputs, "--out", str(out), *flag]) == 0
        sidecar = next(out.glob("*_mask.json"))
        assert json.loads(sidecar.read_text())["tta"] is expected


def test_a_third_of_every_batch_is_forced_onto_lesion(phantom_dir: Path, tmp_path: Path) -> None:
    manifest = load_manifest(phantom_dir / "manifest.json")
    cache = PreprocessCache(tmp_path / "cache")
    cfg = recipe("batch_size=6", "intensity_augmentation=false", "augmentation=none")
    cases = [cache.get(manifest, c, phantom_dir, cfg.preprocess) for c in manifest.cases]
    batcher = SliceBatcher(cases, cfg, [0, 1], 1)
    assert 0 < len(batcher.lesion_entries) < len(batcher.entries)  # lesion-free slices are drawn too
    rng = np.random.default_rng(0)
    for _ in range(5):
        targets = batcher.batch(rng)["targets"]
        assert all(t.any() for t in targets[:2])  # round(6 / 3) forced samples


def test_subject_balance_gives_every_subject_the_same_share_of_draws(
    phantom_dir: Path, tmp_path: Path
) -> None:
    manifest = load_manifest(phantom_dir / "manifest.json")
    cache = PreprocessCache(tmp_path / "cache")
    cases = [
        replace(cache.get(manifest, c, phantom_dir, recipe().preprocess), subject=s)
        for c, s in zip(manifest.cases[:3], ["a", "a", "b"], strict=True)  # subject a has two scans
    ]
    subject_of_case = np.array([0, 0, 1])
    shares = {}
    for balance in ("slice", "subject"):
        batcher = SliceBatcher(cases, recipe(f"sample_balance={balance}"), [0, 1], 1)
        rng = np.random.default_rng(0)
        for name, pool in (("all", batcher.entries), ("lesion", batcher.lesion_entries)):
            weights = batcher.weights if name == "all" else batcher.lesion_weights
            picks = batcher.draw(len(pool), weights, rng, 20000)
            index = pool if name == "lesion" else range(len(pool))
            cases_drawn = np.array([batcher.entries[i].case for i in index])[picks]
            shares[balance, name] = float(np.mean(subject_of_case[cases_drawn] == 1))
    assert shares["subject", "all"] == pytest.approx(0.5, abs=0.02)
    assert shares["subject", "lesion"] == pytest.approx(0.5, abs=0.02)
    assert shares["slice", "all"] == pytest.approx(1 / 3, abs=0.05)  # b holds one of three similar scans


def test_intensity_augmentation_is_replayable_and_identity_by_default() -> None:
    image = np.random.default_rng(1).normal(size=(2, 16, 16)).astype(np.float32)
    assert apply_intensity(image, IntensityParams()) is image
    params = sample_intensity_params(np.random.default_rng(3))
    assert np.array_equal(apply_intensity(image, params), apply_intensity(image, params))
    draws = [sample_intensity_params(np.random.default_rng(s)) for s in range(200)]
    assert 0.2 < np.mean([d.gamma != 1.0 for d in draws]) < 0.4  # gamma with probability 0.3


def test_device_cuda_without_cuda_is_a_one_line_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")  # the error path only exists without it
    assert resolve_device("auto").type == "cpu" and resolve_device("cpu").type == "cpu"
    with pytest.raises(LesionsegError, match="no CUDA device"):
        resolve_device("cuda")
    proc = train_cli("--manifest", "x", "--root", ".", "--out", "o", "--device", "cuda")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "CUDA" in proc.stderr


def test_train_refuses_to_replace_an_earlier_run(phantom_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.pt").write_bytes(b"earlier")
    proc = train_cli(
        "--manifest",
        str(phantom_dir / "manifest.json"),
        "--root",
        str(phantom_dir),
        "--out",
        str(out),
        "--steps",
        "2",
    )
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "best.pt").read_bytes() == b"earlier"


def test_an_earlier_run_of_another_shape_is_refused_and_foreign_folders_are_not_ours(tmp_path: Path) -> None:
    from lesionseg.cli.train import earlier_run_files

    out = tmp_path / "run"
    (out / "seed_1").mkdir(parents=True)
    (out / "seed_1" / "last.pt").write_bytes(b"earlier")  # three seeds trained here before
    (out / "experiment_a").mkdir()
    (out / "experiment_a" / "best.pt").write_bytes(b"someone else's")  # not a folder train names
    (out / "wmh-dice_seed_0").mkdir()
    (out / "wmh-dice_seed_0" / "best.pt").write_bytes(b"earlier")
    assert earlier_run_files(out) == [out / "seed_1" / "last.pt", out / "wmh-dice_seed_0" / "best.pt"]
    proc = train_cli("--manifest", "ms_flair_t1", "--root", ".", "--out", str(out), "--seed", "3")
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and "seed_1" in proc.stderr
    assert (out / "seed_1" / "last.pt").read_bytes() == b"earlier"
    assert earlier_run_files(tmp_path / "missing") == []


def test_every_folder_member_folder_names_is_recognised_as_one() -> None:
    from lesionseg.config.train import ensemble_members, is_member_folder, member_folder

    for method in ("lesion-unet", "wmh-ensemble"):
        members = [
            resolve_train_config(m, overrides=[f"seed={s}"]) for m in ensemble_members(method) for s in (0, 1)
        ]
        names = [member_folder(c, members) for c in members]
        assert len(set(names)) == len(members) and all(is_member_folder(n) for n in names)
    assert not any(is_member_folder(n) for n in ("cache", "experiment_a", "seed_x", "wmh-ensemble", ""))


def test_calibration_does_not_pick_one_blob_that_detects_every_lesion() -> None:
    ref = np.zeros((40, 40, 20), bool)
    ref[5:8, 5:8, 5:8] = ref[30:33, 30:33, 10:13] = True
    prob = np.full(ref.shape, 0.03, np.float32)  # the whole volume just above the lowest threshold
    prob[ref] = 0.8
    result = calibrate([prob], [ref], [1.0])
    assert result.threshold > 0.03 and result.val_dice == pytest.approx(1.0)


def test_without_a_validation_subject_the_checkpoint_is_the_last(phantom_dir: Path, tmp_path: Path) -> None:
    manifest = load_manifest(phantom_dir / "manifest.json")
    cfg = recipe("steps=6", "budget_s=null", "evaluations=3", "calibrate=false")
    result = train_model(
        cfg,
        manifest,
        phantom_dir,
        manifest.subjects[:1],
        [],
        tmp_path / "run",
        PreprocessCache(tmp_path / "c"),
        progress=False,
    )
    assert load_checkpoint(result.best)["epoch"] == load_checkpoint(result.last)["epoch"] == 3


@pytest.mark.parametrize("choice", ["last", "best"])
def test_the_recipe_predicts_with_its_final_weights_unless_asked_for_the_best(
    phantom_dir: Path, tmp_path: Path, choice: str
) -> None:
    assert resolve_train_config(DEFAULT_METHOD, "cpu").checkpoint == "last"
    cfg = recipe("steps=8", "budget_s=null", "evaluations=4", "calibrate=false", f"checkpoint={choice}")
    result = train(phantom_dir, tmp_path / "run", cfg)
    chosen = load_checkpoint(result.best)["epoch"]
    dice = [h["val_dice"] for h in result.history]
    if choice == "last":
        assert chosen == load_checkpoint(result.last)["epoch"] == 4
    else:  # the first epoch of the highest validation Dice
        assert chosen == int(np.argmax(dice)) + 1


def test_a_wmh_epoch_is_one_pass_over_the_training_slices(phantom_dir: Path, tmp_path: Path) -> None:
    cfg = resolve_train_config(
        "wmh-dice",
        "paper",
        overrides=["epochs=1", "width=4", "batch_size=16", "val_max_slices=2", "patch_size=[32,32]"],
    )
    assert cfg.steps_per_epoch == 0
    result = train(phantom_dir, tmp_path / "run", cfg)
    manifest = load_manifest(phantom_dir / "manifest.json")
    cases = [
        PreprocessCache(tmp_path / "cache").get(manifest, c, phantom_dir, cfg.preprocess)
        for c in manifest.cases[:2]
    ]
    slices = len(SliceBatcher(cases, cfg, [0, 1], 1))
    assert result.history[0]["steps"] == -(-slices // 16) > 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('network_options={"bogus": 1}', "has no option(s) bogus"),
        ('network_options={"batch_norm": "x"}', "expected bool"),
        ('loss_params={"nope": 2}', "has no parameter(s) nope"),
        ("lr=Infinity", "lr must be a positive finite number"),
        ("threshold=1.5", "threshold must lie in (0, 1)"),
        ("lesion_sample_fraction=2", "lesion_sample_fraction must lie in [0, 1]"),
    ],
)
def test_bad_options_fail_in_one_line_before_any_preprocessing(
    override: str, message: str, tmp_path: Path
) -> None:
    proc = train_cli(
        "--manifest", "no-such-manifest", "--root", ".", "--out", str(tmp_path / "o"), "--set", override
    )  # the manifest does not exist: the options are checked first
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_slice_inference_can_show_its_progress(capsys: pytest.CaptureFixture) -> None:
    from lesionseg.infer.slicewise import predict_volume

    model = torch.nn.Conv2d(2, 1, 3, padding=1)
    image = np.zeros((2, 8, 8, 40), np.float32)
    predict_volume(model, image, None, 1, batch_size=8, progress=True)
    assert "slices" in capsys.readouterr().err
    predict_volume(model, image, None, 1, batch_size=8)
    assert capsys.readouterr().err == ""


def test_lesion_contrast_moves_lesions_towards_their_surround_and_nothing_far_away() -> None:
    image = np.zeros((2, 32, 32), np.float32)
    image[:, 4:28, 4:28] = 0.5  # brain
    image[0, 14:18, 14:18] = 3.0  # a bright lesion on FLAIR
    lesion = np.zeros((32, 32), bool)
    lesion[14:18, 14:18] = True
    assert reduce_lesion_contrast(image, lesion, 1.0) is image
    assert reduce_lesion_contrast(image, np.zeros_like(lesion), 0.5) is image
    out = reduce_lesion_contrast(image, lesion, 0.5)
    assert out[0, 15, 15] == pytest.approx(0.5 + 0.5 * 2.5, abs=0.05)  # half its contrast to the ring
    assert np.array_equal(out[1], image[1])  # a channel whose lesion equals its surround is unchanged
    assert np.array_equal(out[:, :8], image[:, :8]) and np.all(out[:, 4:28, 4:28] >= 0.5)
    assert np.all(out[image == 0] == 0)  # background stays background


def test_modality_dropout_blanks_every_modality_but_the_first_in_every_context_slice() -> None:
    image = np.arange(1, 6 * 4 * 4 + 1, dtype=np.float32).reshape(6, 4, 4)  # 3 context slices x 2 modalities
    out = drop_modalities(image, 2)
    assert np.array_equal(out[0::2], image[0::2])  # FLAIR of t-1, t, t+1 kept
    assert not out[1::2].any()  # T1 of each blanked
    assert drop_modalities(image, 1) is image
    assert np.all(image > 0)  # the input is not changed in place


@dataclass
class SmallCase:
    image: np.ndarray
    label: np.ndarray
    mask: np.ndarray


def test_the_sampler_applies_modality_dropout_at_its_rate() -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((32, 32, 4), np.uint8)
    mask[4:28, 4:28] = 1
    label = np.zeros_like(mask)
    label[12:16, 12:16] = 1
    image = (rng.normal(size=(2, 32, 32, 4)) * mask + 5 * mask).astype(np.float32)
    for rate, blanked in ((1.0, 20), (0.0, 0)):
        cfg = resolve_train_config(DEFAULT_METHOD, "cpu", overrides=[f"modality_dropout={rate}"])
        batcher = SliceBatcher([SmallCase(image, label, mask)], cfg, label_values=[0, 1], num_outputs=1)
        samples = [batcher.sample(batcher.entries[0], rng)[0] for _ in range(20)]
        assert sum(not s[1].any() for s in samples) == blanked
        assert all(s[0].any() for s in samples)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--budget", "0"], "argument --budget/--time-budget: must be a positive duration, got '0'"),
        (["--budget=-5m"], "argument --budget/--time-budget: not a duration"),
        (["--steps", "-3"], "argument --steps: must be 1 or more, got -3"),
        (["--steps", "x"], "argument --steps: not a whole number: 'x'"),
    ],
)
def test_budget_and_steps_are_checked_as_the_options_the_user_typed(
    option: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from lesionseg.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "train",
                "--manifest",
                "ms_flair_t1",
                "--root",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
                *option,
            ]
        )
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
