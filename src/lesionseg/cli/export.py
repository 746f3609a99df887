"""``lesionseg export``: a checkpoint as ONNX (for onnxruntime, TensorRT, OpenVINO ...)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a checkpoint as ONNX",
        description="Export the network of a checkpoint to ONNX (dynamic batch and "
        "slice size); preprocessing stays in lesionseg.",
    )
    parser.add_argument("--model", type=Path, required=True, help="checkpoint (.pt)")
    parser.add_argument("--out", type=Path, required=True, help="output .onnx file")
    parser.add_argument("--overwrite", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lesionseg.errors import LesionsegError
    from lesionseg.infer.export import export_onnx
    from lesionseg.nets.checkpoint import build_model, load_checkpoint

    if args.out.exists() and not args.overwrite:
        raise LesionsegError("output exists (use --overwrite to replace it)", args.out)
    state = load_checkpoint(args.model)
    cfg = state["network_config"]
    export_onnx(build_model(state), cfg["in_channels"] * cfg["context_slices"], args.out)
    print(f"wrote {args.out}")
    return 0
