"""Training: exact resume, determinism, NaN guard, time budget, presets, learning-rate schedule."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lesionseg.config.train import METHOD_PRESETS, TrainConfig, resolve_train_config
from lesionseg.data.cache import PreprocessCache
from lesionseg.data.manifest import load_manifest
from lesionseg.errors import LesionsegError
from lesionseg.nets.checkpoint import load_checkpoint
from lesionseg.train.budget import epoch_learning_rate as learning_rate
from lesionseg.train.run import train_model

TINY = [
    "epochs=2",
    "steps_per_epoch=3",
    "batch_size=2",
    "width=4",
    "patch_size=[32,32]",
    "val_max_slices=4",
    "preprocess.target_size=[64,64]",
    "augmentation=none",
]


def tiny_config(method: str = "tscnn-focal", *extra: str) -> TrainConfig:
    return resolve_train_config(method, "cpu", overrides=[*TINY, *extra])


def run(phantom_dir: Path, out: Path, cfg: TrainConfig, resume: bool = False):  # noqa: ANN201
    manifest = load_manifest(phantom_dir / "manifest.json")
    subjects = manifest.subjects
    cache = PreprocessCache(out.parent / "cache")
    return train_model(
        cfg, manifest, phantom_dir, subjects[:2], subjects[2:], out, cache, resume=resume, progress=False
    )


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(phantom_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_config("tscnn-focal-aug", "epochs=3")
    run(phantom_dir, tmp_path / "straight", cfg)
    run(phantom_dir, tmp_path / "interrupted", tiny_config("tscnn-focal-aug", "epochs=1"))
    result = run(phantom_dir, tmp_path / "interrupted", cfg, resume=True)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    a, b = weights(tmp_path / "straight" / "last.pt"), weights(tmp_path / "interrupted" / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_fixed_seed_is_deterministic_and_another_seed_is_not(phantom_dir: Path, tmp_path: Path) -> None:
    run(phantom_dir, tmp_path / "a", tiny_config("resunet-focal"))
    run(phantom_dir, tmp_path / "b", tiny_config("resunet-focal"))
    run(phantom_dir, tmp_path / "c", tiny_config("resunet-focal", "seed=1"))
    a, b, c = (weights(tmp_path / n / "last.pt") for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_outputs_of_a_run(phantom_dir: Path, tmp_path: Path) -> None:
    result = run(phantom_dir, tmp_path / "run", tiny_config("wmh-dice"))
    for name in ("config.json", "last.pt", "best.pt", "history.csv", "loss_curve.png"):
        assert (tmp_path / "run" / name).exists(), name
    state = load_checkpoint(result.best)
    assert state["config"]["method"] == "wmh-dice"
    assert state["channel_names"] == ["FLAIR", "T1"]
    assert len(result.history) == 2 and all(math.isfinite(h["train_loss"]) for h in result.history)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
    phantom_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    run(phantom_dir, out, tiny_config("tscnn-focal", "epochs=1"))
    good = weights(out / "last.pt")
    import lesionseg.train.trainer as trainer

    monkeypatch.setattr(
        trainer, "loss_on_batch", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True)
    )
    with pytest.raises(LesionsegError, match="loss became nan"):
        run(phantom_dir, out, tiny_config("tscnn-focal", "epochs=3"), resume=True)
    after = load_checkpoint(out / "last.pt")
    assert after["epoch"] == 1
    assert all(torch.equal(good[k], after["model"][k]) for k in good)


def test_budget_stops_an_epoch_schedule_cleanly_with_a_checkpoint(phantom_dir: Path, tmp_path: Path) -> None:
    result = run(phantom_dir, tmp_path / "run", tiny_config("tscnn-focal", "epochs=50", "budget_s=0.5"))
    assert result.stopped_by == "budget"
    assert len(result.history) < 50
    assert (tmp_path / "run" / "best.pt").exists()


def test_wmh_learning_rate_schedule_is_constant_then_exponential() -> None:
    cfg = resolve_train_config("wmh-dice", "paper")
    assert [learning_rate(cfg, e) for e in range(10)] == [1e-5] * 10
    assert learning_rate(cfg, 10) == pytest.approx(1e-5 * math.exp(-0.1))
    assert learning_rate(cfg, 12) == pytest.approx(learning_rate(cfg, 11) * math.exp(-0.1))


def test_paper_profile_keeps_the_papers_numbers() -> None:
    tscnn = resolve_train_config("tscnn-sbfl", "paper")
    assert (tscnn.lr, tscnn.batch_size, tscnn.epochs, tscnn.steps_per_epoch) == (2e-4, 8, 50, 50)
    assert tscnn.weight_decay == 0 and tscnn.width == 64 and tscnn.patch_size == (128, 128)
    assert tscnn.loss == "self_balancing_focal_loss" and tscnn.loss_params["gamma"] == 1.0
    ftl = resolve_train_config("wmh-focal-tversky", "paper")
    assert ftl.lr == 1e-6 and ftl.loss_params == {"alpha": 0.7, "beta": 0.3, "gamma": 4.0}
    assert ftl.early_stopping_patience == 5 and ftl.augmented_copies == 10
    assert resolve_train_config("pixelnet-balanced", "paper").pixels_per_image == 2000
    assert set(METHOD_PRESETS) >= {"resunet-focal", "tscnn-focal", "tscnn-focal-aug", "tscnn-sbfl"}


def test_overrides_are_type_checked() -> None:
    with pytest.raises(LesionsegError, match="lr"):
        resolve_train_config("tscnn-focal", overrides=["lr=fast"])
    with pytest.raises(LesionsegError, match="unknown"):
        resolve_train_config("tscnn-focal", overrides=["no_such_key=1"])
    with pytest.raises(LesionsegError, match="unknown method"):
        resolve_train_config("no-such-method")


def test_augmented_copies_never_invent_label_values() -> None:
    from lesionseg.augment import apply_affine_2d, sample_tscnn_params, sample_wmh_params

    rng = np.random.default_rng(0)
    label = np.zeros((40, 36), np.uint8)
    label[10:20, 8:14], label[25:30, 20:30] = 1, 4
    image = rng.normal(size=(2, 40, 36)).astype(np.float32)
    for sampler in (sample_wmh_params, sample_tscnn_params):
        for _ in range(10):
            _, out = apply_affine_2d(image, label, sampler(rng))
            assert set(np.unique(out)) <= {0, 1, 4}


def test_flips_mirror_the_axis_they_name() -> None:
    from lesionseg.augment import AffineParams, apply_affine_2d

    image = np.arange(2 * 5 * 4, dtype=np.float32).reshape(2, 5, 4)
    label = (image[0] % 3 == 0).astype(np.uint8)
    for params, axes in (
        (AffineParams(flip_rows=True), (0,)),
        (AffineParams(flip_cols=True), (1,)),
        (AffineParams(flip_rows=True, flip_cols=True), (0, 1)),
    ):
        out, out_label = apply_affine_2d(image, label, params)
        np.testing.assert_allclose(out, np.flip(image, axis=tuple(a + 1 for a in axes)), atol=1e-5)
        np.testing.assert_array_equal(out_label, np.flip(label, axis=axes))


def test_lesion_flip_axes_choose_the_flipped_axis_and_cols_keeps_the_earlier_draws() -> None:
    from lesionseg.augment import sample_lesion_params

    def draws(axes: str) -> list:
        rng = np.random.default_rng(3)
        return [sample_lesion_params(rng, axes) for _ in range(200)]

    cols, rows, both = draws("cols"), draws("rows"), draws("both")
    assert not any(p.flip_rows for p in cols) and not any(p.flip_cols for p in rows)
    # "rows" flips exactly where "cols" did, from the same draws; the other parameters are the same
    assert [p.flip_cols for p in cols] == [p.flip_rows for p in rows]
    assert [p.angle_deg for p in cols] == [p.angle_deg for p in rows]
    assert 60 < sum(p.flip_rows for p in both) < 140 and 60 < sum(p.flip_cols for p in both) < 140
    assert any(p.flip_rows and p.flip_cols for p in both) and any(p.flip_rows != p.flip_cols for p in both)
    rng = np.random.default_rng(3)
    rotate, scale = rng.random(2) < 0.2  # the draws as they were before flip_axes existed
    if scale:
        rng.uniform(0.7, 1.4)
    angle = float(rng.uniform(-30, 30)) if rotate else 0.0
    assert (cols[0].angle_deg, cols[0].flip_cols) == (angle, bool(rng.random() < 0.5))
