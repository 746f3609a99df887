"""The training loop (nanoGPT-short): batches from SliceBatcher, Adam, the papers' epoch schedules or a
step count planned from the CPU budget (train/budget.py), validation every epoch, a checkpoint every epoch
plus the best by validation Dice, threshold and minimum lesion size calibrated on the validation subjects
(train/calibrate.py), exact resume, a NaN guard, bf16 autocast and channels_last on CPU or CUDA, and
DistributedDataParallel under torchrun."""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lesionseg.config import to_dict
from lesionseg.config.train import TrainConfig
from lesionseg.errors import LesionsegError
from lesionseg.infer.slicewise import foreground_probability, predict_volume, to_label
from lesionseg.io import atomic_output
from lesionseg.losses import create_loss
from lesionseg.nets import create_network
from lesionseg.nets.checkpoint import RESUME_KEYS, load_checkpoint, save_checkpoint
from lesionseg.nets.device import autocast, resolve_device
from lesionseg.train import distributed
from lesionseg.train.budget import (
    PROBE_STEPS,
    budget_clock,
    epoch_learning_rate,
    plan_steps,
    plans_from_budget,
    step_learning_rate,
)
from lesionseg.train.calibrate import calibrate_cases
from lesionseg.train.distill import distillation_loss
from lesionseg.train.memory import check_step_memory
from lesionseg.train.samples import SliceBatcher, class_lookup, steps_per_epoch_for

HISTORY_FIELDS = ["epoch", "steps", "train_loss", "val_loss", "val_dice", "lr", "seconds"]


@dataclass
class TrainResult:
    best: Path
    last: Path
    history: list[dict] = field(default_factory=list)
    stopped_by: str = "epochs"


def output_channels(network: str, num_labels: int) -> int:
    """Binary tasks: 1 sigmoid output, except PixelNet, whose MLP predicts K >= 2 classes (paper sec. 2)."""
    if num_labels <= 2 and network != "pixelnet":
        return 1
    return max(num_labels, 2)


def loss_on_batch(  # noqa: ANN001
    model, loss_fn, batch: dict[str, torch.Tensor], num_outputs: int, distill_weight: float = 0.0
) -> torch.Tensor:
    """Dense loss on whole patches, or (PixelNet) the loss on the sampled pixels only; with a teacher's
    ``soft`` targets in the batch, mixed with the distillation loss (train/distill.py)."""
    images = batch["images"]
    if "coords" in batch:
        logits = model(images, batch["coords"]).permute(0, 2, 1)  # PixelNet: (B, N, K) -> (B, K, N)
        targets = batch["pixel_targets"]
    else:
        logits, targets = model(images), batch["targets"]
    if num_outputs == 1:
        targets = (targets > 0).float().unsqueeze(1)
    loss = loss_fn(logits.float(), targets)
    if "soft" in batch:
        soft_loss = distillation_loss(logits.float(), batch["soft"])
        loss = (1.0 - distill_weight) * loss + distill_weight * soft_loss
    return loss


def dice_score(pred: np.ndarray, ref: np.ndarray) -> float:
    """Foreground Dice pooled over voxels (mean over foreground classes for multi-class)."""
    classes = [c for c in np.unique(np.concatenate([np.unique(pred), np.unique(ref)])) if c > 0] or [1]
    scores = []
    for c in classes:
        p, r = pred == c, ref == c
        denom = p.sum() + r.sum()
        scores.append(1.0 if denom == 0 else 2.0 * np.logical_and(p, r).sum() / denom)
    return float(np.mean(scores))


def require_same_network(state: dict, network: str, config: dict, path: str | Path) -> None:
    """LesionsegError (one line naming the checkpoint and every difference) when the checkpoint to resume
    holds another network than this run builds, e.g. a changed ``width``: its weights would not fit."""
    saved_name, saved = state.get("network"), state.get("network_config")
    differences = [] if saved_name in (None, network) else [f"network {saved_name!r} (now {network!r})"]
    if isinstance(saved, dict):
        differences += [
            f"{key} {saved.get(key)!r} (now {config.get(key)!r})"
            for key in sorted(set(saved) | set(config))
            if saved.get(key) != config.get(key)
        ]
    if differences:
        raise LesionsegError(
            f"cannot resume: the checkpoint was trained with {', '.join(differences)}; resume with the "
            "options it began with (its config.json), or start again with --overwrite",
            path,
        )


class Trainer:
    """One model, one training run. Rank 0 writes every file."""

    def __init__(
        self,
        cfg: TrainConfig,
        train_cases: list,
        val_cases: list,
        label_values: list[int],
        in_channels: int,
        out_dir: str | Path,
        extra_state: dict | None = None,
    ) -> None:
        self.cfg, self.val_cases, self.out = cfg, val_cases, Path(out_dir)
        self.rank, self.world = distributed.rank_and_world()
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", self.rank % torch.cuda.device_count())
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.num_outputs = output_channels(cfg.network, len(label_values))
        self.label_values = sorted(label_values)
        self.network_config = dict(
            in_channels=in_channels,
            num_classes=self.num_outputs,
            width=cfg.width,
            context_slices=cfg.context_slices,
            **cfg.network_options,
        )
        self.model = create_network(cfg.network, **self.network_config).to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model = distributed.wrap(self.model, self.device)
        self.loss_fn = create_loss(cfg.loss, **cfg.loss_params)
        self.optimizer = (
            torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            if cfg.optimizer == "adam"
            else torch.optim.SGD(
                self.model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay
            )
        )
        self.batcher = SliceBatcher(train_cases, cfg, label_values, self.num_outputs, self.rank, self.world)
        # a batch that cannot fit is refused now, in one line, not killed by the kernel later
        check_step_memory(self.model, self.one_sample_loss(train_cases), cfg.batch_size, self.device)
        self.cfg = cfg = replace(
            cfg, steps_per_epoch=steps_per_epoch_for(cfg.steps_per_epoch, len(self.batcher), cfg.batch_size)
        )
        self.rng = np.random.default_rng([cfg.seed, self.rank])
        self.extra_state = extra_state or {}
        self.epoch, self.history, self.best_metric, self.bad_epochs = 0, [], -math.inf, 0
        self.best_val_loss, self.step, self.spent = math.inf, 0, 0.0
        self.val_on_train = not val_cases
        if self.val_on_train:  # one training subject: no held-out subject to validate on
            self.val_cases = train_cases

    def one_sample_loss(self, train_cases: list):  # noqa: ANN201 - Callable[[nn.Module], Tensor]
        """The loss of one training sample (a batch of one, drawn with its own RNG) on a given network: what
        ``train.memory.check_step_memory`` measures."""
        one = SliceBatcher(
            train_cases, replace(self.cfg, batch_size=1), self.label_values, self.num_outputs, 0, 1
        )

        def loss(net: torch.nn.Module) -> torch.Tensor:
            drawn = one.batch(np.random.default_rng(0))
            batch = {k: torch.from_numpy(v).to(self.device) for k, v in drawn.items()}
            with autocast(self.cfg.bf16, self.device):
                return loss_on_batch(net, self.loss_fn, batch, self.num_outputs, self.cfg.distill_weight)

        return loss

    # ----------------------------------------------------------------------------------- state
    def state(self) -> dict:
        net = self.model.module if hasattr(self.model, "module") else self.model
        return {
            "config": to_dict(self.cfg),
            "network": self.cfg.network,
            "network_config": self.network_config,
            "context_slices": self.cfg.context_slices,
            "label_values": self.label_values,
            "threshold": self.cfg.threshold,
            "model": {k: v.contiguous() for k, v in net.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "history": self.history,
            "best_metric": self.best_metric,
            "best_val_loss": self.best_val_loss,
            "bad_epochs": self.bad_epochs,
            "step": self.step,
            "spent_s": self.spent,
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            **self.extra_state,
        }

    def resume(self, path: str | Path) -> None:
        """Continue exactly where ``path`` (a last.pt) stopped: weights, optimiser, RNGs, history."""
        state = load_checkpoint(path, require=RESUME_KEYS)
        net = self.model.module if hasattr(self.model, "module") else self.model
        require_same_network(state, self.cfg.network, self.network_config, path)
        net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.history = state["epoch"], state["history"]
        self.best_metric, self.bad_epochs = state["best_metric"], state["bad_epochs"]
        self.best_val_loss = state["best_val_loss"]
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.step, self.spent = int(state.get("step", 0)), float(state.get("spent_s", 0.0))
        saved = state["config"]  # a plain dict: older checkpoints may hold fields this version renamed
        if saved.get("lr_schedule") in ("poly", "cosine") and saved.get("steps"):  # the plan of the start
            self.cfg = replace(
                self.cfg,
                steps=int(saved["steps"]),
                epochs=int(saved["epochs"]),
                steps_per_epoch=int(saved["steps_per_epoch"]),
            )

    # ----------------------------------------------------------------------------------- loop
    def fit(self, resume: bool = False, progress: bool = True) -> TrainResult:
        last, best = self.out / "last.pt", self.out / "best.pt"
        if resume and last.exists():
            self.resume(last)
        elif plans_from_budget(self.cfg):
            self.plan()
        cfg, stopped_by = self.cfg, "epochs"
        clock0 = budget_clock(self.device.type) - self.spent
        total = cfg.epochs * cfg.steps_per_epoch
        bar = tqdm(total=total, initial=self.step, desc=cfg.method, disable=not progress or self.rank != 0)
        while self.epoch < cfg.epochs:
            epoch_lr = epoch_learning_rate(cfg, self.epoch)
            epoch_start, losses = time.monotonic(), []
            self.model.train()
            for _ in range(cfg.steps_per_epoch):
                self.spent = budget_clock(self.device.type) - clock0
                if self.over_budget():
                    stopped_by = "budget"
                    break
                lr = step_learning_rate(cfg, self.step, total) if plans_from_budget(cfg) else epoch_lr
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                loss = self.train_step()
                if not math.isfinite(loss):
                    raise LesionsegError(
                        f"loss became {loss} at epoch {self.epoch + 1} step {self.step + 1}; stopped. "
                        f"The last good checkpoint is kept",
                        last if last.exists() else None,
                    )
                losses.append(loss)
                self.step += 1
                bar.update(1)
                bar.set_postfix_str(f"loss {np.mean(losses):.4f}{self.time_left_text()}")
            if not losses:
                break
            val_loss, val_dice = self.validate() if self.rank == 0 else (math.nan, math.nan)
            val_loss, val_dice = distributed.broadcast_floats([val_loss, val_dice])
            self.epoch += 1
            self.spent = budget_clock(self.device.type) - clock0
            self.history.append(
                dict(
                    epoch=self.epoch,
                    steps=len(losses),
                    train_loss=float(np.mean(losses)),
                    val_loss=val_loss,
                    val_dice=val_dice,
                    lr=float(self.optimizer.param_groups[0]["lr"]),
                    seconds=round(time.monotonic() - epoch_start, 2),
                )
            )
            # best.pt is the model predict uses: the best validation Dice, or the final weights when asked
            # (``checkpoint="last"``) or when the validation Dice is measured on training data
            improved = val_dice > self.best_metric
            self.best_metric = max(self.best_metric, val_dice)
            improved = improved or self.val_on_train or cfg.checkpoint == "last"
            if val_loss < self.best_val_loss - 1e-6:
                self.best_val_loss, self.bad_epochs = val_loss, 0
            else:
                self.bad_epochs += 1
            if self.rank == 0:
                save_checkpoint(self.state(), last)
                if improved or not best.exists():
                    save_checkpoint(self.state(), best)
                self.write_history()
                if progress:
                    tqdm.write(
                        f"epoch {self.epoch}/{cfg.epochs}: loss {np.mean(losses):.4f} "
                        f"val_loss {val_loss:.4f} val_dice {val_dice:.4f} lr {self.history[-1]['lr']:.2e}"
                    )
            if cfg.early_stopping_patience is not None and self.bad_epochs >= cfg.early_stopping_patience:
                stopped_by = "early_stopping"
            if distributed.any_rank(stopped_by != "epochs"):
                break
        bar.close()
        if self.rank == 0 and cfg.calibrate and best.exists():
            self.calibrate_checkpoint(best)
        return TrainResult(best, last, self.history, stopped_by)

    def over_budget(self) -> bool:
        """The papers' epoch schedules stop at the budget; planned runs only past 1.25x it (a safety stop:
        the plan already fits the budget)."""
        if self.cfg.budget_s is None:
            return False
        limit = self.cfg.budget_s * (1.25 if plans_from_budget(self.cfg) else 1.0)
        return self.spent > limit

    def time_left_text(self) -> str:
        if self.cfg.budget_s is None:
            return ""
        return f", {max(self.cfg.budget_s - self.spent, 0) / 60:.1f} min left"

    def plan(self) -> None:
        """Time a few real steps and one validation, then fix the step count (``steps`` or what fits in
        ``budget_s``) and the epochs it is split into; the plan goes into the saved config."""
        clock = budget_clock(self.device.type)
        start = clock
        cfg = self.cfg
        if cfg.steps is None and cfg.budget_s is not None:
            self.model.train()
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * 0.01  # timing steps: a tiny step before the real warm-up
            times = []
            for _ in range(PROBE_STEPS):
                t0 = budget_clock(self.device.type)
                self.train_step()
                times.append(budget_clock(self.device.type) - t0)
            step_seconds = float(np.median(times[1:]))
            t0 = budget_clock(self.device.type)
            if self.rank == 0:
                self.validate()
            validation_seconds = budget_clock(self.device.type) - t0
        else:
            step_seconds, validation_seconds = math.nan, math.nan
        spent = budget_clock(self.device.type) - start
        # every rank must train the same number of steps: rank 0's timings decide
        step_seconds, validation_seconds, spent = distributed.broadcast_floats(
            [step_seconds, validation_seconds, spent]
        )
        calibration_seconds = 2.5 * validation_seconds if cfg.calibrate and cfg.budget_s else 0.0
        plan = plan_steps(cfg, spent, step_seconds, validation_seconds, calibration_seconds)
        self.spent = spent
        self.cfg = replace(cfg, steps=plan.steps, epochs=plan.epochs, steps_per_epoch=plan.steps_per_epoch)
        self.plan_record = asdict(plan)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            with atomic_output(self.out / "config.json") as tmp:
                tmp.write_text(json.dumps(to_dict(self.cfg), indent=2) + "\n")
            with atomic_output(self.out / "plan.json") as tmp:
                tmp.write_text(json.dumps(self.plan_record, indent=2) + "\n")

    def calibrate_checkpoint(self, path: Path) -> None:
        """Choose threshold and minimum lesion size on the validation subjects' whole volumes with the
        best checkpoint and save them in it (binary models with a held-out validation subject only)."""
        if self.num_outputs != 1 or self.val_on_train:
            return
        state = load_checkpoint(path)
        net = self.model.module if hasattr(self.model, "module") else self.model
        net.load_state_dict(state["model"])
        net.eval()
        result = calibrate_cases(
            self.val_cases,
            lambda case: foreground_probability(
                predict_volume(
                    net,
                    np.asarray(case.image),
                    np.asarray(case.mask),
                    self.cfg.context_slices,
                    bf16=self.cfg.bf16,
                    flip_tta=self.cfg.flip_tta,
                    device=self.device,
                )
            ),
        )
        if result is None:
            return
        state.update(
            threshold=result.threshold, min_lesion_mm3=result.min_lesion_mm3, calibration=asdict(result)
        )
        save_checkpoint(state, path)
        with atomic_output(self.out / "calibration.json") as tmp:
            tmp.write_text(json.dumps(asdict(result), indent=2) + "\n")

    def train_step(self) -> float:
        batch = {k: torch.from_numpy(v).to(self.device) for k, v in self.batcher.batch(self.rng).items()}
        if self.cfg.channels_last:
            batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.cfg.bf16, self.device):
            loss = loss_on_batch(
                self.model, self.loss_fn, batch, self.num_outputs, self.cfg.distill_weight
            )
        if torch.isfinite(loss):
            loss.backward()
            self.optimizer.step()
        return float(loss.detach())

    @torch.no_grad()
    def validate(self) -> tuple[float, float]:
        """Validation loss and Dice on whole slices of the validation cases (all lesion slices plus brain
        slices up to ``val_max_slices`` per case, chosen deterministically)."""
        net = self.model.module if hasattr(self.model, "module") else self.model
        net.eval()
        lut = class_lookup(self.label_values)
        preds, refs, losses = [], [], []
        for case in self.val_cases:
            zs = validation_slices(case, self.cfg.val_max_slices)
            prob = predict_volume(
                net,
                case.image,
                np.asarray(case.mask),
                self.cfg.context_slices,
                z_indices=zs,
                bf16=self.cfg.bf16,
                device=self.device,
            )[..., zs]
            ref = (
                lut[np.asarray(case.label)[..., zs]]
                if case.label is not None
                else np.zeros(prob.shape[1:], int)
            )
            preds.append(to_label(prob, 0.5 if self.cfg.calibrate else self.cfg.threshold).ravel())
            refs.append(ref.ravel())
            losses.append(self.probability_loss(prob, ref))
        return float(np.mean(losses)), dice_score(np.concatenate(preds), np.concatenate(refs))

    def probability_loss(self, prob: np.ndarray, ref: np.ndarray) -> float:
        """The training loss on validation slices, from probabilities turned back into logits."""
        p = torch.from_numpy(prob).clamp(1e-6, 1 - 1e-6).movedim(-1, 0)  # (Z, K, X, Y)
        logits = torch.log(p / (1 - p)) if p.shape[1] == 1 else torch.log(p)
        target = torch.from_numpy(np.ascontiguousarray(np.moveaxis(ref, -1, 0))).long()
        if self.num_outputs == 1:
            target = (target > 0).float().unsqueeze(1)
        return float(self.loss_fn(logits, target))

    def write_history(self) -> None:
        with atomic_output(self.out / "history.csv") as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=HISTORY_FIELDS)
            writer.writeheader()
            writer.writerows(self.history)
        from lesionseg.report.curves import plot_training_curves

        plot_training_curves(self.history, self.out / "loss_curve.png", title=self.cfg.method)


def validation_slices(case, max_slices: int) -> np.ndarray:  # noqa: ANN001
    """Every lesion slice, plus brain slices up to ``max_slices``; only labelled slices when the case
    carries ``labelled_slices`` (its other slices are unlabelled context)."""
    depth = case.mask.shape[-1]
    brain = np.flatnonzero(np.asarray(case.mask).reshape(-1, depth).any(axis=0))
    if case.label is None:
        lesion = np.empty(0, int)
    else:
        lesion = np.flatnonzero(np.asarray(case.label).reshape(-1, depth).any(axis=0))
    labelled = getattr(case, "labelled_slices", None)
    if labelled is not None:
        brain, lesion = np.intersect1d(brain, labelled), np.intersect1d(lesion, labelled)
    others = np.setdiff1d(brain, lesion)
    room = max(max_slices - len(lesion), 0)
    if len(others) > room:
        others = others[np.linspace(0, len(others) - 1, room).round().astype(int)] if room else others[:0]
    return np.union1d(lesion, others).astype(int)
