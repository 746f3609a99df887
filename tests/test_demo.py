"""The README's main job, `lesionseg demo`, end to end at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lesionseg.cli.main import main


def test_demo_runs_end_to_end_and_prints_the_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["demo", "--out", str(tmp_path / "demo"), "--cases", "4", "--quiet", "--set", "steps=4",
                 "--set", "budget_s=null", "--set", "evaluations=2", "--set", "width=4"])
    out = capsys.readouterr().out
    assert code == 0
    report = tmp_path / "demo" / "evaluation" / "report.html"
    assert report.exists() and f"report: {report.resolve()}" in out
    assert "median DSC" in out
    summary = json.loads((tmp_path / "demo" / "evaluation" / "summary.json").read_text())
    assert summary["labels"]["lesion"]["n_cases"] == 2  # the two held-out phantom cases
    assert (tmp_path / "demo" / "model" / "best.pt").exists()


def test_demo_refuses_too_few_cases(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "--out", str(tmp_path / "d"), "--cases", "3"]) == 2
    assert "--cases must be at least 4" in capsys.readouterr().err
