"""The command line's shared conventions: help for a terminal with defaults, one --set style, one
argument style across verbs, one exit-code convention, and `export` without the export extra."""

from __future__ import annotations

import argparse
import sys

import pytest

from lesionseg.cli.main import COMMAND_MODULES, build_parser, main
from lesionseg.cli.parsing import EXIT_CODES, strip_rest


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_is_registered() -> None:
    assert list(subparsers(build_parser())) == COMMAND_MODULES


@pytest.mark.parametrize("command", COMMAND_MODULES)
def test_help_has_no_rest_markup_and_shows_defaults(command: str, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text and ":mod:" not in text
    assert "(default: None)" not in text and "(default: False)" not in text and "(default: [])" not in text
    assert max(len(line) for line in text.splitlines()) <= 100  # wrapped to the terminal
    parser = subparsers(build_parser())[command]
    for action in parser._actions:
        shown_default = action.default not in (None, False, [], argparse.SUPPRESS) and not action.required
        if action.option_strings and shown_default and action.help:
            assert "default" in (action.help.lower() + parser.formatter_class("x")._get_help_string(action))


def test_defaults_shown_for_options_without_one_in_their_help(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "axial slices per overlay (0: none) (default: 3)" in text
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "phantom cases (2 are held out, 1 validates, the rest train) (default: 12)" in text
    assert "output folder (default: lesionseg_demo)" in text


def test_top_level_help_states_the_exit_codes(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "exit codes (every command):" in text
    for code, meaning in [("0", "done"), ("1", "unexpected internal error"), ("2", "user error")]:
        assert f"  {code}    {meaning}" in text
    assert "  130  interrupted" in text
    assert EXIT_CODES.splitlines()[0] in text


def test_strip_rest() -> None:
    assert strip_rest("``--pred P`` and :mod:`lesionseg.report` or :func:`~a.b`") == (
        "--pred P and lesionseg.report or a.b"
    )


@pytest.mark.parametrize(
    ("command", "dest"),
    [
        (["train", "--manifest", "m", "--root", ".", "--out", "o"], "set"),
        (["cv", "--manifest", "m", "--root", ".", "--out", "o"], "set"),
        (["demo"], "set"),
        (["preprocess", "--manifest", "m", "--root", ".", "--out", "o"], "overrides"),
    ],
)
def test_set_accepts_both_spellings(command: list[str], dest: str) -> None:
    parser = build_parser()
    together = parser.parse_args([*command, "--set", "a=1", "b=2"])
    repeated = parser.parse_args([*command, "--set", "a=1", "--set", "b=2"])
    mixed = parser.parse_args([*command, "--set", "a=1", "b=2", "--set", "c=3"])
    assert getattr(together, dest) == getattr(repeated, dest) == ["a=1", "b=2"]
    assert getattr(mixed, dest) == ["a=1", "b=2", "c=3"]
    assert getattr(parser.parse_args(command), dest) == []


def test_preprocess_takes_manifest_like_train_and_keeps_the_old_spelling(tmp_path, capsys) -> None:
    from lesionseg.cli.parsing import resolve_deprecated

    parser = build_parser()
    new = parser.parse_args(["preprocess", "--manifest", "m.json", "--root", ".", "--out", "o"])
    resolve_deprecated(new, "manifest", "--manifest")
    assert new.manifest == "m.json" and "deprecated" not in capsys.readouterr().err
    old = parser.parse_args(["preprocess", "m.json", "--root", ".", "--out", "o"])
    resolve_deprecated(old, "manifest", "--manifest")
    assert old.manifest == "m.json" and capsys.readouterr().err == ""  # an error stays the only stderr line
    # both, or neither: a one-line user error, exit 2
    root = tmp_path / "root"
    root.mkdir()
    both = ["preprocess", "a.json", "--manifest", "b.json", "--root", str(root), "--out", str(tmp_path)]
    for argv, message in [
        (both, "give --manifest once"),
        (both[2:4] * 0 + both[3:], "--manifest is required"),
    ]:
        assert main(argv if message != "--manifest is required" else ["preprocess", *both[4:]]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_preprocess_help_notes_the_deprecated_spelling(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["preprocess", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "deprecated spelling of --manifest MANIFEST (kept for one release)" in text


def test_export_without_onnx_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError, as after the main install
    code = main(["export", "--model", str(tmp_path / "best.pt"), "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "onnx" in err and 'pip install "lesionseg[export]"' in err
    assert not (tmp_path / "m.onnx").exists()


def test_phantom_takes_out_like_the_other_verbs(tmp_path, capsys) -> None:
    out = tmp_path / "ph"
    argv = ["--cases", "1", "--shape", "24", "24", "12"]
    assert main(["phantom", "--out", str(out), *argv]) == 0
    assert (out / "manifest.json").is_file()
    assert main(["phantom", str(tmp_path / "old"), *argv]) == 0  # the deprecated spelling still works
    assert (tmp_path / "old" / "manifest.json").is_file()
    capsys.readouterr()
    assert main(["phantom", str(tmp_path / "a"), "--out", str(tmp_path / "b"), *argv]) == 2
    err = capsys.readouterr().err
    assert "give --out once" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
