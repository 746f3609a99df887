"""Subject-wise k-fold splits: never by slice, one subject's scans always in one fold.

Folds are balanced by lesion load where possible (subjects sorted by load, dealt to folds in snake order,
ties broken by the seed), written to JSON and reused; a user-given split file wins (nnU-Net's habit).
When k exceeds the number of subjects, the split becomes leave-one-subject-out and says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io import atomic_output


@dataclass
class Fold:
    fold: int
    train: list[str]
    val: list[str]
    test: list[str]


@dataclass
class Splits:
    scheme: str  # "k-fold" or "leave-one-subject-out"
    seed: int
    folds: list[Fold] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"scheme": self.scheme, "seed": self.seed, "folds": [asdict(f) for f in self.folds]}

    def save(self, path: str | Path) -> Path:
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return Path(path)


def make_splits(
    subjects: list[str],
    k: int,
    seed: int = 0,
    lesion_load: dict[str, float] | None = None,
    val_fraction: float = 0.2,
) -> Splits:
    """k folds of test subjects; in each fold a validation share of the training subjects.

    ``val_fraction`` of the training subjects (at least one when two or more remain) are held out for
    early stopping / best-checkpoint selection; with a single training subject, val is empty and the
    trainer validates on training data (and says so).
    """
    if k < 2:  # one fold would test every subject and train on none
        raise LesionsegError(f"cross-validation needs at least 2 folds, got {k}")
    subjects = sorted(set(subjects))
    if len(subjects) < 2:
        raise LesionsegError(f"cross-validation needs at least 2 subjects, got {len(subjects)}")
    rng = np.random.default_rng(seed)
    scheme = "k-fold"
    if k >= len(subjects):
        k, scheme = len(subjects), "leave-one-subject-out"
    order = list(rng.permutation(subjects))
    if lesion_load:
        order.sort(key=lambda s: -lesion_load.get(s, 0.0))  # stable: ties keep the seeded order
    buckets: list[list[str]] = [[] for _ in range(k)]
    for i, subject in enumerate(order):
        lap, pos = divmod(i, k)
        buckets[pos if lap % 2 == 0 else k - 1 - pos].append(subject)
    folds = []
    for f, test in enumerate(buckets):
        rest = [s for s in order if s not in test]
        n_val = int(round(val_fraction * len(rest))) if len(rest) > 1 else 0
        n_val = max(n_val, 1) if len(rest) > 1 else 0
        val_pick = set(rng.permutation(rest)[:n_val].tolist())
        folds.append(
            Fold(
                fold=f,
                train=sorted(s for s in rest if s not in val_pick),
                val=sorted(val_pick),
                test=sorted(test),
            )
        )
    splits = Splits(scheme, seed, folds)
    validate_splits(splits, subjects)
    return splits


def load_splits(path: str | Path, subjects: list[str] | None = None) -> Splits:
    """Read and validate a split file; a subject in two roles of one fold is refused."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        splits = Splits(
            raw.get("scheme", "user"),
            int(raw.get("seed", 0)),
            [
                Fold(int(f.get("fold", i)), list(f["train"]), list(f.get("val", [])), list(f.get("test", [])))
                for i, f in enumerate(raw["folds"])
            ],
        )
    except FileNotFoundError as exc:
        raise LesionsegError("split file not found", path) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise LesionsegError(f"malformed split file ({type(exc).__name__}: {exc})", path) from exc
    validate_splits(splits, subjects, path)
    return splits


def validate_splits(
    splits: Splits, subjects: list[str] | None = None, path: str | Path | None = None
) -> None:
    """No subject in two of train/val/test within a fold; test folds disjoint; names known."""
    seen_test: dict[str, int] = {}
    for fold in splits.folds:
        roles = {"train": set(fold.train), "val": set(fold.val), "test": set(fold.test)}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            both = roles[a] & roles[b]
            if both:
                raise LesionsegError(
                    f"fold {fold.fold}: subjects {sorted(both)} are in both {a} and {b}", path
                )
        for s in fold.test:
            if s in seen_test:
                raise LesionsegError(
                    f"subject {s!r} is a test subject in folds {seen_test[s]} and {fold.fold}", path
                )
            seen_test[s] = fold.fold
        if subjects is not None:
            unknown = sorted(set().union(*roles.values()) - set(subjects))
            if unknown:
                raise LesionsegError(f"fold {fold.fold}: unknown subjects {unknown}", path)
