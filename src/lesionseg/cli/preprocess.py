"""``lesionseg preprocess --manifest MANIFEST --root DIR --out CACHE_DIR``: fill the preprocessing cache."""

from __future__ import annotations

import argparse
from pathlib import Path

from lesionseg.cli.options import add_outside_root_option
from lesionseg.cli.parsing import add_set_option, deprecated_positional, resolve_deprecated


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preprocess",
        help="reorient, mask, normalise, crop and pad every case into the cache",
        description=(
            "Preprocess every case of a manifest into CACHE_DIR/<config-hash>/<case-id>/ (image.npy, "
            "label.npy, mask.npy, record.json). Cases already there with the same config and unchanged "
            "input files are not recomputed. The resolved config is written to CACHE_DIR/<config-hash>/"
            "config.json."
        ),
    )
    deprecated_positional(
        parser, "manifest", "--manifest", "MANIFEST", "manifest JSON file, or the name of a built-in manifest"
    )
    parser.add_argument(
        "--root", required=True, type=Path, help="data root the manifest's paths are relative to"
    )
    parser.add_argument("--out", required=True, type=Path, help="cache folder")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, help="PreprocessConfig JSON file (default: the defaults)")
    source.add_argument("--preset", help="a named preset instead of a config file (default, raw)")
    add_set_option(
        parser,
        dest="overrides",
        help="override config fields, e.g. --set n4=true crop_margin=4,4,2 target_size=null "
        "(or one --set per field)",
    )
    parser.add_argument("--cases", nargs="+", metavar="ID", help="only these case ids")
    add_outside_root_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from lesionseg.cli.options import load_manifest_under_root
    from lesionseg.config import apply_overrides, load_config
    from lesionseg.config.preprocess import PreprocessConfig, preprocess_preset
    from lesionseg.data.cache import PreprocessCache
    from lesionseg.errors import LesionsegError

    resolve_deprecated(args, "manifest", "--manifest")
    if args.config is not None:
        config = load_config(PreprocessConfig, args.config)
    elif args.preset is not None:
        config = preprocess_preset(args.preset)
    else:
        config = PreprocessConfig()
    config = apply_overrides(config, args.overrides)
    manifest = load_manifest_under_root(args.manifest, args.allow_outside_root)
    if not args.root.is_dir():
        raise LesionsegError("data root is not a folder", args.root)
    cases = [manifest.case(cid) for cid in args.cases] if args.cases else manifest.cases
    cache = PreprocessCache(args.out)
    out_dir = cache.config_dir(config)  # the cache writes config.json there with the first case it stores
    print(f"preprocessing {len(cases)} case(s) of {manifest.name} into {out_dir}")
    bar = tqdm(cases, desc="preprocess", unit="case")
    for case in bar:
        bar.set_postfix_str(case.id)
        cached = cache.is_cached(manifest, case, args.root, config)
        start = time.perf_counter()
        result = cache.get(manifest, case, args.root, config)
        seconds = time.perf_counter() - start
        spacing = "x".join(f"{s:.3g}" for s in result.spacing)
        label = "" if result.label is not None else ", no label"
        state = "cached" if cached else f"{seconds:.2f} s"
        tqdm.write(
            f"{case.id}: {tuple(result.image.shape)} at {spacing} mm, brain mask {result.record.brain_mask}"
            f"{label}, {state}"
        )
    return 0
