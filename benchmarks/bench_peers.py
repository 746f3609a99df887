"""Speed against peers and against the machine (issue 7): every network and MONAI's UNet, fp32 NCHW eager
against our optimised path, in slices/s and as a fraction of this machine's measured peak.

Peak: a GEMM micro-benchmark (torch.mm of --gemm-sizes square matrices, fp32 and bf16) and a convolution
micro-benchmark (3x3, 64 -> 64 channels, 128 x 128, batch 8; fp32 NCHW, fp32 channels_last, bf16
channels_last) run in this process, interleaved, give the GFLOP/s the hardware reaches with these threads
(peak = the best GEMM repeat: load only ever slows a run down).

Networks (two input channels, FLAIR + T1): unet, resunet, tscnn (2.5D), pixelnet at their CPU-profile width
(``resolve_train_config(method, "cpu")``), and MONAI's 2D UNet (num_res_units=2, channels (c, ..., 16c))
matched to our unet's parameter count and, separately, to its FLOPs per slice. For each:
- inference: --infer-batch slices of --infer-size (the bundled model's 160 x 192), forward under
  inference_mode; "fp32" = eager fp32 NCHW; "optimised" = ``prepare_for_inference`` (BN folding, conv +
  ReLU fusion, channels_last) + bf16 autocast;
- training: --train-batch patches of 128 x 128, forward + loss + backward + Adam; "fp32" = fp32 NCHW;
  "optimised" = bf16 autocast + channels_last (what ``bf16=true channels_last=true`` trains with).
FLOPs come from torch.utils.flop_counter.FlopCounterMode (convolutions and matrix products, forward and for
training also backward; element-wise work is not counted). GFLOP/s = counted FLOPs / median time; the
fraction is of the GEMM peak of the same precision (fp32 or bf16). All variants of one network run
interleaved in one process; ratios are the headline. Whole-case time and peak memory for one model and an
ensemble: benchmarks/bench_inference.py (results/speed_inference.md).

    python benchmarks/bench_peers.py                 # 1 thread, ~3-5 min on a loaded 2-core box
    python benchmarks/bench_peers.py --quick
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from _timing import (
    header,
    interleaved,
    load_average,
    markdown_table,
    median,
    result_path,
    set_threads,
    write_result,
)
from bench_training import IN_CHANNELS, METHODS, make_step  # the networks and step it times
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


# ----------------------------------------------------------------------------------------- peak
def peak_table(args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    """GEMM and convolution micro-benchmarks, interleaved; the peak of a precision is the best GEMM rate
    (fastest repeat, largest over the sizes): on a loaded machine the best case is the hardware's."""
    g = torch.Generator().manual_seed(0)
    variants = {}
    for n in args.gemm_sizes:
        a32, b32 = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        a16, b16 = a32.bfloat16(), b32.bfloat16()
        variants[f"GEMM fp32 {n} x {n}"] = (lambda a=a32, b=b32: torch.mm(a, b), 2.0 * n**3)
        variants[f"GEMM bf16 {n} x {n}"] = (lambda a=a16, b=b16: torch.mm(a, b), 2.0 * n**3)
    conv = nn.Conv2d(64, 64, 3, padding=1, bias=False).eval()
    conv_cl = copy.deepcopy(conv).to(memory_format=torch.channels_last)
    x = torch.randn(8, 64, 128, 128, generator=g)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    conv_flops = 2.0 * 9 * 64 * 64 * 128 * 128 * 8

    def bf16_conv() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return conv_cl(x_cl)

    variants["conv 3x3 64->64 fp32 NCHW"] = (lambda: conv(x), conv_flops)
    variants["conv 3x3 64->64 fp32 channels_last"] = (lambda: conv_cl(x_cl), conv_flops)
    variants["conv 3x3 64->64 bf16 channels_last"] = (bf16_conv, conv_flops)
    with torch.inference_mode():
        times, _ = interleaved({k: v[0] for k, v in variants.items()}, args.repeats, progress=False)
    typical = {k: variants[k][1] / median(t) / 1e9 for k, t in times.items()}
    best = {k: variants[k][1] / min(t) / 1e9 for k, t in times.items()}
    peaks = {
        dtype: max(rate for k, rate in best.items() if k.startswith(f"GEMM {dtype}"))
        for dtype in ("fp32", "bf16")
    }
    rows = [[k, f"{typical[k]:.0f}", f"{best[k]:.0f}", f"{median(times[k]) * 1e3:.1f}"] for k in variants]
    table = markdown_table(["micro-benchmark", "GFLOP/s (median)", "GFLOP/s (best)", "median ms"], rows)
    table += f"\n\nPeak used below: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s."
    return table, peaks


# ----------------------------------------------------------------------------------------- networks
class MonaiSlices(nn.Module):
    """MONAI's 2D UNet taking (B, C, H, W) (H, W multiples of 16 here)."""

    def __init__(self, base: int) -> None:
        super().__init__()
        from monai.networks.nets import UNet as MonaiUNet

        self.base = base
        self.net = MonaiUNet(
            2,
            IN_CHANNELS,
            1,
            channels=tuple(base * 2**i for i in range(5)),
            strides=(2,) * 4,
            num_res_units=2,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def count_flops(fn) -> float:  # noqa: ANN001
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def forward_gflops(net: nn.Module, channels: int, size: tuple[int, int]) -> float:
    with torch.no_grad():
        return count_flops(lambda: net.eval()(torch.zeros(1, channels, *size))) / 1e9


def build_networks(args: argparse.Namespace) -> dict[str, dict]:
    from lesionseg.config.train import resolve_train_config
    from lesionseg.losses import create_loss
    from lesionseg.nets import create_network
    from lesionseg.train.trainer import output_channels

    nets = {}
    for name in args.networks:
        cfg = resolve_train_config(METHODS[name], "cpu")
        outputs = output_channels(cfg.network, 2)
        torch.manual_seed(0)
        net = create_network(
            cfg.network,
            in_channels=IN_CHANNELS,
            num_classes=outputs,
            width=cfg.width,
            context_slices=cfg.context_slices,
            **cfg.network_options,
        )
        nets[name] = dict(
            net=net,
            context=cfg.context_slices,
            outputs=outputs,
            loss=create_loss(cfg.loss, **cfg.loss_params),
            label=f"{name} (width {cfg.width}{', 2.5D' if cfg.context_slices == 3 else ''})",
            pixelnet=name == "pixelnet",
        )
    if not args.skip_monai and "unet" in nets:
        ours = nets["unet"]["net"]
        target_params = sum(p.numel() for p in ours.parameters())
        target_flops = forward_gflops(ours, IN_CHANNELS, args.infer_size)
        for match, target in (("params", target_params), ("FLOPs", target_flops)):
            best, gap = None, float("inf")
            for base in range(4, 41):
                torch.manual_seed(0)
                cand = MonaiSlices(base)
                value = (
                    sum(p.numel() for p in cand.parameters())
                    if match == "params"
                    else forward_gflops(cand, IN_CHANNELS, args.infer_size)
                )
                if abs(value - target) < gap:
                    best, gap = cand, abs(value - target)
                if value > target:
                    break
            assert best is not None
            nets[f"monai-{match}"] = dict(
                net=best,
                context=1,
                outputs=1,
                loss=create_loss("soft_dice_loss", smooth=1.0),
                label=f"MONAI UNet c={best.base} ({match} of unet)",
                pixelnet=False,
            )
    return nets


def variants_for(entry: dict, args: argparse.Namespace) -> tuple[dict, dict]:
    """Callables for inference and training, fp32 and optimised, and their FLOPs per call."""
    from lesionseg.infer.optimize import prepare_for_inference
    from lesionseg.train.trainer import loss_on_batch

    net, channels = entry["net"], entry["context"] * IN_CHANNELS
    g = torch.Generator().manual_seed(0)
    xi = torch.randn(args.infer_batch, channels, *args.infer_size, generator=g)
    xi_cl = xi.contiguous(memory_format=torch.channels_last)
    size = args.train_size
    xt = torch.randn(args.train_batch, channels, size, size, generator=g)
    targets = (torch.rand(args.train_batch, size, size, generator=g) < 0.05).long()
    batch = {"images": xt, "targets": targets}
    if entry["pixelnet"]:
        coords = torch.randint(0, size, (args.train_batch, args.pixels, 2), generator=g)
        batch["coords"] = coords
        batch["pixel_targets"] = targets.flatten(1).gather(1, coords[..., 0] * size + coords[..., 1])
    plain = copy.deepcopy(net).eval()
    optimised = prepare_for_inference(net, channels_last=True)

    def infer_fp32() -> torch.Tensor:
        with torch.inference_mode():
            return plain(xi)

    def infer_opt() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return optimised(xi_cl)

    train_fp32 = make_step({**entry, "net": net}, batch, False, False)
    train_opt = make_step({**entry, "net": net}, batch, True, True)

    def train_flops_once() -> None:
        model = copy.deepcopy(net).train()
        loss = loss_on_batch(model, entry["loss"], batch, entry["outputs"])
        loss.backward()

    infer_flops = count_flops(infer_fp32)
    train_flops = count_flops(train_flops_once)
    calls = {
        "infer fp32": infer_fp32,
        "infer optimised": infer_opt,
        "train fp32": train_fp32,
        "train optimised": train_opt,
    }
    flops = {"infer": infer_flops, "train": train_flops}
    return calls, flops


def network_table(args: argparse.Namespace, peaks: dict[str, float]) -> str:
    nets = build_networks(args)
    rows = []
    for name, entry in nets.items():
        calls, flops = variants_for(entry, args)
        print(f"{name}: 4 variants x {args.repeats} rounds", file=sys.stderr, flush=True)
        times, _ = interleaved(calls, args.repeats)
        t = {k: median(v) for k, v in times.items()}
        cells = [entry["label"], f"{sum(p.numel() for p in entry['net'].parameters()) / 1e6:.2f}"]
        for what, batch in (("infer", args.infer_batch), ("train", args.train_batch)):
            gflop_slice = flops[what] / batch / 1e9
            fp32, opt = t[f"{what} fp32"], t[f"{what} optimised"]
            rate32, rate16 = flops[what] / fp32 / 1e9, flops[what] / opt / 1e9
            cells += [
                f"{gflop_slice:.2f}",
                f"{batch / fp32:.1f}",
                f"{batch / opt:.1f}",
                f"{fp32 / opt:.2f}",
                f"{100 * rate32 / peaks['fp32']:.0f}% / {100 * rate16 / peaks['bf16']:.0f}%",
            ]
        rows.append(cells)
    columns = ["network", "params M"]
    for what in ("inference", "training"):
        columns += [
            f"{what} GFLOP/slice",
            f"{what} fp32 slices/s",
            f"{what} optimised slices/s",
            f"{what} speed-up",
            f"{what} % of GEMM peak (fp32 / bf16)",
        ]
    return markdown_table(columns, rows, "l" + "r" * (len(columns) - 1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--gemm-sizes", type=int, nargs="+", default=(1024, 2048))
    parser.add_argument("--infer-size", type=int, nargs=2, default=(160, 192))
    parser.add_argument("--infer-batch", type=int, default=8)
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--pixels", type=int, default=2000, help="PixelNet sampled pixels per image")
    parser.add_argument("--networks", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--skip-monai", action="store_true")
    parser.add_argument("--quick", action="store_true", help="3 rounds, smaller GEMM")
    parser.add_argument(
        "--out", type=Path, help="markdown output (default benchmarks/results/speed_peers.md)"
    )
    args = parser.parse_args()
    args.infer_size = tuple(args.infer_size)
    if args.quick:
        args.repeats, args.gemm_sizes = 3, (1024,)
    threads = set_threads(args.threads)
    load_start = load_average()
    print(f"threads {threads}, load {load_start}", file=sys.stderr)
    peak, peaks = peak_table(args)
    nets = network_table(args, peaks)
    load_end = load_average()
    facts = [
        f"- inference: batch {args.infer_batch} x {args.infer_size[0]} x {args.infer_size[1]}; "
        f"training: batch {args.train_batch} x {args.train_size} x {args.train_size} "
        f"(PixelNet: {args.pixels} sampled pixels per image); "
        f"{args.repeats} interleaved rounds after a warm-up round",
        "- whole-case time and peak memory (one model, ensemble): see speed_inference.md",
    ]
    text = "\n\n".join(
        [
            header(
                "Speed against peers and against the machine's peak", threads, load_start, load_end, facts
            ),
            "Machine peak (same process, interleaved):",
            peak,
            "Networks (median slices/s; speed-up = optimised / fp32 of the same network; % of the GEMM peak "
            "of the same precision, from counted FLOPs):",
            nets,
        ]
    )
    print(text)
    print("wrote", write_result(result_path("speed_peers", args.out, args.quick), text), file=sys.stderr)


if __name__ == "__main__":
    main()
