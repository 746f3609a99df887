"""Three sites, every subject, FLAIR alone (issue "Three sites"): ``ms_three_sites`` (8 subjects, 10 scans).

Schemes (the rows of ``three_sites.json``; the folds are fixed in ``RUNS/<scheme>/splits.json``):
- ``loso``: leave-one-subject-out over the 8 subjects (P14's three time points stay together);
- ``losite``: leave-one-site-out (train on two sites, test every scan of the third). Its three fold models
  are also the shipped model's members (nnU-Net's habit: the cross-validation ensemble), each trained on
  every subject outside one site.
No validation subject is held out (every training subject trains; ``calibrate=false``): the networks are
scored at threshold 0.5 without a size filter, and again with a threshold and minimum lesion size chosen on
the pooled out-of-fold probabilities of the *other* subjects (never the scored one), kept at 0.5 / 0 unless
the pooled choice beats it there by ``POOLED_MARGIN`` mean Dice (the rule was fixed before the runs).

Rows per scheme: the FLAIR-threshold floor (k fitted on the fold's training scans), each model row of the
config, and on ISBI the inter-rater Dice (rater 2 against rater 1, the human ceiling); the old bundled
FLAIR+T1 model where a T1 exists (open_ms_data, mslesseg), marked where the scan was in its training set.

Every (row, scheme, fold) is one job that writes ``RUNS/<scheme>/<row>/fold_<k>.json`` when it finishes
(resumable; the out-of-fold probabilities go beside it). Run the jobs in two processes, one thread each::

    OMP_NUM_THREADS=1 python experiments/three_sites.py --worker 0/2 &
    OMP_NUM_THREADS=1 python experiments/three_sites.py --worker 1/2 &
    wait; python experiments/three_sites.py --report   # -> benchmarks/results/three_sites.md
    python experiments/three_sites.py --ship flair-5m    # -> src/lesionseg/models/ms_flair
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lesionseg.config.train import resolve_train_config
from lesionseg.data.cache import PreprocessCache
from lesionseg.data.manifest import Manifest, load_case, load_manifest
from lesionseg.data.splits import Fold, Splits, load_splits, make_splits
from lesionseg.evaluate.floor import fit_floor_k, floor_mask
from lesionseg.infer.ensemble_file import write_ensemble_calibration
from lesionseg.infer.predictor import Predictor, load_members, remove_small_components
from lesionseg.infer.slicewise import foreground_probability
from lesionseg.metrics import label_map_metrics
from lesionseg.metrics.lesions import label_lesions
from lesionseg.nets.checkpoint import save_checkpoint, shipped_state
from lesionseg.preprocess import invert
from lesionseg.train.calibrate import MIN_SIZES_MM3, THRESHOLDS, dice, size_filtered_masks
from lesionseg.train.run import train_model

REPO = Path(__file__).resolve().parents[1]
CONFIG = json.loads((Path(__file__).with_suffix(".json")).read_text())
MANIFEST = CONFIG["manifest"]
SCHEMES = CONFIG["schemes"]
ROWS: dict[str, list[str]] = CONFIG["rows"]
# rows that train nothing: the average of other rows' out-of-fold probabilities, fold by fold
ENSEMBLES: dict[str, list[str]] = CONFIG.get("ensembles", {})
POOLED_MARGIN = CONFIG["pooled_margin"]
MONITOR = CONFIG["monitor_subjects"]
SMALL_MM3 = 100.0  # "small lesion": under 100 mm^3
CACHE = REPO / "runs" / "three_sites" / "cache"  # shared by the quick check
QUICK = False


def fixed_splits(manifest: Manifest, scheme: str, runs: Path) -> Splits:
    """The scheme's folds, made once and saved (validation empty: every training subject trains)."""
    path = runs / scheme / "splits.json"
    if path.exists():
        return load_splits(path, manifest.subjects)
    if scheme == "loso":
        made = make_splits(manifest.subjects, len(manifest.subjects), seed=0, val_fraction=0.0)
        folds = [Fold(f.fold, sorted([*f.train, *f.val]), [], f.test) for f in made.folds]
        splits = Splits("leave-one-subject-out", 0, folds)
    else:
        sites = sorted({c.site or "unknown" for c in manifest.cases})
        folds = []
        for k, site in enumerate(sites):
            test = sorted({c.subject for c in manifest.cases if (c.site or "unknown") == site})
            folds.append(Fold(k, sorted(set(manifest.subjects) - set(test)), [], test))
        splits = Splits("leave-one-site-out", 0, folds)
    path.parent.mkdir(parents=True, exist_ok=True)
    splits.save(path)
    return splits


def small_lesion_recall(pred: np.ndarray, ref: np.ndarray, voxel_mm3: float) -> tuple[int, int]:
    """(reference lesions under ``SMALL_MM3`` that the prediction touches, all such lesions)."""
    labels, n = label_lesions(ref > 0)
    if n == 0:
        return 0, 0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:] * voxel_mm3
    small = np.flatnonzero(sizes < SMALL_MM3) + 1
    hit = np.unique(labels[(pred > 0) & (labels > 0)])
    return int(np.isin(small, hit).sum()), int(small.size)


def score(pred: np.ndarray, loaded, case_id: str, extra: dict) -> dict:  # noqa: ANN001
    """One scan's metric row (on its original grid), with the small-lesion recall counts."""
    ref = (np.asarray(loaded.label.array) > 0).astype(np.uint8)
    row = label_map_metrics(
        pred, ref, loaded.reference.spacing, {"background": 0, "lesion": 1}, None, case_id, extra
    )[0]
    hit, small = small_lesion_recall(pred, ref, float(np.prod(loaded.reference.spacing)))
    return row | {"small_hit": hit, "small_total": small}


def fold_teacher(overrides: list[str], scheme: str, k: int, runs: Path) -> list[str] | None:
    """``teacher=fold:NAME`` (NAME an ensemble of the config) becomes the fold's checkpoints of NAME's rows:
    a student of fold ``k`` learns from networks that never saw fold ``k``'s test subjects. None while one
    of them is not trained yet."""
    out = []
    for item in overrides:
        if item.startswith("teacher=fold:"):
            paths = [runs / scheme / m / f"fold_{k}" / "best.pt" for m in ENSEMBLES[item.split(":", 1)[1]]]
            if not all((p.parent.with_suffix(".json")).exists() for p in paths):
                return None
            item = "teacher=" + ",".join(map(str, paths))
        out.append(item)
    return out


def run_model_fold(row: str, scheme: str, k: int, manifest: Manifest, data: Path, runs: Path) -> dict | None:
    """Train ``row`` on fold ``k`` (resuming), save the test scans' probabilities, score them at 0.5 / 0;
    None when its teacher is not trained yet."""
    quick = ["budget_s=30"] if QUICK else []
    overrides = fold_teacher(ROWS[row], scheme, k, runs)
    if overrides is None:
        return None
    cfg = resolve_train_config("lesion-unet", "cpu", overrides=[*overrides, "calibrate=false", *quick])
    fold = fixed_splits(manifest, scheme, runs).folds[k]
    cache = PreprocessCache(CACHE)
    out = runs / scheme / row / f"fold_{k}"
    cpu0 = time.process_time()
    # every training subject trains; the loss curve is watched on one of them (the first of MONITOR that
    # trains in this fold: a scan with few lesion slices, so that watching costs little of the budget)
    monitor = next(s for s in [*MONITOR, *fold.train] if s in fold.train)
    result = train_model(cfg, manifest, data, fold.train, [monitor], out, cache, True, False)
    train_cpu = time.process_time() - cpu0
    predictor = Predictor(
        load_members([result.best]), threshold=0.5, min_lesion_mm3=0.0, bf16=True, flip_tta=cfg.flip_tta
    )
    rows = []
    for case in (c for c in manifest.cases if c.subject in fold.test):
        pre = cache.get(manifest, case, data, cfg.preprocess)
        _, mean, _ = predictor.predict_preprocessed(pre)
        prob = foreground_probability(mean).astype(np.float16)
        np.savez_compressed(out / f"prob_{case.id}.npz", prob=prob)
        pred = invert((prob >= 0.5).astype(np.uint8), pre.record, "label").astype(np.uint8)
        rows.append(score(pred, load_case(manifest, case, data), case.id, {"row": row, "fold": k}))
    return {
        "rows": rows,
        "train_cpu_minutes": round(train_cpu / 60, 2),
        "train": fold.train,
        "test": fold.test,
    }


def ensemble_fold(name: str, scheme: str, k: int, manifest: Manifest, data: Path, runs: Path) -> dict | None:
    """The average of ``name``'s rows' saved probabilities on fold ``k``'s test scans, scored at 0.5 / 0;
    None while one of them is missing."""
    members = [runs / scheme / m / f"fold_{k}" for m in ENSEMBLES[name]]
    if not all(m.with_suffix(".json").exists() for m in members):
        return None
    cfg = resolve_train_config("lesion-unet", "cpu")
    fold = fixed_splits(manifest, scheme, runs).folds[k]
    cache = PreprocessCache(CACHE)
    out = runs / scheme / name / f"fold_{k}"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in (c for c in manifest.cases if c.subject in fold.test):
        probs = [np.load(m / f"prob_{case.id}.npz")["prob"].astype(np.float32) for m in members]
        prob = np.mean(probs, axis=0)
        np.savez_compressed(out / f"prob_{case.id}.npz", prob=prob.astype(np.float16))
        pre = cache.get(manifest, case, data, cfg.preprocess)
        pred = invert((prob >= 0.5).astype(np.uint8), pre.record, "label").astype(np.uint8)
        rows.append(score(pred, load_case(manifest, case, data), case.id, {"row": name, "fold": k}))
    return {"rows": rows, "members": ENSEMBLES[name], "train": fold.train, "test": fold.test}


def floor_fold(scheme: str, k: int, manifest: Manifest, data: Path, runs: Path) -> dict:
    cfg = resolve_train_config("lesion-unet", "cpu")
    fold = fixed_splits(manifest, scheme, runs).folds[k]
    cache = PreprocessCache(CACHE)
    fit = [cache.get(manifest, c, data, cfg.preprocess) for c in manifest.cases if c.subject in fold.train]
    best_k = fit_floor_k(fit)
    rows = []
    for case in (c for c in manifest.cases if c.subject in fold.test):
        pre = cache.get(manifest, case, data, cfg.preprocess)
        pred = invert(floor_mask(pre, best_k), pre.record, "label").astype(np.uint8)
        rows.append(score(pred, load_case(manifest, case, data), case.id, {"row": "floor", "fold": k}))
    return {"rows": rows, "k": best_k, "test": fold.test}


def jobs(manifest: Manifest, runs: Path) -> list[tuple[str, str, int]]:
    out = []
    for row in ["floor", *ROWS, *ENSEMBLES]:
        for scheme in SCHEMES:
            out += [(row, scheme, k) for k in range(len(fixed_splits(manifest, scheme, runs).folds))]
    return out


def run_worker(
    index: int,
    count: int,
    data: Path,
    runs: Path,
    rows: list[str] | None = None,
    schemes: list[str] | None = None,
) -> None:
    manifest = load_manifest(MANIFEST)
    todo = [
        job
        for job in jobs(manifest, runs)
        if (rows is None or job[0] in rows) and (schemes is None or job[1] in schemes)
    ]
    for j, (row, scheme, k) in enumerate(todo):
        done = runs / scheme / row / f"fold_{k}.json"
        if j % count != index or done.exists():
            continue
        started = time.monotonic()
        if row == "floor":
            result = floor_fold(scheme, k, manifest, data, runs)
        elif row in ENSEMBLES:
            result = ensemble_fold(row, scheme, k, manifest, data, runs)
        else:
            result = run_model_fold(row, scheme, k, manifest, data, runs)
        if result is None:
            print(f"{scheme} {row} fold {k}: waits for the rows it averages or learns from", flush=True)
            continue
        result |= {
            "date": str(datetime.date.today()),
            "wall_minutes": round((time.monotonic() - started) / 60, 2),
        }
        done.parent.mkdir(parents=True, exist_ok=True)
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1, default=float) + "\n")
        tmp.replace(done)
        dsc = [round(r["dsc"], 3) for r in result["rows"]]
        print(f"{scheme} {row} fold {k}: Dice {dsc} ({result['wall_minutes']} min)", flush=True)


# -- the report --------------------------------------------------------------------------------------------
def dice_table(runs: Path, scheme: str, row: str, manifest: Manifest, data: Path) -> dict[str, tuple]:
    """Per out-of-fold scan: (subject, Dice of every (threshold, minimum size) pair of the calibration grid
    (``train.calibrate``), shape (thresholds, sizes)), on the preprocessed grid; cached in the row's
    folder."""
    cached = runs / scheme / row / "dice_table.json"
    if cached.exists():
        raw = json.loads(cached.read_text())
        return {k: (v[0], np.asarray(v[1])) for k, v in raw.items()}
    cfg = resolve_train_config("lesion-unet", "cpu")
    cache = PreprocessCache(CACHE)
    table = {}
    for case in manifest.cases:
        found = list((runs / scheme / row).glob(f"fold_*/prob_{case.id}.npz"))
        if not found:
            continue
        pre = cache.get(manifest, case, data, cfg.preprocess)
        prob, ref = np.load(found[0])["prob"].astype(np.float32), np.asarray(pre.label) > 0
        voxel = float(np.prod(pre.spacing))
        rows = [
            [dice(m, ref) for m in size_filtered_masks(prob, t, voxel, MIN_SIZES_MM3)] for t in THRESHOLDS
        ]
        table[case.id] = (case.subject, np.asarray(rows))
    cached.write_text(json.dumps({k: [v[0], v[1].tolist()] for k, v in table.items()}) + "\n")
    return table


def pooled_choice(table: dict[str, tuple], subjects: set[str]) -> dict:
    """The (threshold, minimum size) of the highest mean Dice over the scans of ``subjects`` (ties: the pair
    closest to 0.5 / 0), kept only when it beats 0.5 / 0 there by POOLED_MARGIN; else 0.5 / 0."""
    scores = np.mean([d for s, d in table.values() if s in subjects], axis=0)
    penalty = np.abs(np.asarray(THRESHOLDS) - 0.5)[:, None] + 1e-3 * np.arange(len(MIN_SIZES_MM3))[None, :]
    best = np.unravel_index(np.lexsort((penalty.ravel(), -scores.ravel()))[0], scores.shape)
    default = scores[THRESHOLDS.index(0.5), 0]
    adopted = scores[best] >= default + POOLED_MARGIN
    return {
        "threshold": float(THRESHOLDS[best[0]]) if adopted else 0.5,
        "min_lesion_mm3": float(MIN_SIZES_MM3[best[1]]) if adopted else 0.0,
        "pooled_best": [float(THRESHOLDS[best[0]]), float(MIN_SIZES_MM3[best[1]])],
        "pooled_best_dice": float(scores[best]),
        "pooled_dice_at_default": float(default),
        "scans": int(sum(s in subjects for s, _ in table.values())),
    }


def pooled_rows(runs: Path, scheme: str, row: str, manifest: Manifest, data: Path) -> list[dict]:
    """Each scan scored with the pair chosen on the pooled out-of-fold probabilities of the other subjects."""
    if not (runs / scheme / row).is_dir():  # a row that has not run in this scheme
        return []
    cfg = resolve_train_config("lesion-unet", "cpu")
    cache = PreprocessCache(CACHE)
    table = dice_table(runs, scheme, row, manifest, data)
    out = []
    for case in manifest.cases:
        found = list((runs / scheme / row).glob(f"fold_*/prob_{case.id}.npz"))
        if not found:
            continue
        chosen = pooled_choice(table, set(manifest.subjects) - {case.subject})
        threshold, min_mm3 = chosen["threshold"], chosen["min_lesion_mm3"]
        pre = cache.get(manifest, case, data, cfg.preprocess)
        labels = (np.load(found[0])["prob"].astype(np.float32) >= threshold).astype(np.uint8)
        if min_mm3 > 0:
            labels = remove_small_components(labels, pre.spacing, min_mm3)
        pred = invert(labels, pre.record, "label").astype(np.uint8)
        extra = {"row": f"{row}-pooled", "threshold": threshold, "min_lesion_mm3": min_mm3}
        out.append(score(pred, load_case(manifest, case, data), case.id, extra))
    return out


def inter_rater_rows(data: Path) -> dict[str, float]:
    """ISBI: rater 2 scored against rater 1 (both on the FLAIR grid): the human ceiling, per scan."""
    r1, r2 = load_manifest("isbi2015_subset"), load_manifest("isbi2015_subset_rater2")
    root = data / "isbi2015_subset"
    out = {}
    for a, b in zip(r1.cases, r2.cases, strict=True):
        ref = load_case(r1, a, root).label.array > 0
        other = load_case(r2, b, root).label.array > 0
        out[a.id] = float(2 * (ref & other).sum() / max(ref.sum() + other.sum(), 1))
    return out


def old_bundled_rows(data: Path, runs: Path) -> dict[str, dict]:
    """The previous bundled FLAIR+T1 model on every scan with a T1 (cached in RUNS/old_bundled.json);
    ``seen``: the scan's subject was among its training or validation subjects."""
    path = runs / "old_bundled.json"
    if path.exists():
        return json.loads(path.read_text())
    from lesionseg.infer.files import load_predictor
    from lesionseg.models import bundled_model_path
    from lesionseg.nets.checkpoint import load_checkpoint

    folder = bundled_model_path()
    seen = set()
    for pt in sorted(Path(folder).glob("seed_*/best.pt")):
        state = load_checkpoint(pt)
        seen |= set(state.get("train_subjects", [])) | set(state.get("val_subjects", []))
    predictor = load_predictor([folder])
    manifest = load_manifest("ms_flair_t1")
    out = {}
    for case in manifest.cases:
        loaded = load_case(manifest, case, data)
        labels = predictor.predict(loaded.images, loaded.mask).label.array
        out[case.id] = score(labels, loaded, case.id, {"row": "old-bundled"}) | {"seen": case.subject in seen}
    path.write_text(json.dumps(out, indent=1, default=float) + "\n")
    return out


def fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def write_report(runs: Path, data: Path, target: Path) -> None:
    manifest = load_manifest(MANIFEST)
    site_of = {c.id: c.site for c in manifest.cases}
    subject_of = {c.id: c.subject for c in manifest.cases}
    raters = inter_rater_rows(data)
    old = old_bundled_rows(data, runs)
    lines = [
        "Written by `python experiments/three_sites.py --report` from the runs of "
        "`OMP_NUM_THREADS=1 python experiments/three_sites.py --worker I/2` (I = 0, 1) on `ms_three_sites` "
        "(FLAIR only; 10 scans, 8 subjects, 3 sites). Thresholds: `@0.5` is the network at 0.5 without a "
        "size "
        "filter; `pooled` is the threshold and minimum lesion size chosen on the pooled out-of-fold "
        f"probabilities of the other subjects, kept at 0.5 / 0 unless it wins there by {POOLED_MARGIN} Dice. "
        "Floor: FLAIR z-score > k in the brain, k fitted on the fold's training scans. Inter-rater: rater 2 "
        "against rater 1 (ISBI). Old bundled: the FLAIR+T1 model shipped before (needs a T1; `*` = its "
        "training "
        "subject). Small-lesion recall: reference lesions under 100 mm^3 touched by the prediction, pooled.",
        "",
    ]
    for scheme in SCHEMES:
        folds_done = {}
        for row in ["floor", *ROWS, *ENSEMBLES]:
            rows = []
            for f in sorted((runs / scheme / row).glob("fold_*.json")):
                rows += json.loads(f.read_text())["rows"]
            folds_done[row] = {r["case"]: r for r in rows}
        for row in [*ROWS, *ENSEMBLES]:
            folds_done[f"{row}-pooled"] = {
                r["case"]: r for r in pooled_rows(runs, scheme, row, manifest, data)
            }
        title = "Leave-one-subject-out" if scheme == "loso" else "Leave-one-site-out"
        lines += [f"### {title}", ""]
        model_rows = [r for r in folds_done if r != "floor" and folds_done[r]]
        head = "| scan | site | floor | " + " | ".join(f"{r} Dice / prec. / lesion F1" for r in model_rows)
        lines += [head + " | old bundled | inter-rater |", "|" + "---|" * (4 + len(model_rows) + 1)]
        for case in manifest.cases:
            cid = case.id
            floor = folds_done["floor"].get(cid, {}).get("dsc")
            cells = []
            for r in model_rows:
                m = folds_done[r].get(cid)
                cells.append(
                    "-" if m is None else f"{fmt(m['dsc'])} / {fmt(m['precision'])} / {fmt(m['lesion_f1'])}"
                )
            o = old.get(cid)
            old_cell = "n/a (no T1)" if o is None else fmt(o["dsc"]) + ("*" if o["seen"] else "")
            lines.append(
                f"| {cid} | {site_of[cid]} | {fmt(floor)} | "
                + " | ".join(cells)
                + f" | {old_cell} | {fmt(raters.get(cid))} |"
            )
        lines += [
            "",
            "| row | scans | median Dice | median precision | median lesion F1 | small-lesion recall "
            "| subjects above floor | per held-out site: median Dice |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in ["floor", *model_rows]:
            got = folds_done[r]
            if not got:
                continue
            med = {
                k: float(np.nanmedian([m[k] for m in got.values()]))
                for k in ("dsc", "precision", "lesion_f1")
            }
            hit = sum(m["small_hit"] for m in got.values())
            total = sum(m["small_total"] for m in got.values())
            above = "-"
            if r != "floor":
                subj = {}
                for cid, m in got.items():
                    floor = folds_done["floor"].get(cid, {}).get("dsc", np.nan)
                    subj.setdefault(subject_of[cid], []).append((m["dsc"], floor))
                above = (
                    f"{sum(np.mean([a for a, _ in v]) > np.mean([b for _, b in v]) for v in subj.values())}"
                    f" of {len(subj)}"
                )
            per_site = "; ".join(
                f"{site}: {fmt(float(np.median([m['dsc'] for c, m in got.items() if site_of[c] == site])))}"
                for site in sorted({site_of[c] for c in got})
            )
            lines.append(
                f"| {r} | {len(got)} | {fmt(med['dsc'])} | {fmt(med['precision'])} | {fmt(med['lesion_f1'])} "
                f"| {hit}/{total} | {above} | {per_site} |"
            )
        isbi = [c for c in raters if c in folds_done.get(f"{next(iter(ROWS))}", {})]
        if isbi:
            ceiling = float(np.median([raters[c] for c in isbi]))
            for r in model_rows:
                model = float(np.median([folds_done[r][c]["dsc"] for c in isbi if c in folds_done[r]]))
                lines.append("")
                lines.append(
                    f"ISBI, {r}: median Dice against rater 1 {model:.3f}; inter-rater median {ceiling:.3f}; "
                    f"ratio {model / ceiling:.2f} (target >= 0.9)"
                )
        lines.append("")
    target.write_text("\n".join(lines) + "\n")
    print(f"wrote {target}")


# -- shipping ------------------------------------------------------------------------------------------------
TARGET = REPO / "src" / "lesionseg" / "models" / "ms_flair"


def ship_model(row: str, runs: Path, data: Path) -> None:
    """The bundled FLAIR model from the leave-one-site-out members of ``row``: nnU-Net's cross-validation
    ensemble (together they use every subject); threshold and minimum size by :func:`pooled_choice` over
    all scans' out-of-fold probabilities."""
    manifest = load_manifest(MANIFEST)
    row_dir = runs / "losite" / row
    splits = json.loads((runs / "losite" / "splits.json").read_text())["folds"]
    chosen = pooled_choice(dice_table(runs, "losite", row, manifest, data), set(manifest.subjects))
    staging = Path(tempfile.mkdtemp(prefix=".ms_flair-", dir=TARGET.parent))
    members = []
    for fold in splits:
        k = fold["fold"]
        trained = {
            "recipe": row,
            "overrides": CONFIG["rows"][row],
            "scheme": "leave-one-site-out member",
            "train_subjects": fold["train"],
            "held_out_subjects": fold["test"],
            "date": str(datetime.date.today()),
        }
        state = shipped_state(row_dir / f"fold_{k}" / "best.pt", trained)
        members.append(save_checkpoint(state, staging / f"fold_{k}" / "best.pt"))
    write_ensemble_calibration(
        staging,
        members,
        {
            **chosen,
            "rule": f"pooled out-of-fold choice kept only if it beats 0.5 / 0 by {POOLED_MARGIN} Dice",
        },
    )
    if TARGET.exists():
        shutil.rmtree(TARGET)
    staging.chmod(0o755)
    staging.rename(TARGET)
    print(f"wrote {TARGET}: {chosen}")


STUDENT_TARGET = REPO / "src" / "lesionseg" / "models" / "ms_flair_student"


def ship_student(row: str, runs: Path, data: Path) -> None:
    """One network of ``row`` trained on every subject, learning from the shipped FLAIR ensemble
    (``models/ms_flair``: its members together saw every subject), shipped as ``models/ms_flair_student``
    at 0.5 / 0 (resumable: the run lives in ``RUNS/all/<row>``)."""
    manifest = load_manifest(MANIFEST)
    overrides = [f"teacher={TARGET}" if o.startswith("teacher=") else o for o in ROWS[row]]
    quick = ["budget_s=30"] if QUICK else []
    cfg = resolve_train_config("lesion-unet", "cpu", overrides=[*overrides, "calibrate=false", *quick])
    out = runs / "all" / row
    monitor = [MONITOR[0]]
    result = train_model(
        cfg, manifest, data, manifest.subjects, monitor, out, PreprocessCache(CACHE), True, False
    )
    staging = Path(tempfile.mkdtemp(prefix=".ms_flair_student-", dir=STUDENT_TARGET.parent))
    trained = {
        "recipe": row,
        "overrides": overrides,
        "scheme": "every subject; soft targets from the shipped ms_flair ensemble",
        "train_subjects": manifest.subjects,
        "date": str(datetime.date.today()),
    }
    member = save_checkpoint(shipped_state(result.best, trained), staging / "student" / "best.pt")
    write_ensemble_calibration(
        staging,
        [member],
        {"threshold": 0.5, "min_lesion_mm3": 0.0, "rule": "0.5 / 0, as the rows are scored"},
    )
    if STUDENT_TARGET.exists():
        shutil.rmtree(STUDENT_TARGET)
    staging.chmod(0o755)
    staging.rename(STUDENT_TARGET)
    print(f"wrote {STUDENT_TARGET}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "three_sites")
    parser.add_argument("--worker", default="0/1", help="I/N: run every N-th job starting at I")
    parser.add_argument("--report", action="store_true", help="write benchmarks/results/three_sites.md")
    parser.add_argument("--rows", nargs="+", help="only these rows' jobs")
    parser.add_argument("--schemes", nargs="+", choices=SCHEMES, help="only these schemes' jobs")
    parser.add_argument("--ship", metavar="ROW", help="copy ROW's leave-one-site-out members into the models")
    parser.add_argument(
        "--ship-student", metavar="ROW", help="train ROW on every subject from the shipped model"
    )
    parser.add_argument("--quick", action="store_true", help="10-second budgets into runs/three_sites_quick")
    args = parser.parse_args()
    if args.quick:
        QUICK, args.runs = True, REPO / "runs" / "three_sites_quick"
    if args.ship:
        ship_model(args.ship, args.runs, args.data)
    elif args.ship_student:
        ship_student(args.ship_student, args.runs, args.data)
    elif args.report:
        name = "three_sites_quick.md" if args.quick else "three_sites.md"
        write_report(args.runs, args.data, REPO / "benchmarks" / "results" / name)
    else:
        index, count = (int(x) for x in args.worker.split("/"))
        run_worker(index, count, args.data, args.runs, args.rows, args.schemes)
