"""PixelNet inference: the full dense path vs the masked dense path (the MLP only at brain pixels).

A stack of --slices axial slices of a real BraTS case (FLAIR + T1c, 240 x 240, evenly spaced over the
slices that hold brain, its own brain mask) through the CPU-profile PixelNet (width 16, fc6/fc7 1024, MLP
512, 5 classes: `PixelNetConfig(in_channels=2, num_classes=5, width=16)`), one torch thread, fp32 and bf16
autocast (the CPU profile's inference setting). Times are CPU seconds of this process (time.process_time):
on the shared, loaded machine the wall clock mostly measures waiting for a core. The variants run
interleaved, --repeats timed rounds after one untimed round; the table gives each one's median.
The agreement column compares the argmax labels of both paths on the brain pixels.

    python benchmarks/bench_pixelnet_masked.py                # 4 slices, 1 round (~30 CPU s)
    python benchmarks/bench_pixelnet_masked.py --slices 16 --repeats 3
    python benchmarks/bench_pixelnet_masked.py --whole-case    # pixelnet_masked_case.md (~12 CPU min)
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _timing import header, load_average, markdown_table, median, result_path, set_threads, write_result

from lesionseg.io import read_volume
from lesionseg.nets.pixelnet import PixelNet, PixelNetConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASE = ROOT.parent / "shared" / "data" / "brats2015_deepmedic" / "test" / "brats_2013_pat0001_1"


def load_slices(case: Path, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 2, X, Y) FLAIR + T1c (0 outside the brain, as after preprocessing) and the (n, X, Y) brain mask:
    n slices evenly spaced over those that hold brain, or every slice of the volume when n is None."""
    mask = read_volume(case / "brainmask.nii.gz").array > 0
    channels = [read_volume(case / f"{name}_subtrMeanDivStd.nii.gz").array for name in ("Flair", "T1c")]
    brain_z = np.flatnonzero(mask.reshape(-1, mask.shape[-1]).any(axis=0))
    if n is None:
        zs = np.arange(mask.shape[-1])
    else:
        zs = brain_z[np.linspace(0, len(brain_z) - 1, n).round().astype(int)]
    image = np.stack([np.stack([c[..., z] * mask[..., z] for c in channels]) for z in zs]).astype(np.float32)
    return torch.from_numpy(image), torch.from_numpy(np.stack([mask[..., z] for z in zs]))


def cpu_seconds(fn: Callable[[], torch.Tensor]) -> tuple[float, float, torch.Tensor]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, default=DEFAULT_CASE, help="a brats2015_deepmedic case folder")
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--whole-case",
        action="store_true",
        help="every slice of the volume (brain-free ones too, as inference sees them), --slices at a time",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    threads = set_threads(1)
    load_start = load_average()
    x, mask = load_slices(args.case, None if args.whole_case else args.slices)
    torch.manual_seed(0)
    net = PixelNet(PixelNetConfig(in_channels=2, num_classes=5, width=16)).eval()
    chunks = [slice(i, i + args.slices) for i in range(0, len(x), args.slices)]
    rows = []
    for label, dtype in (("fp32", None), ("bf16 autocast", torch.bfloat16)):
        autocast = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()
        variants = {
            "dense": lambda: torch.cat([net(x[c]) for c in chunks]),
            "masked": lambda: torch.cat([net(x[c], brain_mask=mask[c]) for c in chunks]),
        }
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        wall: dict[str, list[float]] = {k: [] for k in variants}
        out: dict[str, torch.Tensor] = {}
        with torch.inference_mode(), autocast:
            for round_ in range(1 + args.repeats):
                for name, fn in variants.items():
                    c, w, out[name] = cpu_seconds(fn)
                    if round_:
                        cpu[name].append(c)
                        wall[name].append(w)
                print(f"  {label} round {round_}/{args.repeats}", file=sys.stderr, flush=True)
        agree = (out["dense"].argmax(1) == out["masked"].argmax(1))[mask].float().mean().item()
        dense_s, masked_s = median(cpu["dense"]), median(cpu["masked"])
        rows.append(
            [
                label,
                f"{dense_s:.2f}",
                f"{masked_s:.2f}",
                f"**{dense_s / masked_s:.1f}x**",
                f"{median(wall['dense']):.1f} / {median(wall['masked']):.1f}",
                f"{100 * agree:.3f} %",
            ]
        )
    fraction = mask.float().mean().item()
    brainless = int((~mask.flatten(1).any(1)).sum())
    extra = [
        "- script: benchmarks/bench_pixelnet_masked.py",
        f"- input: {len(x)} slices of {args.case.name} ({x.shape[-2]} x {x.shape[-1]}"
        + (f"; the whole volume, {args.slices} slices at a time" if args.whole_case else "")
        + f"), brain {100 * fraction:.1f} % of their pixels; {args.repeats} timed round(s) after 1 untimed "
        "round",
        "- network: PixelNetConfig(in_channels=2, num_classes=5, width=16) (CPU-profile widths, fc 1024, "
        "MLP 512)",
    ]
    table = markdown_table(
        [
            "precision",
            "dense CPU s",
            "masked CPU s",
            "dense / masked",
            "wall s (dense / masked)",
            "labels equal on brain",
        ],
        rows,
    )
    note = (
        f"\nThe masked path runs the MLP (512 x 512 per pixel) on the brain only ({100 * fraction:.1f} % of "
        "the pixels) and never builds the dense path's full-size partial sums: the dense path up-samples a "
        "512-channel partial sum of W1 per coarse hypercolumn map to the whole slice (a large share of its "
        "time, memory-bound), while the masked path reads those maps' bilinear taps at the brain pixels "
        "only, in one fused gather (`embedding_bag`). So the ratio can exceed 1 / brain share "
        f"= {1 / fraction:.1f}x. The masked path also skips the convolutions of slices without brain "
        f"({brainless} of {len(x)} here) and runs them channels-last, so that each map is already a "
        "(pixels, channels) table to gather from; the dense path runs them as `forward` does (NCHW, every "
        "slice). The VGG convolutions of the brain slices and the MLP's second layer on the brain pixels "
        "are the floor of the masked time. bf16 autocast is the CPU profile's inference "
        "setting. Labels may differ from the dense path only where two classes' logits tie to within "
        "float rounding (fp32: none seen; bf16: rounding of partial sums)."
    )
    text = header("PixelNet: masked vs full dense inference", threads, load_start, load_average(), extra)
    text += "\n" + table + "\n" + note + "\n"
    print(text)
    name = "pixelnet_masked_case" if args.whole_case else "pixelnet_masked"
    print("wrote", write_result(result_path(name, args.out), text), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
