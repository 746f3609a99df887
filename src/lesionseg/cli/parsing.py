"""How every ``lesionseg`` command parses and shows its arguments: one help formatter, one exit-code
convention, one ``--set`` style.

- :class:`Parser` (an ``argparse.ArgumentParser`` whose help uses :class:`HelpFormatter`) is the top-level
  parser's class, so every subcommand parser made through ``add_subparsers`` gets the same formatter.
- :class:`HelpFormatter`: defaults shown ("(default: 8)") unless the help already says its default,
  descriptions wrapped to the terminal paragraph by paragraph (list items and indented lines kept apart),
  reST markup (double backticks, ``:mod:`x```) removed.
- :data:`EXIT_CODES`: the top-level ``--help`` epilog; what ``lesionseg.cli.main`` returns.
- :func:`add_set_option`: ``--set a=1 b=2`` and ``--set a=1 --set b=2`` mean the same.
"""

from __future__ import annotations

import argparse
import re
import textwrap

# Rows are wrapped to the terminal (hanging at the text column) by HelpFormatter.
EXIT_CODES = "\n".join(
    [
        "exit codes (every command):",
        "  0    done",
        "  1    unexpected internal error (a bug: the traceback is printed; please report it)",
        "  2    user error or bad input (wrong arguments, missing or unreadable file, disk full ...): "
        "one line on stderr names the problem and the file",
        "  130  interrupted (Ctrl-C); 143 terminated (SIGTERM); temporary files are removed",
    ]
)

_NEGATIVE_FRACTION = re.compile(r"-\d+\s*/\s*-?\d+")
_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")
_DOUBLE_BACKTICKS = re.compile(r"``([^`]+)``")


def strip_rest(text: str) -> str:
    """``x`` -> x and :mod:`lesionseg.x` -> lesionseg.x: docstrings shown in a terminal."""
    return _DOUBLE_BACKTICKS.sub(r"\1", _ROLE.sub(r"\1", text))


LONG_CHOICES = 40  # characters of "a,b,c": longer choice lists get a METAVAR and are listed in the help


def _long_choices(action: argparse.Action) -> bool:
    return (
        action.metavar is None
        and action.choices is not None
        and not isinstance(action, argparse._SubParsersAction)
        and len(",".join(map(str, action.choices))) > LONG_CHOICES
    )


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown, descriptions and epilogs kept as written, reST markup removed."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = strip_rest(action.help or "")
        if _long_choices(action):
            text += f" (one of: {', '.join(map(str, action.choices))})"  # type: ignore[arg-type]
        if "%(default)" in text or "default" in text.lower():
            return text  # already says what happens by default
        if action.required or action.default in (None, False, [], (), argparse.SUPPRESS):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"
        return text

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)  # keep names whole

    def _metavar_formatter(self, action: argparse.Action, default_metavar: str):  # noqa: ANN202
        if _long_choices(action):  # a long {a,b,c,...} would fill the usage: name it, list it in the help
            name = action.dest.upper()
            return lambda tuple_size: (name,) * tuple_size
        return super()._metavar_formatter(action, default_metavar)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Paragraphs (blank-line separated) wrapped to the terminal; a line that starts with "- " or
        with spaces (a list item, an aligned table row) starts its own wrapped item, keeping its indent."""
        paragraphs = []
        for paragraph in re.split(r"\n\s*\n", strip_rest(text).strip("\n")):
            items: list[str] = []
            for line in paragraph.splitlines():
                if not items or line.startswith((" ", "- ", "* ")):
                    items.append(line.rstrip())
                else:
                    items[-1] += " " + line.strip()
            wrapped = []
            for item in items:
                lead = item[: len(item) - len(item.lstrip())]
                row = re.match(r"\s+\S+\s{2,}", item)  # an aligned row ("  2    text"): hang at its text
                hang = "  " if item.lstrip().startswith(("- ", "* ")) else ""
                hang = " " * (row.end() - len(lead)) if row else hang
                wrapped.append(
                    textwrap.fill(
                        item.strip(),
                        width,
                        initial_indent=indent + lead,
                        subsequent_indent=indent + lead + hang,
                        break_on_hyphens=False,
                    )
                )
            paragraphs.append("\n".join(wrapped))
        return "\n\n".join(paragraphs)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser with :class:`HelpFormatter` unless told otherwise (subcommand parsers inherit it
    through ``add_subparsers``, which makes them of the parent's class)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _parse_optional(self, arg_string: str):  # noqa: ANN202 - argparse's own return type
        """A value like ``-1/2`` (``--shard -1/2``) is a value, not an option: argparse takes only plain
        negative numbers as values, and would say "expected one argument" instead of the option's own
        message (``I/N with 0 <= I < N``)."""
        if _NEGATIVE_FRACTION.fullmatch(arg_string):
            return None
        return super()._parse_optional(arg_string)


def add_set_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    dest: str = "set",
    help: str = "override config values, e.g. --set epochs=10 width=32 (or --set epochs=10 --set width=32)",
) -> None:
    """``--set KEY=VALUE [KEY=VALUE ...]``, repeatable; every value lands in one list ``args.<dest>``."""
    parser.add_argument(
        "--set", dest=dest, nargs="+", action="extend", default=[], metavar="KEY=VALUE", help=help
    )


def deprecated_positional(
    parser: argparse.ArgumentParser, dest: str, option: str, metavar: str, help: str
) -> None:
    """``option`` (e.g. ``--manifest``) plus the old positional spelling, kept for one release.

    The positional lands in ``args.<dest>_positional``; :func:`resolve_deprecated` merges the two."""
    parser.add_argument(option, dest=dest, metavar=metavar, help=help)
    parser.add_argument(
        f"{dest}_positional",
        nargs="?",
        metavar=metavar,
        help=f"deprecated spelling of {option} {metavar} (kept for one release)",
    )


def resolve_deprecated(args: argparse.Namespace, dest: str, option: str) -> None:
    """Fold the deprecated positional into ``args.<dest>``; a one-line user error (exit 2) when both or
    neither are given."""
    from lesionseg.errors import LesionsegError

    old = getattr(args, f"{dest}_positional", None)
    if old is not None and getattr(args, dest) is not None:
        raise LesionsegError(f"give {option} once (the positional spelling is deprecated)")
    if old is not None:
        setattr(args, dest, old)  # the deprecation is noted in --help; stderr stays for errors
    if getattr(args, dest) is None:
        raise LesionsegError(f"{option} is required")
