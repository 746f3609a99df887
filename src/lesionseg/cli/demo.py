"""``lesionseg demo``: the whole pipeline on the embedded phantom, with nothing else given.

phantom -> dataset check -> preprocess -> train a small model briefly -> segment the held-out cases ->
evaluate -> HTML report. A few minutes on 2 CPU cores; ends by printing the report's path and the headline
metrics.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lesionseg.cli.parsing import add_set_option

# The lesion recipe for a fixed step count, so that every machine trains the same model (a CPU budget would
# turn into a different step count on each): 2,400 steps of batch 8 take about 3 CPU minutes here.
# Nine training phantoms (12 cases): with five, the model fitted them while its validation loss rose
# after the first third of the run, and it over-segmented unseen phantoms.
DEMO_STEPS = ("steps=2400", "budget_s=null")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on a generated phantom (the README's main job)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--out", type=Path, default=Path("lesionseg_demo"), help="output folder")
    parser.add_argument(
        "--cases", type=int, default=12, help="phantom cases (2 are held out, 1 validates, the rest train)"
    )
    parser.add_argument("--method", default="lesion-unet", help="method preset to train")
    add_set_option(parser, help="training config overrides, e.g. --set epochs=2 lr=1e-3")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the phantom and the training")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from lesionseg.config.train import resolve_train_config
    from lesionseg.data.cache import PreprocessCache
    from lesionseg.data.check import check_dataset, format_report
    from lesionseg.data.manifest import load_case, load_manifest
    from lesionseg.errors import LesionsegError
    from lesionseg.evaluate.folder import evaluate_folder
    from lesionseg.infer.predictor import Predictor, load_members
    from lesionseg.io import write_volume
    from lesionseg.phantom import write_phantom_dataset
    from lesionseg.report.evaluation import provenance_from_run
    from lesionseg.train.run import train_model

    if args.cases < 4:
        raise LesionsegError(
            f"--cases must be at least 4 (2 to train, 1 to validate, 1 to test), got {args.cases}"
        )
    start = time.monotonic()
    out: Path = args.out
    data = out / "phantom"
    step = _stepper()
    step(f"generating {args.cases} phantom cases in {data}")
    manifest_path = data / "manifest.json"
    if not manifest_path.exists():
        write_phantom_dataset(data, args.cases, seed=args.seed)
    manifest = load_manifest(manifest_path)

    step("checking the dataset")
    report = check_dataset(manifest, data)
    for line in format_report(report):
        print("   " + line)
    if report.failed:
        raise LesionsegError("the phantom failed its dataset check", manifest_path)

    cfg = resolve_train_config(args.method, "cpu", overrides=[*DEMO_STEPS, f"seed={args.seed}", *args.set])
    subjects = manifest.subjects
    test, val, train = subjects[-2:], subjects[-3:-2], subjects[:-3]
    step(f"preprocessing (target size {cfg.preprocess.target_size}, cached in {out / 'cache'})")
    cache = PreprocessCache(out / "cache")
    for case in manifest.cases:
        cache.get(manifest, case, data, cfg.preprocess)

    step(
        f"training {cfg.method} ({cfg.network}, width {cfg.width}) on {len(train)} cases, "
        f"validating on {len(val)}: "
        + (
            f"{cfg.steps} steps"
            if cfg.steps
            else f"{cfg.budget_s:.0f} CPU seconds"
            if cfg.budget_s
            else f"{cfg.epochs} x {cfg.steps_per_epoch} steps"
        )
    )
    result = train_model(cfg, manifest, data, train, val, out / "model", cache, progress=not args.quiet)

    step(f"segmenting the {len(test)} held-out cases")
    predictor = Predictor(load_members([result.best]))
    pred_dir = out / "predictions"
    for case in (c for c in manifest.cases if c.subject in test):
        loaded = load_case(manifest, case, data, with_label=False)  # channels and the brain-mask file
        prediction = predictor.predict(loaded.images, loaded.mask)
        write_volume(prediction.label, pred_dir / f"{case.id}.nii.gz", reference=loaded.reference)

    step("evaluating and writing the report")
    evaluate_folder(
        pred_dir,
        manifest_path,
        data,
        out / "evaluation",
        title="lesionseg demo: phantom, held-out cases",
        case_ids=[c.id for c in manifest.cases if c.subject in test],
        provenance=provenance_from_run(result.best),
    )
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    metrics = summary["labels"]["lesion"]["metrics"]
    print()
    print(f"report: {(out / 'evaluation' / 'report.html').resolve()}")
    print(
        f"held-out cases: median DSC {metrics['dsc']['median']:.3f}, median HD95 "
        f"{_fmt(metrics['hd95']['median'])} mm, median lesion F1 {metrics['lesion_f1']['median']:.3f} "
        f"({time.monotonic() - start:.0f} s in all)"
    )
    return 0


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.2f}"


def _stepper():  # noqa: ANN202
    count = [0]

    def step(text: str) -> None:
        count[0] += 1
        print(f"[{count[0]}/7] {text}", flush=True)

    return step
