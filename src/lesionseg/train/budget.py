"""The CPU budget turned into a step count, and the learning-rate schedules over steps or epochs.

A budget-planned run (``lr_schedule`` poly or cosine) times a few real training steps and one validation,
then fixes ``steps = (budget - time spent - validations - calibration) / step time`` once, records it in
the resolved config, and fits the schedule to it: linear warm-up, then decay that reaches 0 at the last
step. The clock is the process's CPU time on the CPU (so other load on the machine does not shrink the
model) and wall time on CUDA.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from lesionseg.config.train import TrainConfig

PROBE_STEPS = 6  # timed warm-up steps; the first (allocation, oneDNN kernel choice) is not counted
POLY_EXPONENT = 0.9  # nnU-Net's poly schedule


def budget_clock(device_type: str) -> float:
    """Seconds on the budget's clock: process CPU time on the CPU, wall time on CUDA."""
    return time.monotonic() if device_type == "cuda" else time.process_time()


def plans_from_budget(cfg: TrainConfig) -> bool:
    """Runs whose step count comes from ``steps`` or ``budget_s`` (the papers' epoch schedules do not)."""
    return cfg.lr_schedule in ("poly", "cosine")


@dataclass(frozen=True)
class StepPlan:
    steps: int
    epochs: int
    steps_per_epoch: int
    step_seconds: float
    validation_seconds: float


def plan_steps(
    cfg: TrainConfig, spent: float, step_seconds: float, validation_seconds: float, calibration_seconds: float
) -> StepPlan:
    """``cfg.steps`` when given, else what fits in ``cfg.budget_s`` after ``spent`` seconds; split into
    ``cfg.evaluations`` epochs (a validation after each)."""
    evaluations = cfg.evaluations
    if cfg.steps is not None:
        total = cfg.steps
    elif cfg.budget_s is not None:
        left = cfg.budget_s - spent - evaluations * validation_seconds - calibration_seconds
        total = max(int(left / max(step_seconds, 1e-6)), evaluations)
    else:
        total = cfg.epochs * cfg.steps_per_epoch
    evaluations = min(evaluations, total)
    per_epoch = math.ceil(total / evaluations)
    return StepPlan(per_epoch * evaluations, evaluations, per_epoch, step_seconds, validation_seconds)


def step_learning_rate(cfg: TrainConfig, step: int, total: int) -> float:
    """Linear warm-up over ``warmup_fraction`` of ``total`` steps, then poly ((1 - t)^0.9, nnU-Net) or
    cosine decay over the rest, reaching 0 after the last step (``step`` counts from 0)."""
    warmup = int(round(cfg.warmup_fraction * total))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    if cfg.lr_schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * t))
    return cfg.lr * (1.0 - t) ** POLY_EXPONENT


def epoch_learning_rate(cfg: TrainConfig, epoch: int) -> float:
    """Constant, or (WMH thesis eq. 5) constant for ``lr_constant_epochs`` then eta_n = eta_{n-1} e^{-d}."""
    if cfg.lr_schedule == "constant" or epoch < cfg.lr_constant_epochs:
        return cfg.lr
    return cfg.lr * math.exp(-cfg.lr_decay * (epoch - cfg.lr_constant_epochs + 1))
