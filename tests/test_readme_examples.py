"""The README's "Using it" block runs as written from the repository root: every command parses (argparse,
no run), every manifest named is a built-in one, and every path it names exists in ../shared/data or is
written by an earlier line of the block."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lesionseg.cli.main import build_parser

REPO = Path(__file__).resolve().parents[1]
DATA_PREFIX = "../shared/data/"
PATH_LIKE = re.compile(r"(/|\.(nii\.gz|nii|mha|nrrd|pt|onnx|json|csv)$)")


def using_it_block(readme: str) -> str:
    """The first ```bash block under '## Using it'."""
    section = readme.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "no ```bash block under '## Using it'"
    return match.group(1)


def commands(block: str) -> list[list[str]]:
    """Shell lines (continuations joined, comments dropped, VAR=value assignments expanded) as argv lists."""
    variables: dict[str, str] = {}
    result = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assignment = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(\S+)", " ".join(words))
        if assignment:
            variables[assignment.group(1)] = assignment.group(2)
            continue
        result.append(
            [re.sub(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", lambda m: variables[m.group(1)], w) for w in words]
        )
    return result


README_COMMANDS = commands(using_it_block((REPO / "README.md").read_text()))


def test_block_is_found_and_covers_the_pipeline() -> None:
    verbs = [argv[1] for argv in README_COMMANDS]
    assert all(argv[0] == "lesionseg" for argv in README_COMMANDS)
    pipeline = ["phantom", "dataset", "preprocess", "train", "cv", "predict", "segment", "evaluate", "export"]
    assert set(pipeline) <= set(verbs)


def test_every_example_parses() -> None:
    parser = build_parser()
    for argv in README_COMMANDS:
        try:
            args = parser.parse_args(argv[1:])
        except SystemExit as exc:  # argparse's usage error
            pytest.fail(f"README example does not parse ({exc.code}): {shlex.join(argv)}")
        assert callable(args.func), shlex.join(argv)


def test_every_manifest_named_is_built_in() -> None:
    from lesionseg.data.manifest import load_manifest

    parser = build_parser()
    for argv in README_COMMANDS:
        args = parser.parse_args(argv[1:])
        manifest = getattr(args, "manifest", None) or getattr(args, "manifest_positional", None)
        if manifest:
            assert load_manifest(manifest).cases, shlex.join(argv)


def test_every_path_exists_or_is_written_before(shared_data: Path) -> None:
    """Inputs under ../shared/data exist (checked from the repository root); any other path is an output
    of its own line (--out, -o, phantom's folder) or lies under an earlier line's output."""
    parser = build_parser()
    written: list[str] = []
    for argv in README_COMMANDS:
        args = parser.parse_args(argv[1:])
        outputs = {str(v) for v in (getattr(args, "out", None),) if v is not None}
        for word in argv[2:]:
            if word.startswith("-") or not PATH_LIKE.search(word):
                continue
            if word.startswith(DATA_PREFIX):
                target = shared_data / word[len(DATA_PREFIX) :]
                assert target.exists(), f"{word} (in: {shlex.join(argv)}) does not exist"
            elif word.rstrip("/") not in {o.rstrip("/") for o in outputs}:
                earlier = [w for w in written if Path(word).is_relative_to(w) or Path(word) == Path(w)]
                assert earlier, f"{word} (in: {shlex.join(argv)}) is neither shared data nor written earlier"
        written += [o.rstrip("/") for o in outputs]
        assert not any(o.startswith(DATA_PREFIX) for o in outputs), "an example writes into the shared data"


def test_paths_resolve_from_the_repository_root() -> None:
    """``../shared/data`` in the README is the repository's sibling folder, which the shared_data fixture
    finds by default; a README path that started elsewhere would not be checked."""
    named = [w for argv in README_COMMANDS for w in argv if "shared" in w]
    assert named and all(w.startswith(DATA_PREFIX) for w in named)
