"""TS-CNN on the authors' PWML slices: lesions found at the authors' threshold (0.7) and at 0.5, and the
lesion probabilities behind those counts (issue "Test each paper's claims").

Reads the PWML rows that ``benchmarks/claims_runs.py`` trained (``runs/claims/pwml/<row>/seed_<s>``: every
fold's checkpoint and its split) and predicts each fold's held-out neonates once more with the checkpoint
cv used. The probability maps are thresholded at 0.5 and 0.7 and scored slice by slice as cv scores them
(labelled slices only, 2D 8-connected lesions; a reference lesion is found when one predicted pixel touches
it). Then, as evidence of what the threshold can and cannot change, for every reference lesion the highest
probability inside it, and for the brain pixels of the same slices away from every lesion (more than 2
pixels) the 99.9th percentile and the maximum: a threshold finds a lesion only where the first exceeds it,
and adds false lesions where the others do. ``pwml_probability.png`` shows the probability maps around
the lesions of the first fold of each row (seed 0).

    python benchmarks/pwml_threshold.py            # -> benchmarks/results/pwml_threshold.md, .png
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from _timing import markdown_table, write_result
from scipy import ndimage

from lesionseg.data.cache import PreprocessCache
from lesionseg.data.label_slices import labelled_slices, only_labelled_slices
from lesionseg.data.manifest import load_case, load_manifest
from lesionseg.evaluate.labelled_slices import labelled_slice_metrics
from lesionseg.infer.predictor import Predictor, load_members
from lesionseg.infer.slicewise import foreground_probability, to_label
from lesionseg.preprocess.pipeline import invert

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
THRESHOLDS = (0.5, 0.7)
MARGIN_PX = 2  # background pixels are this far from every reference lesion or more


def fold_probabilities(run: Path, data: Path, cache: PreprocessCache) -> list[dict]:
    """Per fold of one cv run: its test cases' lesion probabilities and references on the original grid."""
    manifest = load_manifest("tscnn_pwml_test")
    splits = json.loads((run / "splits.json").read_text())["folds"]
    out = []
    for fold in splits:
        checkpoints = sorted((run / f"fold_{fold['fold']}").glob("*/best.pt"))
        if len(checkpoints) != 1:  # a fold cv did not run (--only-fold)
            continue
        predictor = Predictor(load_members(checkpoints))
        cases = []
        for case in (c for c in manifest.cases if c.subject in fold["test"]):
            loaded = load_case(manifest, case, data)
            pre = cache.get(manifest, case, data, predictor.preprocess_config)
            pre = only_labelled_slices(pre, labelled_slices(case, pre.record))
            _, mean, _ = predictor.predict_preprocessed(pre)
            cases.append(
                {
                    "case": case,
                    "reference": loaded.reference,
                    "ref": np.asarray(loaded.label.array) > 0,
                    "mean": mean,
                    "record": pre.record,
                    "prob": invert(foreground_probability(mean), pre.record, "image"),
                    "brain": invert(np.asarray(pre.mask), pre.record, "label") > 0,
                }
            )
        out.append({"fold": fold["fold"], "predictor": predictor, "cases": cases, "manifest": manifest})
    return out


def threshold_rows(folds: list[dict], threshold: float, seed: int) -> list[dict]:
    """cv's labelled-slice metrics rows of every fold at ``threshold``."""
    rows = []
    for fold in folds:
        predictor = fold["predictor"]
        for c in fold["cases"]:
            labels = to_label(c["mean"], threshold)
            pred = predictor.labels_on_original_grid(labels, c["mean"].shape[0], c["record"])
            extra = {"fold": fold["fold"], "seed": seed}
            rows += labelled_slice_metrics(
                fold["manifest"], c["case"], c["reference"], pred, c["ref"].astype(np.uint8), extra
            )
    return rows


def lesion_evidence(folds: list[dict]) -> tuple[list[float], list[float], list[float]]:
    """Highest probability inside each reference lesion; per labelled slice the 99.9th percentile and the
    maximum of the probability over brain pixels at least ``MARGIN_PX`` from every lesion."""
    inside, p999, top = [], [], []
    for fold in folds:
        for c in fold["cases"]:
            for z in c["case"].label_slices or ():
                ref, prob = c["ref"][:, :, z], c["prob"][:, :, z]
                labels, n = ndimage.label(ref, structure=np.ones((3, 3), bool))
                inside += [float(prob[labels == i].max()) for i in range(1, n + 1)]
                away = c["brain"][:, :, z] & ~ndimage.binary_dilation(ref, iterations=MARGIN_PX)
                if away.any():
                    p999.append(float(np.percentile(prob[away], 99.9)))
                    top.append(float(prob[away].max()))
    return inside, p999, top


def probability_figure(examples: list[tuple[str, dict]], path: Path) -> None:
    """One row per method: the T1 crop around each lesion slice of its first fold, with the probability
    map (colour) and the reference outline (white)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(sum(len(c["case"].label_slices or ()) for c in fold["cases"]) for _, fold in examples)
    fig, axes = plt.subplots(
        len(examples), columns, figsize=(1.8 * columns, 1.9 * len(examples)), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for r, (name, fold) in enumerate(examples):
        slices = [(c, z) for c in fold["cases"] for z in c["case"].label_slices or ()]
        for k, (c, z) in enumerate(slices):
            ref, prob = c["ref"][:, :, z], c["prob"][:, :, z]
            image = np.asarray(c["reference"].array)[:, :, z]
            rows, cols = np.nonzero(ref)
            r0 = int(np.clip(np.median(rows) - 24, 0, ref.shape[0] - 48))
            c0 = int(np.clip(np.median(cols) - 24, 0, ref.shape[1] - 48))
            window = (slice(r0, r0 + 48), slice(c0, c0 + 48))
            ax = axes[r, k]
            ax.imshow(image[window].T, cmap="gray", origin="lower")
            shown = ax.imshow(prob[window].T, cmap="magma", vmin=0, vmax=1, alpha=0.6, origin="lower")
            ax.contour(
                ref[window].T.astype(float), levels=[0.5], colors="white", linewidths=0.6, origin="lower"
            )
            ax.set_title(f"{c['case'].id} max {prob[ref].max():.2f}", fontsize=6)
        axes[r, 0].text(-0.1, 0.5, name, transform=axes[r, 0].transAxes, rotation=90, va="center",
                        ha="right", fontsize=7)  # fmt: skip
    fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.6, label="lesion probability")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "claims")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=RESULTS / "pwml_threshold.md")
    args = parser.parse_args()
    data = args.data / "tscnn_pwml_test"
    rows_out, evidence_out, examples = [], [], []
    cache = PreprocessCache(args.runs / "cache")
    for row_dir in sorted(p for p in (args.runs / "pwml").glob("*") if p.is_dir()):
        runs = sorted(p for p in row_dir.glob("seed_*") if (p / "metrics.csv").exists())
        if not runs:
            continue
        per_threshold: dict[float, list[dict]] = {t: [] for t in THRESHOLDS}
        inside, p999, top = [], [], []
        for run in runs:
            seed = int(run.name.split("_")[1])
            folds = fold_probabilities(run, data, cache)
            if run == runs[0]:
                examples.append((row_dir.name, folds[0]))
            for t in THRESHOLDS:
                per_threshold[t] += threshold_rows(folds, t, seed)
            a, b, c = lesion_evidence(folds)
            inside, p999, top = inside + a, p999 + b, top + c
        n_folds = len({(r["seed"], r["fold"]) for r in per_threshold[THRESHOLDS[0]]})
        for t in THRESHOLDS:
            rows = per_threshold[t]
            found_folds = {(r["seed"], r["fold"]) for r in rows if r["lesions_detected"] > 0}
            rows_out.append(
                [
                    row_dir.name,
                    f"{t:.1f}" + (" (authors)" if t == 0.7 else ""),
                    f"{len(found_folds)} / {n_folds}",
                    f"{sum(r['lesions_detected'] for r in rows)} / {sum(r['ref_lesions'] for r in rows)}",
                    sum(r["lesions_false"] for r in rows),
                    f"{statistics.median(r['dsc'] for r in rows):.3f}",
                ]
            )
        evidence_out.append(
            [
                row_dir.name,
                len(inside),
                f"{statistics.median(inside):.3f}",
                f"{max(inside):.3f}",
                *(f"{sum(v >= t for v in inside)}" for t in THRESHOLDS),
                f"{statistics.median(p999):.3f}",
                f"{statistics.median(top):.3f}",
            ]
        )
        print(f"scored {row_dir.name} ({len(runs)} seeds)", flush=True)
    if not rows_out:
        print(
            f"error: {args.runs / 'pwml'}: no finished PWML runs (benchmarks/claims_runs.py)", file=sys.stderr
        )
        return 2
    png = args.out.with_name("pwml_probability.png")
    probability_figure(examples, png)
    text = "\n".join(
        [
            "# TS-CNN on the PWML slices: threshold 0.5 against the authors' 0.7, and the probabilities",
            "",
            "- command: `python benchmarks/pwml_threshold.py` on the runs of `benchmarks/claims_runs.py` "
            "(the PWML claims: every leave-one-subject-out fold, each seed; the checkpoint cv used)",
            "- a reference lesion is found when a predicted pixel touches it (2D, 8-connected, labelled "
            "slices only); false = predicted components touching no lesion; Dice per labelled slice",
            "",
            markdown_table(
                [
                    "run folder",
                    "threshold",
                    "folds with a lesion found (seed x fold)",
                    "lesions found",
                    "false components",
                    "median slice Dice",
                ],
                rows_out,
                align="ll" + "r" * 4,
            ),  # fmt: skip
            "",
            f"The probabilities behind the counts: the highest probability inside each reference lesion, "
            f"and over the brain pixels of the same slices at least {MARGIN_PX} pixels from every lesion the "
            "99.9th percentile and the maximum (medians over slices). A lesion can be found at a threshold "
            "only if its highest probability reaches it. `pwml_probability.png`: the maps around the "
            "lesions of each row's first fold (seed 0), reference outlined in white.",
            "",
            markdown_table(
                [
                    "run folder",
                    "lesions (all seeds)",
                    "median max in lesion",
                    "highest max in lesion",
                    "lesions reaching 0.5",
                    "lesions reaching 0.7",
                    "background p99.9",
                    "background max",
                ],
                evidence_out,
                align="l" + "r" * 7,
            ),  # fmt: skip
        ]
    )
    print(text)
    print("wrote", write_result(args.out, text), png, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
