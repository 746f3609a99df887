"""``lesionseg evaluate``: challenge-grade metrics per case, summaries, plots, overlays and an HTML report.

Two forms:

- a pair: ``--pred P.nii.gz --ref R.nii.gz [--image FLAIR.nii.gz] --out DIR``
  (``--manifest`` optionally names the labels and regions, e.g. BraTS WT/TC/ET);
- a predictions folder against a manifest: ``--pred-dir DIR --manifest M --root R --out DIR``; the prediction
  of case X is ``X.nii.gz`` (or ``X_mask.nii.gz``, ``X_seg.nii.gz``; also ``.nii``, ``.mha``, ``.nrrd``).
  Cases carry a fold from ``--folds SPLITS.json`` (the fold whose ``test`` lists the case's subject or id)
  or from a ``"fold"`` key of the case in the manifest.

The work is done by :mod:`lesionseg.evaluate.folder`; output layout: see :mod:`lesionseg.report.evaluation`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


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
    parser.add_argument(
        "--model",
        type=Path,
        help="checkpoint (or training run folder) that made the predictions: named in the report's "
        "provenance with its method and threshold (from the run's config.json), and its loss curve shown "
        "(default: the predictions' JSON sidecar, if any)",
    )
    parser.add_argument("--title", help="report title (default: 'Evaluation of' the predictions)")
    parser.add_argument("--overlay-slices", type=int, default=3, help="axial slices per overlay (0: none)")
    parser.add_argument("--threshold", type=float, help="probability threshold used, for the provenance")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lesionseg.errors import LesionsegError
    from lesionseg.evaluate.folder import evaluate_folder, evaluate_pair
    from lesionseg.report.evaluation import provenance_from_run

    provenance = None
    if args.model is not None:
        if not args.model.exists():
            raise LesionsegError("model not found", args.model)
        provenance = provenance_from_run(args.model)
    if args.threshold is not None:
        provenance = (provenance or {}) | {"threshold": args.threshold}

    if args.pred_dir is not None:
        if args.pred or args.ref:
            raise LesionsegError("give either --pred/--ref or --pred-dir/--manifest, not both")
        if not args.manifest or args.root is None:
            raise LesionsegError("--pred-dir needs --manifest and --root")
        evaluate_folder(
            args.pred_dir,
            args.manifest,
            args.root,
            args.out,
            folds=args.folds,
            skip_missing=args.skip_missing,
            overlay_slices=args.overlay_slices,
            title=args.title,
            provenance=provenance,
        )
        return 0
    if args.pred is None or args.ref is None:
        raise LesionsegError("give --pred and --ref (a pair) or --pred-dir, --manifest and --root (a folder)")
    if args.folds is not None:
        raise LesionsegError("--folds applies to --pred-dir evaluation only", args.folds)
    evaluate_pair(
        args.pred,
        args.ref,
        args.out,
        image=args.image,
        manifest=args.manifest,
        case_id=args.case_id,
        title=args.title,
        overlay_slices=args.overlay_slices,
        provenance=provenance,
    )
    return 0
