"""TrainConfig and the papers' methods as presets (values, not subclasses). No torch.

A preset is a dict of field values applied over the defaults; every value can then be overridden from a
config file or ``--set key=value``. The resolved config is saved beside every checkpoint.

Paper settings (GPU) and CPU-sized settings are both here: ``profile="paper"`` keeps the papers' numbers;
``profile="cpu"`` (the default on a machine without a GPU) shrinks widths, epochs and steps so that a fold
trains in minutes on 2 cores, and says so in the saved config.
"""

from __future__ import annotations

import json
import math
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lesionseg.config import apply_overrides, from_dict, to_dict
from lesionseg.config.preprocess import PreprocessConfig
from lesionseg.errors import LesionsegError

SliceFilterName = Literal["all", "brain", "lesion"]
DeviceName = Literal["auto", "cpu", "cuda"]
DEVICE_CHOICES: tuple[str, ...] = typing.get_args(DeviceName)  # auto = CUDA when available


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs besides the data."""

    method: str = "tscnn-focal"
    profile: Literal["paper", "cpu"] = "cpu"
    # network
    network: str = "tscnn"
    width: int = 32
    context_slices: int = 3
    network_options: dict[str, int | float | bool | str] = field(default_factory=dict)
    # loss
    loss: str = "focal_loss"
    loss_params: dict[str, float | bool] = field(default_factory=dict)
    # optimisation
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 2e-4
    weight_decay: float = 0.0
    batch_size: int = 8
    epochs: int = 50
    steps_per_epoch: int = 50
    lr_schedule: Literal["constant", "exp_after", "poly", "cosine"] = "constant"
    lr_constant_epochs: int = 10  # exp_after: constant for this many epochs, then eta_n = eta_{n-1} e^-d
    lr_decay: float = 0.1
    warmup_fraction: float = 0.0  # poly/cosine: linear warm-up over this share of the steps
    early_stopping_patience: int | None = None
    # budget: ``steps`` fixes the step count; otherwise ``budget_s`` (CPU seconds per model on the CPU, wall
    # seconds on CUDA) is turned into a step count after a short timed warm-up, for the poly/cosine
    # schedules, and is a hard stop for the papers' epoch schedules. ``evaluations``: validations per run.
    steps: int | None = None
    budget_s: float | None = None
    evaluations: int = 10
    # samples
    slice_filter: SliceFilterName = "brain"
    lesion_slice_ratio: float | None = None  # overrides slice_filter: lesion slices + r x other brain slices
    patch_size: tuple[int, int] | None = None
    lesion_patch_probability: float = 0.5
    lesion_sample_fraction: float | None = None  # share of samples forced onto lesion; rest: any brain slice
    # "slice": every training slice equally likely; "subject": each subject equally likely, then its slices
    # (a subject with 3 scans or a large lesion load no longer dominates the batches)
    sample_balance: Literal["slice", "subject"] = "slice"
    augmentation: Literal["none", "tscnn", "wmh", "lesion"] = "none"
    # the lesion augmentation's flip: "cols" (the second in-plane axis: anterior-posterior on the slices of
    # a preprocessed RAS volume), "rows" (left-right there) or "both" (each with probability 0.5, nnU-Net)
    flip_axes: Literal["cols", "rows", "both"] = "cols"
    intensity_augmentation: bool = False  # gamma, contrast, brightness, noise, blur (augment/intensity.py)
    intensity_strength: Literal["nnunet", "strong"] = "nnunet"  # strong: wider, drawn per input channel
    # probability that a sample's lesions keep only U[0.5, 1] of their contrast to the surrounding tissue
    lesion_contrast: float = 0.0
    # probability that a sample keeps only its first modality (the others set to 0): modality dropout
    modality_dropout: float = 0.0
    # probability that a sample gets a lesion of another subject pasted in (augment/lesions.py: CarveMix)
    lesion_transplant: float = 0.0
    # probability that a sample gets 1-3 synthetic small lesions on its FLAIR (augment/lesions.py)
    synthetic_lesions: float = 0.0
    # distillation (train/distill.py): the teacher's checkpoints (a model folder, or files joined by commas);
    # the loss mixes in distill_weight x BCE against its averaged, mirrored probabilities
    teacher: str | None = None
    distill_weight: float = 0.5
    augmented_copies: int = 10  # wmh: fixed augmented copies of each lesion slice (thesis section 2.3)
    pixel_sampler: Literal["none", "uniform", "class_balanced"] = "none"
    pixels_per_image: int = 2000
    # validation and output
    val_fraction: float = 0.2
    val_max_slices: int = 64
    threshold: float = 0.5
    # the model predict uses (best.pt): "best" = the highest validation Dice of the run's evaluations;
    # "last" = the final weights (nnU-Net's default for inference: one validation subject is a noisy judge)
    checkpoint: Literal["best", "last"] = "best"
    calibrate: bool = False  # choose threshold and minimum lesion size on the validation subjects
    # predict with the left-right mirror image's probabilities averaged in (test-time augmentation): the
    # calibration uses it too, and predict does by default for a model trained so
    flip_tta: bool = False
    seed: int = 0
    # speed
    bf16: bool = False
    channels_last: bool = False
    threads: int | None = None
    device: DeviceName = "auto"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def __post_init__(self) -> None:
        if self.context_slices not in (1, 3):
            raise LesionsegError(f"context_slices must be 1 or 3, got {self.context_slices}")
        if self.batch_size < 1 or self.epochs < 1 or self.steps_per_epoch < 0:
            raise LesionsegError(
                "batch_size and epochs must be >= 1, steps_per_epoch >= 0 "
                "(0: one pass over the training slices)"
            )
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise LesionsegError(f"lr must be a positive finite number, got {self.lr}")
        if not 0.0 < self.threshold < 1.0:
            raise LesionsegError(f"threshold must lie in (0, 1), got {self.threshold}")
        for name in (
            "lesion_patch_probability",
            "warmup_fraction",
            "val_fraction",
            "lesion_contrast",
            "modality_dropout",
            "lesion_transplant",
            "synthetic_lesions",
            "distill_weight",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise LesionsegError(f"{name} must lie in [0, 1], got {value}")
        if self.lesion_sample_fraction is not None and not 0.0 <= self.lesion_sample_fraction <= 1.0:
            raise LesionsegError(
                f"lesion_sample_fraction must lie in [0, 1], got {self.lesion_sample_fraction}"
            )
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise LesionsegError(f"weight_decay must be >= 0 and finite, got {self.weight_decay}")
        if self.width < 1 or self.evaluations < 1 or self.pixels_per_image < 1 or self.val_max_slices < 1:
            raise LesionsegError("width, evaluations, pixels_per_image and val_max_slices must be >= 1")
        if self.steps is not None and self.steps < 1:
            raise LesionsegError(f"steps must be >= 1, got {self.steps}")
        if self.budget_s is not None and not (math.isfinite(self.budget_s) and self.budget_s > 0):
            raise LesionsegError(f"budget must be a positive number of seconds, got {self.budget_s}")
        if self.teacher is not None and self.pixel_sampler != "none":
            raise LesionsegError("distillation (teacher) needs a dense network, not sampled pixels")
        if self.patch_size is not None and min(self.patch_size) < 1:
            raise LesionsegError(f"patch_size must be positive, got {self.patch_size}")


TSCNN_BASE = dict(
    network="tscnn",
    context_slices=3,
    width=32,
    loss="focal_loss",
    loss_params={"alpha": 0.9, "gamma": 1.0},
    lr=2e-4,
    batch_size=8,
    epochs=50,
    steps_per_epoch=50,
    patch_size=(128, 128),
    lesion_patch_probability=1.0,  # the authors' code centres every training patch on a lesion
    slice_filter="lesion",
    threshold=0.7,  # the authors' code binarises the lesion probability at 0.7
)  # TS-CNN section 2.3, gamma 1 as in the authors' public code; alpha 0.9 from section 3.2 (Fig. 2)
WMH_BASE = dict(
    network="unet",
    context_slices=1,
    width=64,
    lr_schedule="exp_after",
    lr_constant_epochs=10,
    lr_decay=0.1,
    early_stopping_patience=5,
    slice_filter="lesion",
    augmentation="wmh",
    augmented_copies=10,
    epochs=50,
    steps_per_epoch=0,  # an epoch is one pass over the training slices (Keras' epoch, as in the thesis)
    batch_size=8,
    calibrate=True,  # the "empirical threshold" (section 2.4), chosen on the validation subjects
)  # WMH thesis sections 2.3-2.5 and 3
PIXELNET_BASE = dict(
    network="pixelnet",
    context_slices=1,
    width=64,
    loss="cross_entropy",
    loss_params={},
    lr=1e-4,
    batch_size=4,
    epochs=50,
    steps_per_epoch=50,
    pixels_per_image=2000,
    slice_filter="brain",
    network_options={"fc_width": 4096, "fc6_kernel": 7, "mlp_width": 4096},  # VGG-16 fc6/fc7, MLP 3 x 4096
)  # Class-balanced PixelNet section 3.3 (N = 2000); optimiser and lr not stated (Caffe): Adam 1e-4 chosen

# The default recipe for lesion segmentation (issue "Models worth shipping"), after nnU-Net v2's 2D choices:
# whole brain-cropped slices (no in-plane padding to a fixed size: batches are padded to their largest
# slice), a third of the samples forced onto lesion and the rest drawn from every brain slice, lesion-free
# ones included; Dice + binary cross-entropy; flips, rotation, scaling and nnU-Net's intensity augmentation
# (gamma, contrast, brightness, noise, blur; it beat wider per-channel ranges on the validation subjects of
# benchmarks/ms_recipe.py), plus half of the samples' lesions pulled towards their surrounding tissue
# (augment/intensity.py: it raised the mean validation Dice of ms_recipe.py's folds from 0.575 to 0.642);
# Adam with warm-up then poly decay over a step count planned from the CPU budget; checkpoint, threshold
# and minimum lesion size chosen on the validation subjects, predicting with the left-right mirror image
# averaged in (nnU-Net's test-time mirroring, in-plane left-right only: it raised that validation Dice
# with each of three training seeds, 0.642 -> 0.667, 0.594 -> 0.616, 0.644 -> 0.661).
LESION_UNET = dict(
    network="unet",
    context_slices=1,
    width=16,
    network_options={"batch_norm": True},
    loss="dice_bce_loss",
    loss_params={},
    lr=1e-3,
    weight_decay=1e-5,
    batch_size=8,
    lr_schedule="poly",
    warmup_fraction=0.02,
    budget_s=300.0,
    evaluations=12,
    slice_filter="brain",
    lesion_sample_fraction=1 / 3,
    patch_size=None,
    augmentation="lesion",
    intensity_augmentation=True,
    lesion_contrast=0.5,
    checkpoint="last",
    calibrate=True,
    flip_tta=True,
    val_max_slices=96,
    bf16=True,
    channels_last=True,
    preprocess={"target_size": None},
)
DEFAULT_METHOD = "lesion-unet"
# Seeds a preset trains when neither --seed nor --seeds is given: the shipped lesion recipe is three networks
# of 5 CPU minutes each, averaged, their average calibrated on validation (the bundled model). On the
# validation subjects of benchmarks/ms_recipe.py the average scored above each of its networks, and one
# network of 5 minutes above one of 10 (BENCHMARKS.md, "The default recipe").
DEFAULT_SEEDS: dict[str, tuple[int, ...]] = {"lesion-unet": (0, 1, 2)}

METHOD_PRESETS: dict[str, dict] = {
    "lesion-unet": LESION_UNET,
    # TS-CNN Table 1 rows
    "resunet-focal": {**TSCNN_BASE, "network": "resunet", "context_slices": 1},  # row B
    "tscnn-focal": {**TSCNN_BASE},  # row D
    "tscnn-focal-aug": {**TSCNN_BASE, "augmentation": "tscnn"},  # row E
    "tscnn64-focal-aug": {**TSCNN_BASE, "augmentation": "tscnn", "width": 64},  # row F
    "tscnn-sbfl": {
        **TSCNN_BASE,
        "augmentation": "tscnn",
        "width": 64,
        "loss": "self_balancing_focal_loss",
        "loss_params": {"gamma": 1.0},
    },  # row G: row F + SBFL (gamma 1, as in the authors' public code)
    # WMH thesis ensemble members
    "wmh-dice": {**WMH_BASE, "loss": "soft_dice_loss", "loss_params": {"smooth": 1.0}, "lr": 1e-5},
    "wmh-focal-tversky": {
        **WMH_BASE,
        "loss": "focal_tversky_loss",
        "loss_params": {"alpha": 0.7, "beta": 0.3, "gamma": 4.0},
        "lr": 1e-6,
    },
    "wmh-binary-focal": {**WMH_BASE, "loss": "binary_focal_loss", "loss_params": {"gamma": 2.0}, "lr": 1e-6},
    # Class-balanced PixelNet vs the original PixelNet
    "pixelnet-balanced": {**PIXELNET_BASE, "pixel_sampler": "class_balanced"},
    "pixelnet-uniform": {**PIXELNET_BASE, "pixel_sampler": "uniform"},
}
# A method that trains several members and averages their probabilities (thesis section 2.4).
ENSEMBLES: dict[str, list[str]] = {"wmh-ensemble": ["wmh-dice", "wmh-focal-tversky", "wmh-binary-focal"]}

# CPU-sized settings: the same methods, smaller and shorter, so a fold trains in minutes on 2 cores:
# widths 16 (32 for the "channel count 64" rows), 6 epochs x 25 steps, 128 x 128 patches of lesion slices
# plus as many other brain slices, bf16 autocast + channels_last (benchmarks/bench_training.py).
# The WMH learning rates (1e-5, 1e-6) were set for 50+ GPU epochs over 5,000 slices (and 10 augmented
# copies of each lesion slice); in 150 CPU steps they would not move the weights, so the CPU profile trains
# every member at 1e-3, with BatchNorm in the U-Net. Both changes are recorded in the saved config.
CPU_PROFILE: dict[str, object] = {
    "epochs": 6,
    "steps_per_epoch": 25,
    "batch_size": 8,
    "val_max_slices": 32,
    "patch_size": (128, 128),
    "lesion_slice_ratio": 1.0,
    "bf16": True,
    "channels_last": True,
}
CPU_WIDTH = {"tscnn": 16, "resunet": 16, "unet": 16, "pixelnet": 16}
CPU_LR = {"wmh-dice": 1e-3, "wmh-focal-tversky": 1e-3, "wmh-binary-focal": 1e-3}
# PixelNet's fully connected layers shrunk for the CPU: fc6 3 x 3 and 1024 wide, MLP 512 (paper: 7 x 7,
# 4096, 4096); most of its cost per pixel is there.
CPU_NETWORK_OPTIONS = {"pixelnet": {"fc_width": 1024, "fc6_kernel": 3, "mlp_width": 512}}
# Methods whose schedule is planned from the budget: the same settings on every profile.
BUDGET_PLANNED = {"lesion-unet"}


def default_seeds(method: str) -> list[int | None]:
    """The seeds ``method`` trains by default: one network per seed, averaged; ``[None]``: one network with
    the config's own seed."""
    return list(DEFAULT_SEEDS.get(method, (None,)))


def method_names() -> list[str]:
    return sorted([*METHOD_PRESETS, *ENSEMBLES])


def ensemble_members(method: str) -> list[str]:
    """The presets one method trains: itself, or the members of an ensemble."""
    if method in ENSEMBLES:
        return list(ENSEMBLES[method])
    if method in METHOD_PRESETS:
        return [method]
    raise LesionsegError(f"unknown method {method!r} (valid: {', '.join(method_names())})")


def member_folder(cfg: TrainConfig, members: Sequence[TrainConfig], with_method: bool = False) -> str:
    """The sub-folder one member of an averaged model trains in: its method where the members' methods
    differ (or ``with_method``), ``seed_<s>`` where their seeds differ, joined by ``_``; "" for a model
    of one network."""
    parts = []
    if with_method or len({m.method for m in members}) > 1:
        parts.append(cfg.method)
    if len({m.seed for m in members}) > 1:
        parts.append(f"seed_{cfg.seed}")
    return "_".join(parts)


def is_member_folder(name: str) -> bool:
    """Whether ``name`` is a folder name that :func:`member_folder` gives (``seed_1``, ``wmh-dice``,
    ``wmh-dice_seed_1``)."""
    methods = "|".join(re.escape(m) for m in METHOD_PRESETS)
    return re.fullmatch(rf"seed_-?\d+|({methods})(_seed_-?\d+)?", name) is not None


def resolve_train_config(
    method: str,
    profile: str = "cpu",
    config_file: dict | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> TrainConfig:
    """Defaults <- method preset <- profile <- config file <- ``key=value`` overrides."""
    if method not in METHOD_PRESETS:
        raise LesionsegError(f"unknown method {method!r} (valid: {', '.join(sorted(METHOD_PRESETS))})")
    if profile not in ("paper", "cpu"):
        raise LesionsegError(f"unknown profile {profile!r} (valid: paper, cpu)")
    values = {**METHOD_PRESETS[method], "method": method, "profile": profile}
    if profile == "cpu" and method not in BUDGET_PLANNED:
        values.update(CPU_PROFILE)
        values["width"] = CPU_WIDTH.get(values["network"], values.get("width", 32)) * (
            2 if values.get("width", 32) >= 64 and values["network"] == "tscnn" else 1
        )
        values["lr"] = CPU_LR.get(method, values.get("lr", 2e-4))
        options = CPU_NETWORK_OPTIONS.get(values["network"], {})
        values["network_options"] = {**values.get("network_options", {}), **options}
        if values["network"] == "unet":  # from scratch in a few hundred steps: BatchNorm (see UNetConfig)
            values["network_options"] = {**values.get("network_options", {}), "batch_norm": True}
    cfg = from_dict(TrainConfig, to_dict(TrainConfig()) | to_dict(values))
    if config_file:
        cfg = from_dict(TrainConfig, to_dict(cfg) | config_file)
    return apply_overrides(cfg, list(overrides))


def read_config_file(path: str | Path) -> dict:
    """A JSON file of TrainConfig values (``--config``), as a dict; a one-line error naming the file."""
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LesionsegError(f"cannot read config ({exc})", path) from exc
    if not isinstance(config, dict):
        kind = type(config).__name__.replace("NoneType", "null")
        raise LesionsegError(f"a config file holds one JSON object of TrainConfig values, not a {kind}", path)
    return config


def resolve_member_configs(  # noqa: PLR0913
    method: str = DEFAULT_METHOD,
    profile: str = "cpu",
    config: dict | None = None,
    overrides: Sequence[str] = (),
    seed: int | None = None,
    seeds: Sequence[int] | None = None,
    budget: float | None = None,
    steps: int | None = None,
    device: str | None = None,
) -> list[TrainConfig]:
    """The resolved TrainConfig of each network ``lesionseg train`` / ``cv`` / ``lesionseg.train`` trains:
    each member of an ensemble method, and one per seed of ``seeds`` for each of them (all averaged as one
    model). Without a seed given (``seed``, ``seeds``, a ``seed=`` override or the config's seed), a preset
    trains its default seeds (:data:`DEFAULT_SEEDS`: lesion-unet's three). ``config``: TrainConfig values
    (a ``--config`` file's); ``overrides``: ``key=value`` (``--set``); ``budget`` seconds per network,
    ``steps`` a fixed step count (no budget), ``device`` auto/cpu/cuda. Options of the networks and losses
    are checked by the caller (``train.options.check_options``; torch lives there)."""
    overrides = list(overrides)
    if seed is not None:
        overrides.append(f"seed={seed}")
    if budget is not None:
        overrides.append(f"budget_s={budget}")
    if steps is not None:
        overrides += [f"steps={steps}", "budget_s=null"]
    if device is not None:
        overrides.append(f"device={device}")
    if seed is not None and seeds:
        raise LesionsegError("give either one seed or several seeds, not both")
    if not seeds:  # one seed named (--seed, --set seed=N, a config's seed) trains that one network
        named = seed is not None or (config or {}).get("seed") is not None
        named = named or any(o.partition("=")[0].strip() == "seed" for o in overrides)
        seeds = [None] if named else default_seeds(method)
    seeds = list(seeds)
    if len(set(seeds)) != len(seeds):
        listed = " ".join(map(str, seeds))
        raise LesionsegError(f"--seeds repeats a seed ({listed}): each network needs its own")
    per_seed = [[f"seed={s}"] if s is not None else [] for s in seeds]
    return [
        resolve_train_config(m, profile, config, [*overrides, *seed_override])
        for m in ensemble_members(method)
        for seed_override in per_seed
    ]
