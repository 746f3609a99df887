"""BENCHMARKS.md is the assembly of benchmarks/results/ and benchmarks/prose/: no number typed by hand."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_assembler():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location(
        "make_benchmarks_md", REPO / "benchmarks" / "make_benchmarks_md.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmarks_md_is_the_assembly_of_the_results_files() -> None:
    assembler = load_assembler()
    assert (REPO / "BENCHMARKS.md").read_text() == assembler.render(), (
        "BENCHMARKS.md differs from its sources: run python benchmarks/make_benchmarks_md.py"
    )


def test_every_results_file_names_the_script_that_wrote_it() -> None:
    assembler = load_assembler()
    scripts = {
        f"{p.parent.name}/{p.name}"
        for folder in ("benchmarks", "experiments")
        for p in (REPO / folder).glob("*.py")
    }
    for _, path in assembler.SECTIONS:
        if path.parent.name != "results" or not path.exists():
            continue
        named = set(re.findall(r"((?:benchmarks|experiments)/[a-z0-9_]+\.py)", path.read_text()))
        assert named & scripts, f"{path.name} names no script of benchmarks/ or experiments/"
