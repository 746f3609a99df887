"""Lesion change between two studies: ``lesionseg compare`` beside two baselines, on real scans.

Data (read-only, ``../shared/data`` or ``--data``):

- ``open_ms_data/longitudinal``: patients 01, 03 and 19, raw FLAIRs **with skull** at two studies (T1W at
  both studies for patient01 only). ``coregistered/patientNN/gt.nii.gz`` is the reference of lesion change
  on a common grid; ``studyY_FLAIR_to_common_space.txt`` is an ITK transform with the common grid as its
  fixed image (it maps common-grid points into the raw FLAIR: resampling the raw study-2 FLAIR through it
  puts the brain inside ``brainmask.nii.gz``, checked by overlay; the inverse does not). The change map,
  which ``compare`` writes on study 2's native grid, is resampled into the common grid through study 2's
  transform (nearest neighbour) and scored there.
- ``mslesseg`` P14: time points T1 -> T2 and T2 -> T3, skull-stripped, already in one MNI space. The
  reference is the new lesions of the reference masks: the components (26-connected) of ``P14_Tk_MASK``
  that share no voxel with the previous time point's mask. Scored against ``compare``'s new lesions (code 1).

Methods, all on the same registration, skull-stripping (deepbet, on the T1 where the model takes one, else
on the FLAIR) and joint normalisation (:func:`lesionseg.infer.compare.align_studies`):

- ``compare``: ``lesionseg compare`` with its default rules (``ChangeOptions()``, chosen a priori);
- ``(a) segmentation difference``: the voxels where the two independent segmentations differ (open_ms) /
  the study-2 lesions that touch no study-1 lesion (P14), no rules, no subtraction evidence;
- ``(b) subtraction threshold``: |z| >= t of the subtraction image inside the joint brain (P14: z >= t),
  components under 15 mm^3 dropped; t in {2.0, 2.5, ..., 8.0} maximises the mean voxel Dice of the
  *other* open_ms patients (leave one patient out); for P14, of all three open_ms patients.

Ablation (what suppresses the flicker of two independent segmentations, each choice undone in turn on the
same masks): ``compare`` without the subtraction check (``min_subtraction_z=None``), without its size
minimums (new lesion >= 15 mm^3, enlarging by >= 50 % and >= 30 mm^3), and with each FLAIR normalised on its
own brain median and interquartile range instead of jointly (the subtraction check then reads that image).

Scores: voxel Dice of the change mask, and lesion-wise detection of change components as the WMH challenge
counts it (:mod:`lesionseg.metrics.lesions`): sensitivity = reference components hit, precision = predicted
components that hit the reference, F1. A model that takes a T1 cannot segment a study without one
(patients 03 and 19 at study 1): those rows are n/a.

    OMP_NUM_THREADS=1 python benchmarks/longitudinal_change.py [--model CKPT ...] [--device cpu]
      -> benchmarks/results/longitudinal_change.md (resumable: per-case arrays kept in --work)
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import shlex
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lesionseg.config.change import ChangeOptions
from lesionseg.infer.change import change_counts, classify_change
from lesionseg.infer.compare import (
    AlignedStudies,
    align_studies,
    change_from_masks,
    resolve_predictor,
    segment_studies,
)
from lesionseg.infer.files import InferenceOptions
from lesionseg.io import atomic_output
from lesionseg.metrics.lesions import label_lesions, lesion_detection
from lesionseg.preprocess.register import to_sitk
from lesionseg.preprocess.subtraction import subtraction_z

REPO = Path(__file__).resolve().parents[1]
PATIENTS = ("patient01", "patient03", "patient19")
P14_PAIRS = (("T1", "T2"), ("T2", "T3"))
THRESHOLDS = tuple(np.round(np.arange(2.0, 8.01, 0.5), 2))
MIN_COMPONENT_MM3 = 15.0
# compare with one of its choices undone (the ablation of what suppresses flicker); each is scored as compare
ABLATIONS = {
    "compare, no subtraction check": ChangeOptions(min_subtraction_z=None),
    "compare, no size minimums": ChangeOptions(min_new_mm3=0.0, min_change_fraction=0.0, min_change_mm3=0.0),
    "compare, FLAIRs normalised apart": ChangeOptions(),  # each FLAIR on its own brain median / IQR
}
METHODS = ("compare", "(a) segmentation difference", "(b) subtraction threshold", *ABLATIONS)


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    total = int(pred.sum()) + int(ref.sum())
    return 1.0 if total == 0 else 2.0 * int((pred & ref).sum()) / total


def drop_small(mask: np.ndarray, voxel_mm3: float, min_mm3: float = MIN_COMPONENT_MM3) -> np.ndarray:
    labels, count = label_lesions(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes * voxel_mm3 >= min_mm3
    keep[0] = False
    return keep[labels]


def new_components(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """Components of ``later`` that share no voxel with ``earlier``."""
    labels, count = label_lesions(later)
    touching = np.unique(labels[earlier & (labels > 0)])
    keep = np.ones(count + 1, dtype=bool)
    keep[0] = False
    keep[touching] = False
    return keep[labels]


def scores(pred: np.ndarray, ref: np.ndarray) -> dict:
    detection = lesion_detection(pred, ref)
    return {
        "dice": dice(pred, ref),
        "sensitivity": detection.lesion_recall,
        "precision": detection.lesion_precision,
        "f1": detection.lesion_f1,
        "ref_lesions": detection.ref_lesions,
        "pred_lesions": detection.pred_lesions,
    }


def to_common(
    volume_array: np.ndarray, grid_volume, reference: sitk.Image, transform, label: bool
) -> np.ndarray:  # noqa: ANN001
    """An array on study 2's grid resampled into the common grid through the shipped transform, (X, Y, Z)."""
    image = to_sitk(grid_volume.with_array(volume_array.astype(np.float32), kind="image"))
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    out = sitk.Resample(image, reference, transform, interpolator, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


def apart_z(aligned: AlignedStudies) -> np.ndarray:
    """The subtraction z image with each FLAIR normalised on its own (brain median, interquartile range)
    instead of jointly: what the joint normalisation is measured against."""
    inside = aligned.joint

    def own(image: np.ndarray) -> np.ndarray:
        low, mid, high = np.percentile(image[inside], (25.0, 50.0, 75.0))
        return (image - mid) / ((high - low) or 1.0)

    return subtraction_z(own(aligned.images1[0].array), own(aligned.images2[0].array), inside)


def ablation_maps(aligned: AlignedStudies, masks: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """Change maps (study 2's grid) of compare with each choice of ``ABLATIONS`` undone."""
    spacing = aligned.images2[0].spacing
    out = {}
    for name, options in ABLATIONS.items():
        z = apart_z(aligned) if "apart" in name else aligned.z
        out[name] = classify_change(masks[0], masks[1], spacing, z, options)[0]
    return out


def run_case(flairs, t1s, predictor, skull_strip: bool, device: str):  # noqa: ANN001, ANN201
    """(aligned studies, both masks or None, change result or None, seconds)."""
    names = predictor.channel_names
    needs_t1 = len(names) == 2
    segmentable = not needs_t1 or all(t is not None and Path(t).exists() for t in t1s)
    start = time.perf_counter()
    aligned = align_studies(
        flairs[0],
        flairs[1],
        t1s if needs_t1 and segmentable else None,
        names if segmentable else ["FLAIR"],
        skull_strip,
        device,
    )
    masks = result = None
    if segmentable:
        mask1, mask2 = segment_studies(predictor, aligned, skull_strip)
        masks = (mask1.array > 0, mask2.array > 0)
        result = change_from_masks(aligned, masks[0], masks[1], ChangeOptions())
    return aligned, masks, result, time.perf_counter() - start


def open_ms_case(data: Path, patient: str, predictor, work: Path, device: str) -> Path:  # noqa: ANN001
    """Run one patient (or reuse its saved arrays) -> npz: reference and each method on the common grid."""
    saved = work / f"{patient}.npz"
    if saved.exists():
        return saved
    raw, common = (
        data / "open_ms_data/longitudinal/raw" / patient,
        data / "open_ms_data/longitudinal/coregistered" / patient,
    )
    flairs = [raw / f"study{k}_FLAIR.nii.gz" for k in (1, 2)]
    t1s = [raw / f"study{k}_T1W.nii.gz" for k in (1, 2)]
    aligned, masks, result, seconds = run_case(flairs, t1s, predictor, True, device)
    reference = sitk.ReadImage(str(common / "gt.nii.gz"))
    transform = sitk.ReadTransform(str(common / "study2_FLAIR_to_common_space.txt"))
    grid = aligned.images2[0]
    arrays = {
        "gt": sitk.GetArrayFromImage(reference).transpose(2, 1, 0) > 0.5,
        "z": to_common(aligned.z, grid, reference, transform, False).astype(np.float16),
        "joint": to_common(aligned.joint, grid, reference, transform, True) > 0.5,
    }
    if result is not None:
        arrays["compare"] = to_common(result.change.array > 0, grid, reference, transform, True) > 0.5
        arrays["difference"] = to_common(masks[0] ^ masks[1], grid, reference, transform, True) > 0.5
        for name, change in ablation_maps(aligned, masks).items():
            arrays[name] = to_common(change > 0, grid, reference, transform, True) > 0.5
    meta = {
        "seconds": round(seconds, 1),
        "registration": aligned.registration,
        "spacing": list(reference.GetSpacing()),
    }
    if result is not None:
        meta["counts"] = change_counts(result.lesions)
    np.savez_compressed(work / f".{patient}.npz", **arrays)
    (work / f"{patient}.json").write_text(json.dumps(meta, indent=2))
    (work / f".{patient}.npz").replace(saved)
    return saved


def p14_case(data: Path, pair: tuple[str, str], predictor, work: Path, device: str) -> Path:  # noqa: ANN001
    saved = work / f"P14_{pair[0]}_{pair[1]}.npz"
    if saved.exists():
        return saved
    folder = data / "mslesseg/train/P14"
    flairs = [folder / t / f"P14_{t}_FLAIR.nii.gz" for t in pair]
    t1s = [folder / t / f"P14_{t}_T1.nii.gz" for t in pair]
    aligned, masks, result, seconds = run_case(flairs, t1s, predictor, False, device)
    refs = [
        sitk.GetArrayFromImage(sitk.ReadImage(str(folder / t / f"P14_{t}_MASK.nii.gz"))).transpose(2, 1, 0)
        > 0.5
        for t in pair
    ]
    arrays = {
        "gt": new_components(refs[1], refs[0]),
        "z": aligned.z.astype(np.float16),
        "joint": aligned.joint,
    }
    if result is not None:
        arrays["compare"] = result.change.array == 1
        arrays["difference"] = new_components(masks[1], masks[0])
        for name, change in ablation_maps(aligned, masks).items():
            arrays[name] = change == 1
    np.savez_compressed(work / f".{saved.name}", **arrays)
    (work / f"{saved.stem}.json").write_text(
        json.dumps({"seconds": round(seconds, 1), "registration": aligned.registration}, indent=2)
    )
    (work / f".{saved.name}").replace(saved)
    return saved


def cropped(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every array cut to the box holding every mask (the scores do not change; labelling runs faster)."""
    content = np.zeros(arrays["gt"].shape, dtype=bool)
    for name in ("gt", "joint", "compare", "difference", *ABLATIONS):
        if name in arrays:
            content |= np.asarray(arrays[name], dtype=bool)
    box = tuple(slice(int(w.min()), int(w.max()) + 1) for w in np.nonzero(content)) if content.any() else ()
    return {k: np.asarray(v)[box] for k, v in arrays.items()}


def subtraction_mask(case: dict, threshold: float, voxel_mm3: float, signed: bool) -> np.ndarray:
    z = case["z"].astype(np.float32)
    mask = ((z >= threshold) if signed else (np.abs(z) >= threshold)) & case["joint"]
    return drop_small(mask, voxel_mm3)


def fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument(
        "--model", type=Path, action="append", help="checkpoint(s) (default: the bundled model)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lesionseg_longitudinal_change"))
    parser.add_argument(
        "--cases",
        nargs="+",
        help="run only these cases (e.g. patient01 'P14 T2->T3'); the others are scored when saved in --work",
    )
    parser.add_argument("--score-only", action="store_true", help="score the cases saved in --work, run none")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/longitudinal_change.md")
    args = parser.parse_args(argv)
    if args.score_only:  # score what --work holds, run nothing
        predictor, args.cases = None, []
        model_name = "bundled model" if args.model is None else ", ".join(map(str, args.model))
    else:
        predictor = resolve_predictor(args.model, InferenceOptions(device=args.device), has_t1=True)
        model_name = ", ".join(m.source for m in predictor.members)
    work = args.work / ("bundled" if args.model is None else "_".join(p.stem for p in args.model))
    work.mkdir(parents=True, exist_ok=True)
    order = [*(p for p in ("patient03", "patient19", "patient01")), *(f"P14 {a}->{b}" for a, b in P14_PAIRS)]
    selected = order if args.cases is None else [n for n in order if n in args.cases]
    if args.score_only:
        saved = load_saved(order, work)
        pending = [n for n in order if n not in saved]
        write_markdown(args.out, *score_cases(saved, work), model_name, work, pending, args.data)
        print(f"wrote {args.out}")
        return 0
    cases: dict[str, dict] = {}
    for name in order:  # cheapest first; the table is rewritten after every case, so a cut run still reports
        saved = work / (
            f"{name}.npz" if name.startswith("patient") else f"P14_{name[4:].replace('->', '_')}.npz"
        )
        if name not in selected and not saved.exists():
            continue  # another process runs it (--cases), or it waits for a later run
        print(f"{name} ...", flush=True)
        if name.startswith("patient"):
            cases[name] = cropped(np.load(open_ms_case(args.data, name, predictor, work, args.device)))
        else:
            pair = tuple(name[4:].split("->"))
            cases[name] = cropped(np.load(p14_case(args.data, pair, predictor, work, args.device)))
        rows, chosen = score_cases(cases, work)
        pending = [n for n in order if n not in cases]
        write_markdown(args.out, rows, chosen, model_name, work, pending, args.data)
    print(f"wrote {args.out}")
    return 0


def load_saved(order: list[str], work: Path) -> dict[str, dict]:
    """The cases whose arrays --work holds, cropped."""
    cases = {}
    for name in order:
        saved = work / (
            f"{name}.npz" if name.startswith("patient") else f"P14_{name[4:].replace('->', '_')}.npz"
        )
        if saved.exists():
            cases[name] = cropped(np.load(saved))
    return cases


def score_cases(cases: dict[str, dict], work: Path) -> tuple[dict, dict]:
    """Rows per case and method; the subtraction threshold of each case chosen on the other open_ms cases."""
    open_ms = [p for p in PATIENTS if p in cases]
    voxel = {p: float(np.prod(json.loads((work / f"{p}.json").read_text())["spacing"])) for p in open_ms}

    @functools.cache
    def dice_at(patient: str, t: float) -> float:
        return dice(subtraction_mask(cases[patient], t, voxel[patient], False), cases[patient]["gt"])

    def mean_dice(patients: list[str], t: float) -> float:
        return float(np.mean([dice_at(p, t) for p in patients]))

    rows: dict[str, dict] = {}
    chosen: dict[str, float | None] = {}
    for name, case in cases.items():
        others = [p for p in open_ms if p != name]
        chosen[name] = max(THRESHOLDS, key=lambda t: mean_dice(others, t)) if others else None
        signed = not name.startswith("patient")
        size = voxel.get(name, 1.0)
        rows[name] = {
            METHODS[0]: scores(case["compare"], case["gt"]) if "compare" in case else None,
            METHODS[1]: scores(case["difference"], case["gt"]) if "difference" in case else None,
            METHODS[2]: None
            if chosen[name] is None
            else scores(subtraction_mask(case, chosen[name], size, signed), case["gt"]),
        } | {method: scores(case[method], case["gt"]) if method in case else None for method in ABLATIONS}
    return rows, chosen


def alignment_check(data: Path, patient: str, work: Path) -> str:
    """How well an open_ms patient's common-space arrays line up with its reference: Dice of the joint brain
    mask against the shipped ``brainmask.nii.gz``, and the median subtraction z on the reference's change
    voxels (a change that the scans show brightens them)."""
    saved = np.load(work / f"{patient}.npz")
    reference = data / "open_ms_data/longitudinal/coregistered" / patient / "brainmask.nii.gz"
    brain = sitk.GetArrayFromImage(sitk.ReadImage(str(reference))).transpose(2, 1, 0) > 0
    joint, gt = saved["joint"], saved["gt"]
    z = float(np.median(saved["z"][gt].astype(np.float32))) if gt.any() else float("nan")
    return (
        f"joint brain mask against the reference brain mask: Dice {dice(joint, brain):.3f}; median "
        f"subtraction z on the reference change voxels: {z:.2f}"
    )


def write_markdown(
    path: Path, rows: dict, chosen: dict, model_name: str, work: Path, pending: list[str], data: Path
) -> None:
    columns = ["dice", "sensitivity", "precision", "f1", "ref_lesions", "pred_lesions"]
    header = (
        "| method | voxel Dice | lesion sensitivity | lesion precision | lesion F1 | reference components "
        "| predicted components |"
    )
    rule = "|---|---|---|---|---|---|---|"
    command = "OMP_NUM_THREADS=1 python benchmarks/longitudinal_change.py " + shlex.join(sys.argv[1:])
    lines = [
        "# Lesion change between two studies (`lesionseg compare`)",
        "",
        f"Produced by `{command.strip()}` on {datetime.date.today().isoformat()}; model: `{model_name}`. "
        "The cases are run and saved in --work by the same script (resumable, `--cases` per process); "
        "`--score-only` scores what is saved.",
        "Definitions, data and baselines: the docstring of `benchmarks/longitudinal_change.py`; rules of "
        "`compare`: `docs/compare.md` (defaults, chosen before this benchmark was run).",
        "n/a: the model takes a T1 and the study has none. The rows `compare, ...` are the ablation: compare "
        "with one of its choices undone (no subtraction check; no minimum volume or change; the two FLAIRs "
        "normalised each on its own instead of jointly), on the same masks and registration.",
        "",
    ]
    for case, methods in rows.items():
        meta_file = work / (
            f"{case}.json" if case.startswith("patient") else f"P14_{case[4:].replace('->', '_')}.json"
        )
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        t = chosen[case]
        reg = meta.get("registration", {})
        lines += [
            f"## {case}",
            "",
            f"Subtraction threshold (b) t = {'n/a (no other open_ms patient scored)' if t is None else t} "
            f"(chosen on the other open_ms patients); registration of study 1 onto study 2: angles "
            f"{reg.get('angles_deg')} deg, translation {reg.get('translation_mm')} mm; compare's counts "
            f"{meta.get('counts', 'n/a')}; {meta.get('seconds', '?')} s wall time (2 shared, busy cores)."
            + (f" Alignment: {alignment_check(data, case, work)}." if case.startswith("patient") else ""),
            "",
            header,
            rule,
        ]
        for method, row in methods.items():
            cells = [fmt(None if row is None else row[c]) for c in columns]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    if pending:
        lines += [f"Not run before the deadline of this run (rerun to resume): {', '.join(pending)}.", ""]
    lines += [
        "## Median over the cases scored (open_ms patients and P14 pairs)",
        "",
        header.replace("| reference components | predicted components |", "| cases |"),
        "|---|---|---|---|---|---|",
    ]
    for method in METHODS:
        scored = [r[method] for r in rows.values() if r[method] is not None]
        cells = [fmt(statistics.median(r[c] for r in scored)) if scored else "n/a" for c in columns[:4]]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {len(scored)} |")
    lines.append("")
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
