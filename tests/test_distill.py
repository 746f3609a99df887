"""Distillation (train/distill.py): the loss, soft targets through the sampler, and a student trained end to
end on a phantom teacher."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lesionseg.config.train import resolve_train_config
from lesionseg.data.cache import PreprocessCache
from lesionseg.data.manifest import load_manifest
from lesionseg.errors import LesionsegError
from lesionseg.phantom import write_phantom_dataset
from lesionseg.train.distill import distillation_loss
from lesionseg.train.run import train_model
from lesionseg.train.samples import SliceBatcher


def test_distillation_loss_is_least_at_the_teacher_and_agrees_for_sigmoid_and_softmax() -> None:
    soft = torch.tensor([[[0.9, 0.2], [0.5, 0.01]]])
    at_teacher = torch.logit(soft)[:, None]
    worse = at_teacher + torch.tensor([[[[1.0, -1.0], [0.5, 2.0]]]])
    assert distillation_loss(at_teacher, soft) < distillation_loss(worse, soft)
    two_class = torch.cat([torch.zeros_like(at_teacher), at_teacher], dim=1)  # softmax of (0, l) = sigmoid(l)
    torch.testing.assert_close(distillation_loss(two_class, soft), distillation_loss(at_teacher, soft))
    logits = at_teacher.clone().requires_grad_(True)
    distillation_loss(logits, soft).backward()
    assert logits.grad.abs().max() < 1e-6  # the teacher's probabilities are the optimum


def test_soft_targets_travel_with_the_slice_through_augmentation() -> None:
    rng = np.random.default_rng(0)
    brain = np.zeros((48, 48, 5), np.uint8)
    brain[8:40, 8:40] = 1
    label = np.zeros_like(brain)
    label[18:30, 20:26, 1:4] = 1
    image = (rng.normal(0, 0.1, (1, 48, 48, 5)) + 2 * label).astype(np.float32)
    case = SimpleNamespace(image=image, label=label, mask=brain, subject="a", soft=label.astype(np.float16))
    overrides = ["batch_size=8", "augmentation=lesion", "patch_size=null", "intensity_augmentation=true"]
    cfg = resolve_train_config("lesion-unet", "cpu", overrides=overrides)
    batch = SliceBatcher([case], cfg, [0, 1], 2).batch(np.random.default_rng(1))
    assert batch["images"].shape[1] == cfg.context_slices  # one modality; the soft target is apart
    assert batch["soft"].shape == batch["targets"].shape
    assert 0.0 <= batch["soft"].min() and batch["soft"].max() <= 1.0
    moved = batch["soft"] > 0.5  # a teacher equal to the label stays on the (nearest-neighbour) label
    agree = (moved == (batch["targets"] > 0)).mean()
    assert agree > 0.99 and batch["targets"].sum() > 0


def test_student_trains_on_a_teacher_and_refuses_a_teacher_of_another_recipe(tmp_path) -> None:
    manifest = load_manifest(write_phantom_dataset(tmp_path / "data", 2, seed=0, shape=(48, 56, 24)))
    base = ["steps=2", "budget_s=null", "evaluations=1", "width=4"]
    cache = PreprocessCache(tmp_path / "cache")
    teacher_cfg = resolve_train_config("lesion-unet", overrides=base)
    subjects = (["phantom_000"], ["phantom_001"])
    data = tmp_path / "data"
    teacher = train_model(teacher_cfg, manifest, data, *subjects, tmp_path / "t", cache, progress=False)
    student_cfg = resolve_train_config("lesion-unet", overrides=[*base, f"teacher={teacher.best}"])
    student = train_model(student_cfg, manifest, data, *subjects, tmp_path / "s", cache, progress=False)
    assert json.loads((tmp_path / "s" / "config.json").read_text())["teacher"] == str(teacher.best)
    assert student.best.is_file()
    other = replace(student_cfg, preprocess=replace(student_cfg.preprocess, target_size=(64, 64)))
    with pytest.raises(LesionsegError, match="preprocesses differently"):
        train_model(other, manifest, data, *subjects, tmp_path / "o", cache, progress=False)
