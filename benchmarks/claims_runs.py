"""Run the papers' claims (issue "Test each paper's claims") and turn them into verdicts.

Each claim is two rows that differ in one factor. Every row x seed is one ``lesionseg cv`` run,
leave-one-subject-out (``--folds`` = the set's subject count), at the same CPU budget per model for both
rows (``--budget``: the papers' epoch schedules stop at it; ``epochs`` is set high enough that the budget,
not the epoch count, ends every run; a validation every 25 steps, every pass for the WMH members, draws
the curve).
The seed sets the initialisation, the sampling and which training subject validates in each fold; both
rows of a claim use the same seeds, so their folds match. Runs go into ``runs/claims/<set>/<row>/seed_<s>``
(a finished run, its metrics.csv present, is skipped; an interrupted one resumes from its folds' last.pt),
``--jobs`` at a time, one torch thread each.

``--report`` writes ``runs/claims/claims.json`` for benchmarks/claims.py (paired per-case differences,
bootstrap 95 % interval, verdict) -> ``benchmarks/results/claims.md``, and one PNG per claim of both rows'
validation Dice against training steps (mean over seeds and folds, with the spread), which shows whether
the budget let them flatten: ``benchmarks/results/claims_curves_<claim>.png``.

    OMP_NUM_THREADS=1 python benchmarks/claims_runs.py --claims pixelnet-brats --budget 5m --jobs 2
    python benchmarks/claims_runs.py --report
    python benchmarks/claims_runs.py --quick     # 3 steps, 2 folds, 1 seed: checks every row runs
    python benchmarks/claims_runs.py --gpu       # the GPU machine (benchmarks/claims_gpu.sh): paper profile

Cost: rows x seeds x subjects x budget. At 5 CPU minutes per model every claim below on every fold with 3
seeds is about 17 CPU hours on this machine, which is why they are run claim by claim.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from quality_cv import link_member_folds

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


@dataclass(frozen=True)
class Row:
    name: str  # as in the table, e.g. "D tscnn-focal"
    method: str
    overrides: tuple[str, ...] = ()

    @property
    def folder(self) -> str:
        return self.name.split()[-1] + ("-" + "-".join(self.overrides) if self.overrides else "")


@dataclass(frozen=True)
class Claim:
    key: str
    claim: str
    set_name: str
    manifest: str
    root: str  # relative to the data folder
    subjects: int  # leave-one-subject-out folds
    a: Row  # the row claimed better
    b: Row
    label: str = "lesion"
    metric: str = "dsc"
    overrides: tuple[str, ...] = ()  # for both rows


PWML = ("PWML (tscnn_pwml_test)", "tscnn_pwml_test", "tscnn_pwml_test", 10)
MS = ("MS (ms_flair_t1)", "ms_flair_t1", ".", 4)
BRATS = ("BraTS (brats2015_deepmedic)", "brats2015_deepmedic", "brats2015_deepmedic", 4)
B = Row("B resunet-focal", "resunet-focal")
D = Row("D tscnn-focal", "tscnn-focal")
E = Row("E tscnn-focal-aug", "tscnn-focal-aug")
F = Row("F tscnn64-focal-aug", "tscnn64-focal-aug")
G = Row("G tscnn-sbfl", "tscnn-sbfl")
BALANCED = Row("class-balanced pixelnet-balanced", "pixelnet-balanced")
UNIFORM = Row("uniform pixelnet-uniform", "pixelnet-uniform")
ENSEMBLE = Row("ensemble wmh-ensemble", "wmh-ensemble")
LAST = ("checkpoint=last",)
CLAIMS: list[Claim] = [
    # the authors train a fixed schedule and keep its final weights; a best-validation-Dice rule would keep
    # the first evaluation here, since the 2 labelled slices of one validation neonate score 0 for long
    Claim("tscnn-d-vs-b", "TS-CNN (D) beats the residual U-Net (B)", *PWML, D, B, overrides=LAST),
    Claim("tscnn-e-vs-d", "augmentation (E) at least matches D", *PWML, E, D, overrides=LAST),
    Claim("tscnn-g-vs-f", "SBFL (G) beats focal loss at the same width (F)", *PWML, G, F, overrides=LAST),
    *(
        Claim(
            f"pixelnet-brats-{region}",
            f"class-balanced sampling beats uniform ({region})",
            *BRATS,
            BALANCED,
            UNIFORM,
            label=region,
        )  # fmt: skip
        for region in ("WT", "TC", "ET")
    ),
    *(
        Claim(
            f"wmh-ensemble-vs-{member}",
            f"the ensemble is at least as good as {member}",
            *MS,
            ENSEMBLE,
            Row(f"member {member}", member),
            # every member and the ensemble choose threshold and minimum size on the validation subject
            # (the thesis' "empirical threshold"; the ensemble's from its averaged probabilities)
            overrides=("calibrate=true",),
        )  # fmt: skip
        for member in ("wmh-dice", "wmh-focal-tversky", "wmh-binary-focal")
    ),
]
ENSEMBLE_MEMBERS = ("wmh-dice", "wmh-focal-tversky", "wmh-binary-focal")
STEPS_PER_EVALUATION = 25
QUICK = ("epochs=1", "steps_per_epoch=3")
# The GPU machine (issue "Test each paper's claims"): within 8 minutes of one H200, every claim's rows on
# every fold for one seed at the papers' widths and schedules, each model stopped at 75 s of wall time
# (TS-CNN's 2,500 steps fit; the WMH members' 50 passes do not); 12 models share the GPU at a time.
GPU_BUDGET = "75s"
GPU_JOBS = 12


def run_dir(runs: Path, claim: Claim, row: Row, seed: int) -> Path:
    return runs / claim.set_name.split()[0].lower() / row.folder / f"seed_{seed}"


def cv_command(
    claim: Claim,
    row: Row,
    seed: int,
    data: Path,
    runs: Path,
    budget: str,
    quick: bool,
    gpu: str | None = None,
) -> list[str]:
    """One ``lesionseg cv`` run; ``gpu``: the paper profile on that device (the GPU machine's run)."""
    out = run_dir(runs, claim, row, seed)
    command = [
        sys.executable, "-m", "lesionseg.cli.main", "cv", "--manifest", claim.manifest,
        "--root", str(data / claim.root), "--method", row.method, "--folds", str(claim.subjects),
        "--out", str(out), "--cache", str(runs / "cache"), "--seed", str(seed), "--quiet",
    ]  # fmt: skip
    sets = [*claim.overrides, *row.overrides]
    if gpu:  # the papers' settings and schedules; the budget (wall time on CUDA) stops what would not fit
        command += ["--profile", "paper", "--device", gpu]
    if quick:
        sets += [*QUICK, "budget_s=null"]
        command += ["--only-fold", "0", "--only-fold", "1"]
    elif gpu:
        command += ["--budget", budget]
    else:
        # the budget ends the run, not the epoch count; WMH epochs are one pass over the training slices
        # as in the thesis (its learning-rate decay and early stopping count such epochs; the CPU
        # profile's 25-step epochs would count them 25 steps at a time)
        per_epoch = 0 if row.method.startswith("wmh-") else STEPS_PER_EVALUATION
        sets += ["epochs=1000", f"steps_per_epoch={per_epoch}"]
        command += ["--budget", budget]
    return command + [a for s in sets for a in ("--set", s)]


def link_members(claim: Claim, seed: int, runs: Path) -> None:
    """The ensemble reuses its members' checkpoints of the same seed: link their fold folders."""
    sources = {m: run_dir(runs, claim, Row(f"member {m}", m), seed) for m in ENSEMBLE_MEMBERS}
    link_member_folds(run_dir(runs, claim, ENSEMBLE, seed), sources)


def jobs_for(claims: list[Claim], seeds: list[int]) -> list[tuple[Claim, Row, int]]:
    """Every (claim, row, seed) once (rows shared by claims run once); ensembles after their members."""
    seen, jobs, later = set(), [], []
    for claim in claims:
        for row in (claim.a, claim.b):
            for seed in seeds:
                key = (claim.set_name, row, seed)
                if key in seen:
                    continue
                seen.add(key)
                (later if row.method == "wmh-ensemble" else jobs).append((claim, row, seed))
    return jobs + later


def run_jobs(
    jobs: list[tuple[Claim, Row, int]],
    data: Path,
    runs: Path,
    budget: str,
    quick: bool,
    n: int,
    gpu: str | None = None,
) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    todo = [j for j in jobs if not (run_dir(runs, j[0], j[1], j[2]) / "metrics.csv").exists()]
    running: list[tuple[tuple, subprocess.Popen]] = []
    while todo or running:
        members_pending = any(j[1].method != "wmh-ensemble" for j in todo + [r[0] for r in running])
        ready = [j for j in todo if j[1].method != "wmh-ensemble" or not members_pending]
        while ready and len(running) < n:
            job = ready.pop(0)
            todo.remove(job)
            claim, row, seed = job
            if row.method == "wmh-ensemble":
                link_members(claim, seed, runs)
            out = run_dir(runs, claim, row, seed)
            out.mkdir(parents=True, exist_ok=True)
            log = (out / "cv.log").open("a")
            command = cv_command(claim, row, seed, data, runs, budget, quick, gpu)
            print(f"start {out.relative_to(runs)}", flush=True)
            running.append((job, subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)))
        time.sleep(2)
        for item in list(running):
            job, process = item
            if process.poll() is not None:
                running.remove(item)
                state = "done" if process.returncode == 0 else f"FAILED ({process.returncode})"
                print(f"{state} {run_dir(runs, *job).relative_to(runs)}", flush=True)


CURVE_TOLERANCE = (0.005, 0.05)  # validation Dice: absolute floor, share of the last value


def curve_trend(values: np.ndarray) -> str:
    """'rising', 'falling' or 'flat', and from what to what: the mean validation Dice of the last
    evaluation against the one two thirds of the way in (``values``: runs x evaluations); flat when they
    differ by less than the larger of 0.005 and 5 % of the last."""
    if values.shape[1] < 3:
        return "under 3 evaluations"
    mid = float(np.nanmean(values[:, (2 * (values.shape[1] - 1)) // 3]))
    last = float(np.nanmean(values[:, -1]))
    tolerance = max(CURVE_TOLERANCE[0], CURVE_TOLERANCE[1] * abs(last))
    word = "rising" if last - mid > tolerance else "falling" if mid - last > tolerance else "flat"
    return f"{word}: {mid:.3f} -> {last:.3f}"


def validation_curves(claim: Claim, seeds: list[int], runs: Path, path: Path) -> dict[str, str]:
    """Mean (and min-max) validation Dice per evaluation over seeds and folds, both rows, drawn to
    ``path``; returns each drawn row's trend at the end of training (:func:`curve_trend`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    trends: dict[str, str] = {}
    for row in (claim.a, claim.b):
        methods = ENSEMBLE_MEMBERS if row.method == "wmh-ensemble" else (row.method,)
        curves = []
        for seed in seeds:
            for method in methods:
                for history in sorted(run_dir(runs, claim, row, seed).glob(f"fold_*/{method}/history.csv")):
                    with history.open() as f:
                        rows = list(csv.DictReader(f))
                    curves.append(
                        (np.cumsum([int(r["steps"]) for r in rows]), [float(r["val_dice"]) for r in rows])
                    )
        if not curves:
            continue
        length = min(len(c[1]) for c in curves)  # runs stopped by the budget differ by an evaluation or so
        values = np.array([c[1][:length] for c in curves], dtype=float)
        steps = np.median([c[0][:length] for c in curves], axis=0)
        what = "member runs" if row.method == "wmh-ensemble" else "runs"
        ax.plot(steps, np.nanmean(values, axis=0), marker=".", label=f"{row.name} ({len(curves)} {what})")
        ax.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0), alpha=0.2)
        trends[row.name] = curve_trend(values)
    if trends:
        ax.set(xlabel="training steps", ylabel="validation Dice", title=claim.claim)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return trends


def report(claims: list[Claim], seeds: list[int], runs: Path, suffix: str = "") -> None:
    """claims.json and the table from the seeds (of ``seeds``) whose runs of both rows finished, per claim:
    a claim run with fewer seeds says so in its "seeds x folds" column."""
    entries = []
    for claim in claims:
        done = [
            s
            for s in seeds
            if all((run_dir(runs, claim, row, s) / "metrics.csv").exists() for row in (claim.a, claim.b))
        ]
        if not done:
            print(f"not finished: {claim.key}")
            continue
        a = [run_dir(runs, claim, claim.a, s) for s in done]
        b = [run_dir(runs, claim, claim.b, s) for s in done]
        entries.append(
            {
                "claim": claim.claim,
                "dataset": claim.set_name,
                "a": {"name": claim.a.name, "runs": [str(p.relative_to(runs)) for p in a]},
                "b": {"name": claim.b.name, "runs": [str(p.relative_to(runs)) for p in b]},
                "metric": claim.metric,
                "label": claim.label,
            }
        )
        png = RESULTS / f"claims_curves_{claim.key}{suffix}.png"
        trends = validation_curves(claim, done, runs, png)
        if trends:
            print(f"wrote {png}")
            entries[-1]["curves"] = " / ".join(trends.get(r.name, "-") for r in (claim.a, claim.b))
    if not entries:
        print("no claim has finished runs")
        return
    claims_json = runs / "claims.json"
    claims_json.write_text(json.dumps(entries, indent=2) + "\n")
    sys.path.insert(0, str(Path(__file__).parent))
    from claims import main as claims_main

    notes = [f"{line}" for line in run_notes(claims, seeds, runs)]
    out = RESULTS / f"claims{suffix}.md"
    claims_main([str(claims_json), "--out", str(out), *(a for n in notes for a in ("--note", n))])


def run_notes(claims: list[Claim], seeds: list[int], runs: Path) -> list[str]:
    """How each set's rows were trained, read from the runs' saved configs: profile, device, budget per
    model and the checkpoint rule; and what PixelNet lacks here."""
    notes, seen = [], set()
    for claim in claims:
        for row in (claim.a, claim.b):
            configs = sorted(run_dir(runs, claim, row, seeds[0]).glob(f"fold_*/{row.method}/config.json"))
            if not configs or (claim.set_name, row.method) in seen:  # an ensemble: its members say
                continue
            seen.add((claim.set_name, row.method))
            cfg = json.loads(configs[0].read_text())
            budget = f"{cfg['budget_s'] / 60:g} min" if cfg.get("budget_s") else "none"
            notes.append(
                f"{claim.set_name}, `{row.method}`: `--profile {cfg['profile']}`, width {cfg['width']}, "
                f"budget per model {budget}, {cfg['epochs']} x {cfg['steps_per_epoch'] or 'one pass'} "
                f"steps at most, checkpoint `{cfg['checkpoint']}`, threshold "
                + ("calibrated on validation" if cfg.get("calibrate") else f"{cfg['threshold']}")
            )
    notes.append(
        "every PixelNet row trains VGG-16 from scratch: the ImageNet weights the paper starts from cannot "
        "be fetched on this machine; the profiles' other changes from the papers: \"Changes from the papers "
        '(CPU profile)"'
    )
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--runs", type=Path)
    parser.add_argument("--claims", nargs="+", help="claim keys or prefixes (default: all): "
                        + ", ".join(c.key for c in CLAIMS))  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", default="5m", help="CPU time per model, both rows (e.g. 5m)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--quick", action="store_true", help="3 steps, folds 0-1, seed 0: checks the rows run"
    )
    parser.add_argument("--report", action="store_true", help="verdicts and curves from finished runs")
    parser.add_argument(
        "--suffix",
        help="results files claims<suffix>.md and claims_curves_<claim><suffix>.png (default: "
        "_gpu, _quick or none, by the run kind); give one with --runs elsewhere, e.g. _5m",
    )
    parser.add_argument("--device", default="cuda", help="with --gpu: cuda (cpu only to check the command)")
    parser.add_argument(
        "--gpu",
        action="store_true",
        help=f"the GPU machine's prepared run: --profile paper --device cuda, seed 0, {GPU_BUDGET} of wall "
        f"time per model, {GPU_JOBS} models at once on the one GPU, into runs/claims_gpu, then the report "
        "(results files marked _gpu)",
    )
    args = parser.parse_args()
    claims = [c for c in CLAIMS if not args.claims or any(c.key.startswith(k) for k in args.claims)]
    seeds = [0] if args.quick or args.gpu else args.seeds
    kind = "claims" + ("_gpu" if args.gpu else "") + ("_quick" if args.quick else "")
    runs = args.runs or REPO / "runs" / kind
    suffix = args.suffix if args.suffix is not None else kind.removeprefix("claims")
    if args.report:
        report(claims, seeds, runs, suffix)
        return
    if args.gpu:
        budget, jobs = (args.budget if args.budget != "5m" else GPU_BUDGET), max(args.jobs, GPU_JOBS)
        run_jobs(jobs_for(claims, seeds), args.data, runs, budget, args.quick, jobs, gpu=args.device)
        report(claims, seeds, runs, suffix)
        return
    run_jobs(jobs_for(claims, seeds), args.data, runs, args.budget, args.quick, args.jobs)


if __name__ == "__main__":
    main()
