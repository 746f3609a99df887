"""benchmarks/claims.py on tiny synthetic cv folders: pairs, seed means, the interval, the verdict, errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from lesionseg.report.tables import write_metrics_csv

REPO = Path(__file__).resolve().parents[1]


def load_claims():  # noqa: ANN201
    sys.path.insert(0, str(REPO / "benchmarks"))  # claims.py imports _timing beside it
    try:
        spec = importlib.util.spec_from_file_location("claims", REPO / "benchmarks" / "claims.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return module


def write_run(folder: Path, dsc: list[float], hd: list[float], cpu_minutes: float = 4.0) -> str:
    """A cv folder: 4 cases in 2 folds, label 'lesion' (scored) and 'other' (must be ignored)."""
    rows = []
    for i, (d, h) in enumerate(zip(dsc, hd, strict=True)):
        base = {"case": f"c{i}", "fold": str(i // 2), "subject": f"s{i}", "kind": "label"}
        rows.append({**base, "label": "lesion", "dsc": d, "hd": h})
        rows.append({**base, "label": "other", "dsc": 0.0, "hd": 99.0})
    folder.mkdir(parents=True)
    write_metrics_csv(folder / "metrics.csv", rows)
    (folder / "summary.json").write_text(json.dumps({"cpu_minutes": cpu_minutes}))
    return folder.name


def test_claims_table_from_synthetic_runs(tmp_path: Path) -> None:
    claims = load_claims()
    # row a beats b by 0.2 Dice on every case (seed means); c ties b on average: +0.1 and -0.1 per case
    a = [write_run(tmp_path / f"a{s}", [0.6 + 0.01 * s, 0.7, 0.5, 0.8], [2.0, 3.0, 4.0, 5.0]) for s in (0, 1)]
    b = [write_run(tmp_path / f"b{s}", [0.4 + 0.01 * s, 0.5, 0.3, 0.6], [3.0, 4.0, 5.0, 6.0]) for s in (0, 1)]
    c = [
        write_run(tmp_path / f"c{s}", [0.5 + 0.01 * s, 0.4, 0.4, 0.5], [3.0, 4.0, 5.0, 6.0], 6.0)
        for s in (0, 1)
    ]
    spec = [
        {"claim": "A beats B", "dataset": "toy", "a": {"name": "A", "runs": a}, "b": {"name": "B", "runs": b},
         "label": "lesion"},
        {"claim": "B beats A (HD)", "dataset": "toy", "a": {"name": "B", "runs": b},
         "b": {"name": "A", "runs": a}, "metric": "hd", "label": "lesion"},
        {"claim": "C beats B", "dataset": "toy", "a": {"name": "C", "runs": c}, "b": {"name": "B", "runs": b},
         "label": "lesion"},
    ]  # fmt: skip
    (tmp_path / "claims.json").write_text(json.dumps(spec))
    out = tmp_path / "claims.md"
    assert claims.main([str(tmp_path / "claims.json"), "--out", str(out), "--resamples", "2000"]) == 0
    lines = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert len(lines) == 4  # header + 3 claims
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]
    first, second, third = cells
    assert first[:6] == ["A beats B", "toy", "A", "B", "2.0 / 2.0", "2 x 2"]
    assert first[6] == "4" and first[7] == "dsc"
    assert first[8] == "+0.200 [+0.200, +0.200]" and first[9] == "supported"
    # HD: lower is better, so B (1 mm worse everywhere) is contradicted as better than A
    assert second[8] == "-1.000 [-1.000, -1.000]" and second[9] == "contradicted"
    # C - B per case: +0.1, -0.1, +0.1, -0.1 -> mean 0, the interval contains 0
    assert third[4] == "3.0 / 2.0"
    assert third[8].startswith("+0.000 [-0.") and third[9] == "inconclusive"
    # the last column: identical seeds leave only case-to-case spread, which more seeds cannot narrow;
    # var(+-0.1 over 4 pairs) = 0.04 / 3, and (0.05 / 1.96)^2 per pair -> 21 pairs
    assert first[10] == "+-0.000 (met)"
    assert third[10].endswith("no seed count; about 21 pairs (this set: 4)")


def test_claims_say_when_neither_row_scores(tmp_path: Path) -> None:
    claims = load_claims()
    z = [write_run(tmp_path / f"z{s}", [0.0] * 4, [1.0] * 4) for s in (0, 1)]
    y = [write_run(tmp_path / f"y{s}", [0.0] * 4, [1.0] * 4) for s in (0, 1)]
    spec = [
        {
            "claim": "Z beats Y",
            "a": {"name": "Z", "runs": z},
            "b": {"name": "Y", "runs": y},
            "label": "lesion",
        }
    ]
    (tmp_path / "claims.json").write_text(json.dumps(spec))
    out = tmp_path / "claims.md"
    assert claims.main([str(tmp_path / "claims.json"), "--out", str(out), "--resamples", "200"]) == 0
    row = [line for line in out.read_text().splitlines() if line.startswith("| Z beats Y")][0]
    assert "both rows 0 on every pair | inconclusive | +-0.000 (no difference to measure)" in row


def test_claims_undefined_pairs_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    claims = load_claims()
    a = [write_run(tmp_path / "a", [0.9, 0.8, 0.7, 0.6], [1.0, float("nan"), 1.0, 1.0])]
    b = [write_run(tmp_path / "b", [0.1, 0.2, 0.3, 0.4], [2.0, 2.0, 2.0, 2.0])]
    spec = [{"claim": "hd", "a": {"name": "A", "runs": a}, "b": {"name": "B", "runs": b}, "metric": "hd"}]
    (tmp_path / "claims.json").write_text(json.dumps(spec))
    out = tmp_path / "claims.md"
    assert claims.main([str(tmp_path / "claims.json"), "--out", str(out), "--resamples", "500"]) == 0
    row = [line for line in out.read_text().splitlines() if line.startswith("| hd")]
    # no label given: the 'other' rows (hd 99 in both) are pairs too: 8 pairs, one undefined; HD gains
    # of B - A = 1 mm on the 3 defined lesion pairs and 0 on the 4 others: mean 3 / 7
    assert "| 7 (1 undefined left out) |" in row[0]
    assert "| +0.429 [" in row[0] and "| supported | +-" in row[0]  # distances get no Dice target

    short = write_run(tmp_path / "short", [0.5, 0.5, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0])
    (tmp_path / "short" / "metrics.csv").write_text("case,label,dsc\nc0,lesion,0.5\n")
    spec = [
        {"claim": "x", "a": {"name": "A", "runs": a}, "b": {"name": "S", "runs": [short]}, "label": "lesion"}
    ]
    (tmp_path / "bad.json").write_text(json.dumps(spec))
    assert claims.main([str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.md")]) == 2
    assert "score different cases" in capsys.readouterr().err
    (tmp_path / "bad2.json").write_text(json.dumps([{"claim": "x", "a": {"name": "A"}}]))
    assert claims.main([str(tmp_path / "bad2.json"), "--out", str(tmp_path / "x.md")]) == 2
    assert "lacks or misnames a field" in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists()


def test_curve_trend_says_whether_a_row_stopped_rising() -> None:
    import numpy as np

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("claims_runs", REPO / "benchmarks" / "claims_runs.py")
        runs = importlib.util.module_from_spec(spec)
        sys.modules["claims_runs"] = runs  # its dataclasses look their module up
        spec.loader.exec_module(runs)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    rising = np.array([[0.1, 0.2, 0.3, 0.4], [0.0, 0.2, 0.2, 0.4]])
    assert runs.curve_trend(rising) == "rising: 0.250 -> 0.400"  # the last against the third of 4
    assert runs.curve_trend(np.array([[0.1, 0.5, 0.51, 0.5]])) == "flat: 0.510 -> 0.500"  # within 5 %
    assert runs.curve_trend(np.array([[0.0, 0.007, 0.025, 0.044]])) == "rising: 0.025 -> 0.044"  # low, rising
    assert runs.curve_trend(np.array([[0.0, 0.0, 0.0, 0.0]])) == "flat: 0.000 -> 0.000"
    assert runs.curve_trend(np.array([[0.5, 0.5, 0.4, 0.3]])) == "falling: 0.400 -> 0.300"
    assert runs.curve_trend(np.array([[0.5, 0.6]])) == "under 3 evaluations"
