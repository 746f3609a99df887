"""``lesionseg export``: a checkpoint as ONNX (for onnxruntime, TensorRT, OpenVINO ...)."""

from __future__ import annotations

import argparse
from pathlib import Path

EXPORT_INSTALL = 'pip install "lesionseg[export]"'
EXPORT_PACKAGES = ("onnx",)


def missing_export_packages() -> list[str]:
    """The packages of the export extra that cannot be imported (torch.onnx.export writes through onnx)."""
    import importlib

    missing = []
    for name in EXPORT_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a checkpoint as ONNX",
        description="Export the network of a checkpoint to ONNX (dynamic batch and "
        "slice size); preprocessing stays in lesionseg. Needs the export extra: "
        f"{EXPORT_INSTALL}",
    )
    parser.add_argument("--model", type=Path, required=True, help="checkpoint (.pt)")
    parser.add_argument("--out", type=Path, required=True, help="output .onnx file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lesionseg.errors import LesionsegError
    from lesionseg.infer.ensemble_file import expand_model_folders
    from lesionseg.infer.export import export_onnx
    from lesionseg.nets.checkpoint import build_model, load_checkpoint

    if args.model.is_dir():  # a model folder (the bundled one, an ensemble): ONNX holds one network
        first = expand_model_folders([args.model])[0]  # predict's reading of a folder; one line if empty
        raise LesionsegError(
            f"is a model folder; export writes one network: give one network's checkpoint, e.g. {first}",
            args.model,
        )
    missing = missing_export_packages()
    if missing:
        raise LesionsegError(
            f"ONNX export needs {', '.join(missing)}, which the main install leaves out: {EXPORT_INSTALL}"
        )
    if args.out.exists() and not args.overwrite:
        raise LesionsegError("output exists (use --overwrite to replace it)", args.out)
    state = load_checkpoint(args.model)
    cfg = state["network_config"]
    export_onnx(build_model(state), cfg["in_channels"] * cfg["context_slices"], args.out)
    print(f"wrote {args.out}")
    return 0
