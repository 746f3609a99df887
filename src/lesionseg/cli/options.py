"""Options shared by the training commands (train, cv, demo)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from lesionseg.cli.parsing import HelpFormatter, Parser, add_set_option  # noqa: F401 (re-exported)
from lesionseg.config.train import DEVICE_CHOICES


def parse_duration(text: str) -> float:
    """'90s', '20m', '1.5h' or plain seconds -> seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 20m, 1.5h)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive duration, got {text!r}")
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


def positive_int(text: str) -> int:
    """A count of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add_outside_root_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="read manifest files that lie outside --root (absolute paths, or paths through '..'); "
        "refused by default",
    )


def load_manifest_under_root(manifest_arg: str | Path, allow_outside_root: bool):  # noqa: ANN201 - Manifest
    """The manifest of ``--manifest``, refused when a case's file lies outside the data root unless
    ``--allow-outside-root``."""
    from lesionseg.data.manifest import load_manifest, require_inside_root

    manifest = load_manifest(manifest_arg)
    if not allow_outside_root:
        require_inside_root(manifest)
    return manifest


def add_training_options(parser: argparse.ArgumentParser) -> None:
    from lesionseg.config.train import DEFAULT_METHOD, method_names

    parser.add_argument(
        "--manifest", required=True, help="manifest JSON, or a built-in name (e.g. open_ms_data)"
    )
    parser.add_argument(
        "--root", required=True, type=Path, help="data root the manifest's paths are relative to"
    )
    parser.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=method_names(),
        help=f"method preset (default {DEFAULT_METHOD}: the lesion recipe, budget-planned)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--profile",
        choices=["cpu", "paper"],
        default="cpu",
        help="cpu: CPU-sized widths/epochs (default); paper: the papers' settings",
    )
    parser.add_argument("--config", type=Path, help="JSON file of TrainConfig values")
    add_outside_root_option(parser)
    add_set_option(parser)
    seed = parser.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=int, help="train one network with this random seed")
    seed.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="S",
        help="train one network per seed and average them: an ensemble of seeds, whose threshold and "
        "minimum lesion size are chosen on the validation subjects for the average; the first seed draws "
        "the split (default for lesion-unet: 0 1 2, its shipped recipe and the bundled model's; --seed N "
        "trains one network)",
    )
    parser.add_argument(
        "--budget",
        "--time-budget",
        dest="budget",
        type=parse_duration,
        metavar="DURATION",
        help="CPU time per model (wall time on CUDA), e.g. 20m or 1h. Budget-planned methods (lesion-unet) "
        "turn it into a step count after a timed warm-up and fit the learning-rate schedule to it (default "
        "5m per network); the papers' epoch schedules stop cleanly at it, keeping the best checkpoint",
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        metavar="N",
        help="fix the number of training steps instead of planning it from the budget (reproducible)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        help="where to train: auto = CUDA when available (default), cpu, cuda",
    )
    parser.add_argument("--cache", type=Path, help="preprocessing cache folder (default: OUT/cache)")
    parser.add_argument("--splits", type=Path, help="split file to use (wins over generated folds)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def member_configs(args: argparse.Namespace) -> list:
    """The resolved TrainConfig of each network the command trains (``config.train.resolve_member_configs``
    from the parsed options), its network and loss options checked before any preprocessing."""
    from lesionseg.config.train import read_config_file, resolve_member_configs
    from lesionseg.train.options import check_options

    configs = resolve_member_configs(
        args.method,
        args.profile,
        read_config_file(args.config) if args.config else None,
        args.set,
        args.seed,
        args.seeds,
        args.budget,
        args.steps,
        args.device,
    )
    for cfg in configs:
        check_options(cfg)  # unknown network/loss options: a one-line error before any preprocessing
    return configs
