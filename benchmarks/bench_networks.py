"""Network cost: parameters, GFLOPs per slice, forward and forward+backward slices/s.

For each registered network at its default (paper) configuration, at --size x --size and batch --batch:
parameters, forward GFLOPs per output slice (torch.utils.flop_counter.FlopCounterMode: convolutions and
matrix products; interpolation and sampling are not counted), and throughput in slices/s for fp32 and bf16
autocast, NCHW and channels_last. TS-CNN reads 3 slices per output slice (context 3); the others read 1.
PixelNet's forward is the dense whole-image prediction and its forward+backward is its training step:
`forward_pixels` on --pixels sampled pixels per image (the paper's sparse training, N = 2000).

    python benchmarks/bench_networks.py                 # 256 x 256, batch 8 (several minutes on 2 cores)
    python benchmarks/bench_networks.py --quick         # 128 x 128, batch 1, one timed iteration (~1 min)
    python benchmarks/bench_networks.py --networks unet tscnn --threads 2 --batch 2
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _timing import header, load_average, markdown_table, result_path, set_threads, write_result
from torch.utils.flop_counter import FlopCounterMode

from lesionseg.nets import NETWORKS, PixelNet, create_network

VARIANTS = [  # (label, autocast dtype or None, memory format)
    ("fp32 NCHW", None, torch.contiguous_format),
    ("fp32 channels_last", None, torch.channels_last),
    ("bf16 NCHW", torch.bfloat16, torch.contiguous_format),
    ("bf16 channels_last", torch.bfloat16, torch.channels_last),
]


def make_input(net: torch.nn.Module, batch: int, size: int) -> torch.Tensor:
    channels = net.config.context_slices * net.config.in_channels
    return torch.randn(batch, channels, size, size)


def gflops_per_slice(net: torch.nn.Module, size: int) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net.eval()(make_input(net, 1, size))
    return counter.get_total_flops() / 1e9


def timed(step: Callable[[], None], iters: int) -> float:
    """Seconds per call of step after one warm-up call."""
    step()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    return (time.perf_counter() - start) / iters


def throughput(net: torch.nn.Module, args: argparse.Namespace, dtype, memory_format) -> tuple[float, float]:
    net = net.to(memory_format=memory_format)
    x = make_input(net, args.batch, args.size).to(memory_format=memory_format)
    autocast = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()
    coords = None
    if isinstance(net, PixelNet):
        g = torch.Generator().manual_seed(0)
        coords = torch.randint(0, args.size, (args.batch, args.pixels, 2), generator=g)

    def forward() -> None:
        with torch.inference_mode(), autocast:
            net(x)

    def forward_backward() -> None:
        with autocast:
            logits = net(x) if coords is None else net.forward_pixels(x, coords)
        logits.float().square().mean().backward()
        net.zero_grad(set_to_none=True)

    net.eval()
    fwd = args.batch / timed(forward, args.iters)
    net.train()
    train = args.batch / timed(forward_backward, args.iters)
    return fwd, train


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=2, help="timed iterations after one warm-up")
    parser.add_argument("--pixels", type=int, default=2000, help="PixelNet sampled pixels per image")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a shared 2-core machine 2 threads ran up to 10x slower)",
    )
    parser.add_argument("--networks", nargs="+", default=sorted(NETWORKS), choices=sorted(NETWORKS))
    parser.add_argument("--quick", action="store_true", help="128 x 128, batch 1, 1 timed iteration")
    parser.add_argument("--out", type=Path, help="markdown (default benchmarks/results/speed_networks.md)")
    args = parser.parse_args()
    if args.quick:
        args.size, args.batch, args.iters = 128, 1, 1
    threads = set_threads(args.threads)
    load_start = load_average()
    size = f"{args.size} x {args.size}, batch {args.batch}"
    out = [f"Networks at their default (paper) configuration, {size}:", ""]
    out.append(markdown_table(["network", "config", "parameters (M)", "forward GFLOPs / slice"], [], "llrr"))
    nets = {}
    for name in args.networks:
        torch.manual_seed(0)
        nets[name] = net = create_network(name)
        config = ", ".join(f"{k}={v}" for k, v in vars(net.config).items() if v is not None)
        params = sum(p.numel() for p in net.parameters()) / 1e6
        out.append(f"| {name} | {config} | {params:.2f} | {gflops_per_slice(net, args.size):.1f} |")
        print(out[-1], file=sys.stderr, flush=True)
    results = {}
    for name, net in nets.items():
        results[name] = [throughput(net, args, dtype, fmt) for _, dtype, fmt in VARIANTS]
        cells = ", ".join(
            f"{label} {f:.2f} | {t:.2f}"
            for (label, _, _), (f, t) in zip(VARIANTS, results[name], strict=True)
        )
        print(f"{name} (forward | forward+backward slices/s): {cells}", file=sys.stderr, flush=True)
    for title, column in (
        ("forward (inference), slices/s", 0),
        ("forward + backward (training), slices/s", 1),
    ):
        rows = [[name, *(f"{cell[column]:.2f}" for cell in cells)] for name, cells in results.items()]
        out += ["", f"{title}:", "", markdown_table(["network", *(label for label, _, _ in VARIANTS)], rows)]
    facts = [
        f"- {args.iters} timed iteration(s) after one warm-up per variant; PixelNet training on "
        f"{args.pixels} sampled pixels per image"
    ]
    text = header("Network cost and throughput", threads, load_start, load_average(), facts)
    text += "\n" + "\n".join(out)
    print(text)
    print("wrote", write_result(result_path("speed_networks", args.out, args.quick), text), file=sys.stderr)


if __name__ == "__main__":
    main()
