"""The papers' claims as verdicts: paired per-case differences between two rows, a bootstrap 95 % interval
and supported / contradicted / inconclusive (lesionseg.metrics.paired).

Input: a JSON list of claims, each naming the `lesionseg cv` output folders of its two rows (one folder per
seed; every folder holds the per-case ``metrics.csv`` and ``summary.json`` that cv writes):

    [{"claim": "SBFL beats focal loss at the same width", "dataset": "PWML",
      "a": {"name": "G tscnn-sbfl", "runs": ["runs/G_s0", "runs/G_s1", "runs/G_s2"]},
      "b": {"name": "F tscnn64-focal-aug", "runs": ["runs/F_s0", "runs/F_s1", "runs/F_s2"]},
      "metric": "dsc", "label": "lesion"}]

A pair is one case (or one labelled slice, ``slice`` column) and label: each row's score on it is the mean
over its seeds, and the difference is "a better than b" (a - b; b - a for the distances hd, hd95, assd,
avd, where lower is better). Pairs where either row's score is undefined (NaN) are left out and counted.
Paths in the JSON are relative to the JSON file.

    python benchmarks/claims.py claims.json                   # -> benchmarks/results/claims.md
    python benchmarks/claims.py claims.json --out /tmp/claims.md --resamples 2000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from _timing import markdown_table, write_result

from lesionseg.errors import LesionsegError
from lesionseg.metrics.paired import paired_bootstrap_ci, precision_plan, verdict
from lesionseg.report.tables import read_metrics_csv

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
LOWER_IS_BETTER = {"hd", "hd95", "assd", "avd"}
COLUMNS = [
    "claim",
    "data set",
    "row a (claimed better)",
    "row b",
    "CPU min per fold (a / b)",
    "seeds x folds",
    "pairs",
    "metric",
    "mean difference [95 % CI]",
    "verdict",
    "CI half-width: what would reach +-0.05",
    "validation Dice at the end (a / b)",
]
TARGET_HALF_WIDTH = 0.05  # Dice (issue "Test each paper's claims")


def pair_key(row: dict) -> tuple[str, str, str]:
    slice_ = row.get("slice")
    return str(row["case"]), "" if slice_ in (None, "") else str(slice_), str(row.get("label", ""))


def row_scores(
    runs: list[Path], metric: str, label: str | None
) -> tuple[dict[tuple, list[float]], int, float]:
    """``metric`` per pair and seed (in the order of ``runs``), the number of folds, and the mean CPU
    minutes per fold."""
    per_key: dict[tuple, list[float]] = {}
    folds: set[str] = set()
    minutes: list[float] = []
    for run in runs:
        rows = [r for r in read_metrics_csv(run / "metrics.csv") if label is None or r.get("label") == label]
        if not rows:
            raise LesionsegError(f"no rows for label {label!r} in metrics.csv", run)
        if metric not in rows[0]:
            raise LesionsegError(f"metrics.csv has no column {metric!r}", run / "metrics.csv")
        run_folds = {str(r.get("fold", "")) for r in rows}
        folds |= run_folds
        for r in rows:
            per_key.setdefault(pair_key(r), []).append(float(r[metric]))
        summary = run / "summary.json"
        if summary.exists():
            cpu = json.loads(summary.read_text()).get("cpu_minutes")
            if isinstance(cpu, (int, float)):
                minutes.append(float(cpu) / max(1, len(run_folds)))
    for key, values in per_key.items():
        if len(values) != len(runs):
            raise LesionsegError(f"pair {key} is scored in {len(values)} of {len(runs)} seeds", runs[0])
    return per_key, len(folds), (sum(minutes) / len(minutes) if minutes else math.nan)


def evaluate_claim(claim: dict, base: Path, resamples: int, seed: int) -> list[str]:
    """One table row: the claim, its rows, budget, seeds x folds, pairs, difference with CI, verdict."""
    metric, label = claim.get("metric", "dsc"), claim.get("label")
    runs_a = [base / p for p in claim["a"]["runs"]]
    runs_b = [base / p for p in claim["b"]["runs"]]
    seeds_a, folds_a, cpu_a = row_scores(runs_a, metric, label)
    seeds_b, folds_b, cpu_b = row_scores(runs_b, metric, label)
    a = {k: sum(v) / len(v) for k, v in seeds_a.items()}  # the seed mean; NaN in any seed stays NaN
    b = {k: sum(v) / len(v) for k, v in seeds_b.items()}
    if set(a) != set(b):
        missing = sorted(set(a) ^ set(b))[:3]
        raise LesionsegError(f"the two rows score different cases, e.g. {missing}", runs_a[0])
    keys = sorted(a)
    usable = [k for k in keys if math.isfinite(a[k]) and math.isfinite(b[k])]
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    diffs_a = [sign * a[k] for k in usable]
    diffs_b = [sign * b[k] for k in usable]
    pairs = f"{len(usable)}" + (
        f" ({len(keys) - len(usable)} undefined left out)" if len(usable) < len(keys) else ""
    )
    if not usable:
        return [
            *_names(claim, cpu_a, cpu_b, runs_a, runs_b, folds_a, folds_b),
            pairs,
            metric,
            "-",
            "inconclusive",
            "-",
            claim.get("curves", "-"),
        ]
    mean, lo, hi = paired_bootstrap_ci(diffs_a, diffs_b, n=resamples, seed=seed)
    interval = f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    if not any(diffs_a) and not any(diffs_b):  # nothing to compare: neither row scored above 0 anywhere
        interval = f"{interval}: both rows 0 on every pair"
    per_seed = None
    if len(runs_a) == len(runs_b):
        per_seed = np.array(
            [[sign * (x - y) for x, y in zip(seeds_a[k], seeds_b[k], strict=True)] for k in usable]
        )
    return [
        *_names(claim, cpu_a, cpu_b, runs_a, runs_b, folds_a, folds_b),
        pairs,
        metric,
        interval,
        verdict(lo, hi),
        precision_text(metric, (hi - lo) / 2, per_seed),
        claim.get("curves", "-"),
    ]


def precision_text(metric: str, half_width: float, per_seed: np.ndarray | None) -> str:
    """The bootstrap half-width, and for Dice-like scores above the target what would reach it: the seeds
    (with these cases), else the pairs (cases or slices; with these seeds), from the split of the
    difference's variance into a case part and a seed part (lesionseg.metrics.paired.precision_plan)."""
    text = f"+-{half_width:.3f}"
    if metric in LOWER_IS_BETTER or metric in {"avd"}:
        return text
    if per_seed is not None and not np.any(per_seed):
        return f"{text} (no difference to measure)"
    if half_width <= TARGET_HALF_WIDTH:
        return f"{text} (met)"
    if per_seed is None or len(per_seed) < 2:
        return text
    plan = precision_plan(per_seed, TARGET_HALF_WIDTH)
    if plan.seeds_needed is not None:
        return f"{text}: about {plan.seeds_needed} seeds"
    return f"{text}: no seed count; about {plan.pairs_needed} pairs (this set: {len(per_seed)})"


def _names(
    claim: dict,
    cpu_a: float,
    cpu_b: float,
    runs_a: list[Path],
    runs_b: list[Path],
    folds_a: int,
    folds_b: int,
) -> list[str]:
    seeds = (
        f"{len(runs_a)} x {folds_a}"
        if (len(runs_a), folds_a) == (len(runs_b), folds_b)
        else (f"{len(runs_a)} x {folds_a} / {len(runs_b)} x {folds_b}")
    )
    cpu = f"{cpu_a:.1f} / {cpu_b:.1f}" if math.isfinite(cpu_a) and math.isfinite(cpu_b) else "-"
    return [claim["claim"], claim.get("dataset", "-"), claim["a"]["name"], claim["b"]["name"], cpu, seeds]


def shown_path(path: Path | str) -> str:
    """``path`` relative to the repository when it lies inside it (results files name no machine paths)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("claims", type=Path, help="JSON list of claims (see the module docstring)")
    parser.add_argument("--out", type=Path, default=RESULTS / "claims.md")
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", action="append", default=[], help="a line for the header (repeatable)")
    args = parser.parse_args(argv)
    try:
        claims = json.loads(args.claims.read_text())
        if not isinstance(claims, list) or not claims:
            raise LesionsegError("expected a non-empty JSON list of claims", args.claims)
        rows = [evaluate_claim(c, args.claims.parent, args.resamples, args.seed) for c in claims]
    except (OSError, json.JSONDecodeError) as exc:
        print(f"error: {args.claims}: {exc}", file=sys.stderr)
        return 2
    except (KeyError, TypeError) as exc:
        print(f"error: {args.claims}: a claim lacks or misnames a field ({exc})", file=sys.stderr)
        return 2
    except LesionsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = "\n".join(
        [
            "# Claims: paired differences and verdicts",
            "",
            f"- command: `python benchmarks/claims.py {shown_path(args.claims)}` ({args.resamples} bootstrap "
            f"resamples, seed {args.seed})",
            "- difference: row a minus row b per case (per slice for PWML), each the mean over its seeds; "
            "for distances (hd, hd95, assd, avd) b minus a, so > 0 always favours row a",
            "- verdict: supported (interval above 0), contradicted (below 0), inconclusive (contains 0)",
            "- validation Dice at the end: the trend of each row's mean validation curve (claims_runs.py: "
            "the last evaluation against the one two thirds in; flat within the larger of 0.005 and 5 % of "
            "the last); 'rising' means the budget stopped that row before it converged, so its verdict is "
            "about the budget as much as the method",
            f"- half-width column: the interval's half-width; where wider than {TARGET_HALF_WIDTH} Dice, "
            "the seeds (with these cases) or, when no seed count would do, the pairs (with these seeds) that "
            "would narrow it to that, from the split of the paired differences' variance into a part "
            "between cases and a part between seeds (normal approximation, `precision_plan`)",
            *(f"- {note}" for note in args.note),
            "",
            markdown_table(COLUMNS, rows, align="l" * 4 + "r" * 5 + "lll"),
        ]
    )
    print(text)
    print("wrote", write_result(args.out, text), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
