"""``lesionseg evaluate``: challenge-grade metrics per case, summaries, plots, overlays and an HTML report.

Two forms:

- a pair: ``--pred P.nii.gz --ref R.nii.gz [--image FLAIR.nii.gz] --out DIR``
  (``--manifest`` optionally names the labels and regions, e.g. BraTS WT/TC/ET);
- a predictions folder against a manifest: ``--pred-dir DIR --manifest M --root R --out DIR``; the prediction
  of case X is ``X.nii.gz`` (or ``X_mask.nii.gz``, ``X_seg.nii.gz``; also ``.nii``, ``.mha``, ``.nrrd``).
  Cases carry a fold from ``--folds SPLITS.json`` (the fold whose ``test`` lists the case's subject or id)
  or from a ``"fold"`` key of the case in the manifest.

Output layout: see :mod:`lesionseg.report.evaluation`.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lesionseg.data.manifest import ImageSpec, Manifest
    from lesionseg.io import Volume

PRED_SUFFIXES = ("", "_mask", "_seg")
PRED_EXTENSIONS = (".nii.gz", ".nii", ".mha", ".nrrd")
BINARY_LABELS = {"background": 0, "lesion": 1}


@dataclass
class Job:
    """One case to evaluate: where its files are and what it is."""

    case: str
    pred: Path
    ref: Path | ImageSpec  # a file (pair form) or a manifest spec
    image: Path | ImageSpec | None
    fold: str = ""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="metrics, summaries, plots, overlays and an HTML report for predictions",
        description=__doc__.split("\n\n")[0],
    )
    pair = parser.add_argument_group("a prediction/reference pair")
    pair.add_argument("--pred", type=Path, help="predicted label map")
    pair.add_argument("--ref", type=Path, help="reference label map on the same grid")
    pair.add_argument("--image", type=Path, help="image shown under the overlays (e.g. FLAIR)")
    pair.add_argument("--case-id", default=None, help="name of the case in the tables (default: from --pred)")
    folder = parser.add_argument_group("a predictions folder against a manifest")
    folder.add_argument("--pred-dir", type=Path, help="folder with one prediction per case (<case>.nii.gz)")
    folder.add_argument("--manifest", help="manifest file or built-in name (labels, regions, cases)")
    folder.add_argument("--root", type=Path, help="data root the manifest's paths are relative to")
    folder.add_argument("--folds", type=Path, help="split file; a case's fold is the fold that tests it")
    folder.add_argument(
        "--skip-missing", action="store_true", help="evaluate the cases that have a prediction"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--overlay-slices", type=int, default=3, help="axial slices per overlay (0: none)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lesionseg.errors import LesionsegError

    if args.pred_dir is not None:
        if args.pred or args.ref:
            raise LesionsegError("give either --pred/--ref or --pred-dir/--manifest, not both")
        if not args.manifest or args.root is None:
            raise LesionsegError("--pred-dir needs --manifest and --root")
        return _evaluate_folder(args)
    if args.pred is None or args.ref is None:
        raise LesionsegError("give --pred and --ref (a pair) or --pred-dir, --manifest and --root (a folder)")
    if args.folds is not None:
        raise LesionsegError("--folds applies to --pred-dir evaluation only", args.folds)
    return _evaluate_pair(args)


def _evaluate_pair(args: argparse.Namespace) -> int:
    from lesionseg.data.manifest import load_manifest

    labels, regions = None, {}
    if args.manifest:
        manifest = load_manifest(args.manifest)
        labels, regions = manifest.labels, manifest.regions
    case = args.case_id or _case_name(args.pred)
    job = Job(case, args.pred, args.ref, args.image)
    inputs = {
        "prediction": args.pred,
        "reference": args.ref,
        "image": args.image,
        "manifest": args.manifest,
    }
    inputs = {k: v for k, v in inputs.items() if v}
    return _evaluate([job], labels, regions, None, args, inputs, skipped=[])


def _evaluate_folder(args: argparse.Namespace) -> int:
    from lesionseg.data.manifest import load_manifest
    from lesionseg.errors import LesionsegError

    manifest = load_manifest(args.manifest)
    if not args.pred_dir.is_dir():
        raise LesionsegError("prediction folder not found", args.pred_dir)
    if not args.root.is_dir():
        raise LesionsegError("data root not found", args.root)
    folds = _folds_from_splits(args.folds, manifest) if args.folds else _folds_from_manifest(manifest)
    jobs, missing = [], []
    for case in manifest.cases:
        if case.label is None:
            raise LesionsegError(f"case {case.id!r} has no reference label in the manifest", manifest.path)
        pred = find_prediction(args.pred_dir, case.id)
        if pred is None:
            missing.append(case.id)
            continue
        image = case.images.get(overlay_channel(manifest.channel_names)) if manifest.channel_names else None
        jobs.append(Job(case.id, pred, case.label, image, folds.get(case.id, "")))
    if missing and (not args.skip_missing or not jobs):
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise LesionsegError(
            f"no prediction for {len(missing)} of {len(manifest.cases)} cases ({shown}); "
            "expected <case>.nii.gz, <case>_mask.nii.gz or <case>_seg.nii.gz",
            args.pred_dir,
        )
    if folds and any(not j.fold for j in jobs):
        lost = [j.case for j in jobs if not j.fold]
        raise LesionsegError(f"cases {lost[:5]} are in no test fold", args.folds or manifest.path)
    inputs = {
        "predictions": args.pred_dir,
        "manifest": manifest.path or args.manifest,
        "root": args.root,
        "folds": args.folds or ("from the manifest" if folds else None),
    }
    inputs = {k: v for k, v in inputs.items() if v}
    return _evaluate(jobs, manifest.labels, manifest.regions, args.root, args, inputs, skipped=missing)


def _evaluate(
    jobs: list[Job],
    labels: dict[str, int] | None,
    regions: dict[str, list[int]],
    root: Path | None,
    args: argparse.Namespace,
    inputs: dict[str, object],
    skipped: list[str],
) -> int:
    """Metrics and overlays case by case, then every output file."""
    from lesionseg.metrics import label_map_metrics
    from lesionseg.report.evaluation import write_evaluation_outputs
    from lesionseg.report.overlay import save_case_overlay

    rows, overlays = [], []
    for job in jobs:
        ref = _read(job.ref, root, "label")
        pred = _read(job.pred, root, "label")
        _check_grid(ref, pred, "prediction")
        case_labels = _check_values(ref, pred, labels)
        extra = {"fold": job.fold} if job.fold else {}
        case_rows = label_map_metrics(
            pred.array, ref.array, ref.spacing, case_labels, regions, job.case, extra
        )
        rows += case_rows
        # headline: the first region (BraTS WT) when there are regions, else the first label
        first = next((r for r in case_rows if r["kind"] == "region"), case_rows[0] if case_rows else {})
        print(
            f"{job.case}: {first.get('label', '')} DSC {first.get('dsc', float('nan')):.4f}, "
            f"HD95 {first.get('hd95', float('nan')):.2f} mm, lesions {first.get('lesions_detected', 0)}"
            f"/{first.get('ref_lesions', 0)} detected"
        )
        if args.overlay_slices > 0:
            image = _read(job.image, root, "image") if job.image is not None else None
            if image is not None:
                _check_grid(ref, image, "image")
            path = args.out / "overlays" / f"{_safe_name(job.case)}.png"
            save_case_overlay(
                path,
                image.array if image is not None else None,
                ref.array,
                pred.array,
                affine=ref.affine,
                n_slices=args.overlay_slices,
                title=f"{job.case}: reference vs prediction"
                + (" (all labels)" if len(case_labels) > 2 else ""),
            )
            overlays.append({"path": path, "caption": job.case})
    title = args.title or f"Evaluation of {inputs.get('predictions') or inputs.get('prediction')}"
    paths = write_evaluation_outputs(args.out, rows, title, inputs, overlays, skipped)
    if skipped:
        print(f"skipped {len(skipped)} cases without a prediction: {', '.join(skipped[:10])}")
    print(f"wrote {paths['report.html']}")
    return 0


def _read(spec: Path | ImageSpec, root: Path | None, kind: str) -> Volume:
    from lesionseg.data.manifest import ImageSpec, read_spec
    from lesionseg.io import read_volume

    if isinstance(spec, ImageSpec):
        return read_spec(spec, root or Path("."), kind)
    return read_volume(spec, "label" if kind == "label" else "image")


def _check_grid(ref: Volume, other: Volume, what: str) -> None:
    from lesionseg.io import require_same_grid

    require_same_grid(ref, other, what)


def _check_values(ref: Volume, pred: Volume, labels: dict[str, int] | None) -> dict[str, int]:
    """The labels to evaluate; LesionsegError for values outside the task's labels."""
    import numpy as np

    from lesionseg.errors import LesionsegError

    ref_values = set(np.unique(ref.array).tolist())
    pred_values = set(np.unique(pred.array).tolist())
    if labels is None:  # pair form without a manifest: binary when the reference is
        if ref_values <= {0, 1}:
            labels = BINARY_LABELS
        else:
            labels = {"background": 0} | {f"label_{v}": v for v in sorted((ref_values | pred_values) - {0})}
    allowed = set(labels.values())
    task = "binary (0/1)" if allowed <= {0, 1} else f"labels {sorted(allowed)}"
    if ref_values - allowed:
        raise LesionsegError(
            f"reference has values {sorted(ref_values - allowed)}, but the task is {task}", ref.source
        )
    if pred_values - allowed:
        raise LesionsegError(
            f"prediction has values {sorted(pred_values - allowed)}, but the task is {task} "
            f"(reference {ref.source})",
            pred.source,
        )
    return labels


def overlay_channel(channel_names: list[str]) -> str:
    """The channel drawn under the overlays: FLAIR when the manifest has one, else the first."""
    return next((c for c in channel_names if c.lower() == "flair"), channel_names[0])


def find_prediction(folder: Path, case_id: str) -> Path | None:
    """``<case>.nii.gz`` (or ``_mask``/``_seg``, ``.nii``/``.mha``/``.nrrd``) in ``folder``; ids with '/' are
    also tried with '_' and by their last part."""
    names = dict.fromkeys([case_id, case_id.replace("/", "_"), case_id.rsplit("/", 1)[-1]])
    for name in names:
        for suffix in PRED_SUFFIXES:
            for ext in PRED_EXTENSIONS:
                path = folder / f"{name}{suffix}{ext}"
                if path.is_file():
                    return path
    return None


def _folds_from_splits(path: Path, manifest: Manifest) -> dict[str, str]:
    from lesionseg.data.splits import load_splits

    splits = load_splits(path)
    tested: dict[str, str] = {}
    for fold in splits.folds:
        for name in fold.test:
            tested[str(name)] = str(fold.fold)
    return {c.id: tested.get(c.subject, tested.get(c.id, "")) for c in manifest.cases}


def _folds_from_manifest(manifest: Manifest) -> dict[str, str]:
    """Folds from ``"fold"`` keys of the manifest's cases (Case keeps no such field, so read the JSON)."""
    if manifest.path is None:
        return {}
    try:
        raw = json.loads(Path(manifest.path).read_text())
    except (OSError, ValueError):
        return {}
    return {str(c.get("id")): str(c["fold"]) for c in raw.get("cases", []) if c.get("fold") is not None}


def _case_name(path: Path) -> str:
    name = Path(path).name
    for ext in PRED_EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _safe_name(case: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", case).strip("_") or "case"


def evaluate_folder(
    pred_dir: Path,
    manifest: str | Path,
    root: Path,
    out: Path,
    folds: Path | None = None,
    skip_missing: bool = False,
    overlay_slices: int = 3,
    title: str | None = None,
) -> int:
    """``lesionseg evaluate --pred-dir ... --manifest ...`` as a function (for demo and cv)."""
    args = argparse.Namespace(
        pred=None,
        ref=None,
        image=None,
        case_id=None,
        pred_dir=Path(pred_dir),
        manifest=manifest,
        root=Path(root),
        folds=folds,
        skip_missing=skip_missing,
        out=Path(out),
        title=title,
        overlay_slices=overlay_slices,
    )
    return _evaluate_folder(args)
