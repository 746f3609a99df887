"""Whole-case inference time (issue 6): the plain run against the optimised path and MONAI's U-Net.

One real case (open_ms_data patient07, FLAIR + T1, 182 x 218 x 182 at 1 mm), reading and writing
included: read both images, preprocess, slice-wise prediction, map back to the input grid, write the mask
(NIfTI, gzip). Model loading is reported apart ("setup"). All variants run in one process, interleaved
(A, B, C, A, B, C, ...), median of --repeats rounds after one warm-up round; ratios are the headline.

Variants (whole case):
- plain: Predictor(optimize=False, bf16=False, channels_last=False): fp32, NCHW, eager, no BN folding,
  no brain-window crop, every brain slice;
- optimised: Predictor(optimize=True, bf16=True, channels_last=True): BN folding, conv + ReLU fusion
  (oneDNN post-op, infer/optimize.py), bf16 autocast, channels_last, inference_mode, brain-window crop;
- optimised, no crop: the same without the brain-window crop: Predictor's default optimised path (the
  crop changes the mask, see the Dice column, so it is opt-in: crop_to_brain=True);
- I/O + preprocessing only: the network replaced by a zero map (the floor of the whole-case time);
- MONAI UNet (monai.networks.nets.UNet, 2D, num_res_units=2, channels (c, 2c, 4c, 8c, 16c) with c chosen so
  that its parameter count is closest to ours: --monai-match params; or its FLOPs per slice: flops), in the
  same slice loop, plain and optimised (untrained weights: timing only);
- ensembles: the same checkpoint loaded 3 times (--ensemble), plain and optimised (timing only).
Then peak memory (VmHWM) of one fresh process per configuration, and a network-only table (one batch of
real slices: each optimisation alone, torch.jit.freeze, and with --compile torch.compile).

    python benchmarks/bench_inference.py                     # 1 thread, 3 rounds (~5 min on a loaded box)
    python benchmarks/bench_inference.py --threads 2 --out benchmarks/results/speed_inference_2threads.md
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from _timing import (
    current_rss_mb,
    header,
    interleaved,
    load_average,
    markdown_table,
    median,
    peak_rss_mb,
    result_path,
    set_threads,
    spread,
    timed_once,
    write_result,
)

REPO = Path(__file__).resolve().parents[1]
CASE = "open_ms_data/cross_sectional/MNI/patient07"
FILES = {
    "FLAIR": "FLAIR_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz",
    "T1": "T1_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz",
    "gold": "GOLD_STANDARD_N4_noneck_reduced_winsor_regtoFLAIR_regtoMNI.nii.gz",
}
TARGET_SINGLE_S, TARGET_ENSEMBLE_S, DICE_TOLERANCE = 3.0, 8.0, 0.005


# ----------------------------------------------------------------------------------------- models
def default_model() -> Path:
    """The bundled model when the package has it, else the quick one of train_bundled_model.py."""
    from lesionseg.errors import LesionsegError
    from lesionseg.models import bundled_model_path

    try:
        return bundled_model_path()
    except LesionsegError:
        return REPO / "runs" / "bundled" / "quick" / "wmh_ms_flair_t1"


def model_networks(model: Path, ensemble: int) -> tuple[Path, list[Path]]:
    """The single-network rows' checkpoint (a model folder's first network) and the ensemble rows'
    checkpoints: the folder's networks when it holds several (the bundled model: the rows time exactly
    what ``predict`` runs), else the one checkpoint ``ensemble`` times."""
    from lesionseg.infer.ensemble_file import expand_model_folders

    networks = expand_model_folders([model])
    return networks[0], (networks if len(networks) > 1 else networks * ensemble)


class MonaiSlices(torch.nn.Module):
    """MONAI's 2D UNet as a slice network: (B, C, H, W) -> logits (B, 1, H, W), zero-padded at the bottom
    and right to a multiple of 16 (its four stride-2 levels) and cropped back, as our networks do."""

    def __init__(self, base: int, in_channels: int) -> None:
        super().__init__()
        from monai.networks.nets import UNet as MonaiUNet

        self.base = base
        self.net = MonaiUNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=1,
            channels=tuple(base * 2**i for i in range(5)),
            strides=(2, 2, 2, 2),
            num_res_units=2,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from lesionseg.nets._common import pad_to_multiple

        h, w = x.shape[-2:]
        return self.net(pad_to_multiple(x, 16))[..., :h, :w]


def parameters_m(net: torch.nn.Module) -> float:
    return sum(p.numel() for p in net.parameters()) / 1e6


def gflops(net: torch.nn.Module, in_channels: int, size: tuple[int, int]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net.eval()(torch.zeros(1, in_channels, *size))
    return counter.get_total_flops() / 1e9


def matched_monai(ours: torch.nn.Module, in_channels: int, size: tuple[int, int], match: str) -> MonaiSlices:
    """The MONAI UNet whose parameters (or FLOPs per slice) are closest to ``ours``."""
    target = parameters_m(ours) if match == "params" else gflops(ours, in_channels, size)
    best, best_gap = None, float("inf")
    for base in range(4, 41):
        torch.manual_seed(0)
        net = MonaiSlices(base, in_channels).eval()
        value = parameters_m(net) if match == "params" else gflops(net, in_channels, size)
        if abs(value - target) < best_gap:
            best, best_gap = net, abs(value - target)
        if value > target:
            break
    assert best is not None
    return best


class ZeroNetwork(torch.nn.Module):
    """Stands in for the network to time everything else: logits of -100 (probability 0) everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 1, *x.shape[-2:]), -100.0)


# ----------------------------------------------------------------------------------------- the case
def case_paths(data: Path) -> dict[str, Path]:
    folder = data / CASE
    paths = {k: folder / v for k, v in FILES.items()}
    missing = [str(p) for k, p in paths.items() if k != "gold" and not p.is_file()]
    if missing:
        sys.exit(f"bench_inference: missing input file(s): {', '.join(missing)} (use --data)")
    return paths


def run_case(predictor, paths: dict[str, Path], out_dir: Path) -> Path:  # noqa: ANN001
    """Read, preprocess, predict, write: what `lesionseg predict` does for one case."""
    from lesionseg.infer.files import OutputPaths, predict_files

    channels = {"FLAIR": paths["FLAIR"], "T1": paths["T1"]}
    (written,) = predict_files(predictor, channels, OutputPaths.in_folder(out_dir, "case"), overwrite=True)
    return written


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def make_predictor(  # noqa: ANN201
    kind: str, networks: tuple[Path, list[Path]], args: argparse.Namespace, monai_base: int | None = None
):
    """kind: plain | optimised | optimised-no-crop | optimised-no-tta | io-only | monai-plain |
    monai-optimised | ensemble-plain | ensemble-optimised; ``networks``: ``model_networks``. Every kind but
    optimised-no-tta mirrors at test time when the model was calibrated so (the Predictor's default); the
    ensemble kinds use an ensemble's own saved threshold and minimum lesion size, as ``predict`` does."""
    from lesionseg.infer.ensemble_file import saved_ensemble_calibration
    from lesionseg.infer.predictor import Predictor, load_members

    bf16 = args.bf16
    single, ensemble = networks
    paths = ensemble if kind.startswith("ensemble") else [single]
    saved = saved_ensemble_calibration(paths) or (None, None)
    members = load_members(paths)
    if kind.startswith("monai"):
        assert monai_base is not None
        torch.manual_seed(0)
        members[0].model = MonaiSlices(monai_base, len(members[0].channel_names)).eval()
    if kind == "io-only":
        members[0].model = ZeroNetwork()
    optimised = kind.endswith("optimised") or kind in ("optimised-no-crop", "optimised-no-tta")
    crop = kind in ("optimised", "monai-optimised")  # the ensemble runs the Predictor's default: no crop
    return Predictor(
        members,
        threshold=saved[0],
        min_lesion_mm3=saved[1],
        optimize=optimised,
        bf16=optimised and bf16,
        channels_last=optimised,
        batch_size=args.batch,
        crop_to_brain=crop,
        flip_tta=False if kind == "optimised-no-tta" else None,
    )


# ----------------------------------------------------------------------------------------- memory
def rss_probe(args: argparse.Namespace) -> None:
    """Run in a fresh process: one whole case with one configuration; print peak memory as JSON."""
    set_threads(args.threads)
    import lesionseg.infer.files  # noqa: F401  (imports counted in the baseline)
    import lesionseg.infer.predictor  # noqa: F401

    baseline = current_rss_mb()
    model = Path(args.model) if args.model else default_model()
    predictor = make_predictor(args.rss_probe, model_networks(model, args.ensemble), args, args.monai_base)
    with tempfile.TemporaryDirectory() as tmp:
        run_case(predictor, case_paths(Path(args.data)), Path(tmp))
    print(json.dumps({"after_imports_mb": baseline, "peak_mb": peak_rss_mb()}))


def measure_memory(kinds: list[str], args: argparse.Namespace, monai_base: int) -> dict[str, dict]:
    out = {}
    for kind in kinds:
        command = [
            sys.executable,
            __file__,
            "--rss-probe",
            kind,
            "--threads",
            str(args.threads),
            "--data",
            str(args.data),
            "--ensemble",
            str(args.ensemble),
            "--batch",
            str(args.batch),
            "--monai-base",
            str(monai_base),
            *(["--model", str(args.model)] if args.model else []),
            *([] if args.bf16 else ["--no-bf16"]),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        out[kind] = json.loads(lines[-1]) if done.returncode == 0 and lines else {"error": done.stderr[-300:]}
    return out


# ----------------------------------------------------------------------------------------- network only
def network_table(
    model: Path, monai: MonaiSlices, args: argparse.Namespace, paths: dict[str, Path]
) -> tuple[str, list[str]]:
    """One forward of a batch of real slices (the case's brain slices at the preprocessed size)."""
    from lesionseg.infer.optimize import fold_batch_norm, prepare_for_inference
    from lesionseg.infer.predictor import load_members
    from lesionseg.io import read_volume
    from lesionseg.preprocess import preprocess_volumes

    member = load_members([model])[0]
    case = preprocess_volumes([read_volume(paths["FLAIR"]), read_volume(paths["T1"])], member.preprocess)
    image, mask = np.asarray(case.image), np.asarray(case.mask)
    brain = np.flatnonzero(mask.reshape(-1, mask.shape[-1]).any(axis=0))
    zs = brain[np.linspace(0, len(brain) - 1, args.batch).round().astype(int)]
    x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image[..., zs], -1, 0)))
    x_cl = x.contiguous(memory_format=torch.channels_last)
    plain = member.model.eval()
    folded = fold_batch_norm(plain)[0]
    fused_cl = prepare_for_inference(plain, channels_last=True)
    unfused_cl = prepare_for_inference(plain, channels_last=True, fuse_relu=False)
    monai_cl = copy.deepcopy(monai).to(memory_format=torch.channels_last)
    notes = []

    def bf16(fn):  # noqa: ANN001, ANN202
        def run() -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return fn()

        return run

    variants = {
        "ours fp32 NCHW (plain)": lambda: plain(x),
        "ours fp32 NCHW + BN folding": lambda: folded(x),
        "ours fp32 channels_last + BN folding + conv-ReLU fusion": lambda: fused_cl(x_cl),
        "ours bf16 channels_last + BN folding, no fusion": bf16(lambda: unfused_cl(x_cl)),
        "ours bf16 channels_last + BN folding + conv-ReLU fusion (optimised)": bf16(lambda: fused_cl(x_cl)),
    }
    with torch.inference_mode():
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                traced = torch.jit.freeze(torch.jit.trace(copy.deepcopy(unfused_cl), x_cl, check_trace=False))
            variants["ours bf16 channels_last + BN folding, torch.jit.trace + freeze"] = bf16(
                lambda: traced(x_cl)
            )
        except Exception as exc:  # noqa: BLE001 - report, do not fail the benchmark
            notes.append(f"torch.jit.freeze failed: {type(exc).__name__}: {str(exc)[:120]}")
        if args.compile:
            import time

            import torch._inductor.config as inductor_config

            inductor_config.freezing = True
            compiled = torch.compile(copy.deepcopy(unfused_cl))
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                compiled(x_cl)
            notes.append(
                f"torch.compile (inductor, freezing): first call {time.perf_counter() - start:.1f} s"
            )
            variants["ours bf16 channels_last + BN folding, torch.compile"] = bf16(lambda: compiled(x_cl))
        variants["MONAI UNet fp32 NCHW"] = lambda: monai(x)
        variants["MONAI UNet bf16 channels_last"] = bf16(lambda: monai_cl(x_cl))
        reference = plain(x)
        times, results = interleaved(variants, args.network_repeats, progress=False)
    base = median(times["ours fp32 NCHW (plain)"])
    rows = []
    for name, t in times.items():
        ours = name.startswith("ours")
        diff = float((results[name].float() - reference).abs().max()) if ours else float("nan")
        rows.append(
            [
                name,
                f"{base / median(t):.2f}",
                f"{len(zs) / median(t):.0f}",
                spread(t),
                "-" if not ours else f"{diff:.2g}",
            ]
        )
    table = markdown_table(
        [
            f"network only, batch {len(zs)} x {tuple(x.shape[1:])}",
            "speed vs plain",
            "slices/s",
            "s per batch (min-max)",
            "max logit diff vs plain",
        ],
        rows,
    )
    return table, notes


# ----------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("LESIONSEG_DATA", REPO.parent / "shared/data"))
    )
    parser.add_argument(
        "--model", type=Path, help="checkpoint (default: the bundled model, else the quick one)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: see _timing.py)")
    parser.add_argument("--repeats", type=int, default=3, help="timed interleaved rounds (>= 3)")
    parser.add_argument("--network-repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16, help="slices per forward (Predictor's default)")
    parser.add_argument("--ensemble", type=int, default=3, help="members of the ensemble")
    parser.add_argument("--monai-match", choices=("params", "flops"), default="params")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="optimised path in fp32")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (about a minute)")
    parser.add_argument(
        "--out", type=Path, help="markdown output (default benchmarks/results/speed_inference.md)"
    )
    parser.add_argument("--quick", action="store_true", help="one timed round each (writes *_quick.md)")
    parser.add_argument("--rss-probe", help=argparse.SUPPRESS)
    parser.add_argument("--monai-base", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.network_repeats = 1, 1
    if args.rss_probe:
        rss_probe(args)
        return
    from lesionseg.infer.files import bf16_supported
    from lesionseg.infer.predictor import load_members
    from lesionseg.io import read_volume

    args.bf16 = args.bf16 and bf16_supported()
    threads = set_threads(args.threads)
    load_start = load_average()
    print(f"threads {threads}, load {load_start}", file=sys.stderr)
    paths = case_paths(args.data)
    model = args.model or default_model()
    network, networks = model_networks(model, args.ensemble)
    ours = load_members([network])[0]
    in_channels = len(ours.channel_names)
    size = tuple(ours.preprocess.target_size or (160, 192))
    monai = matched_monai(ours.model, in_channels, size, args.monai_match)
    kinds = [
        "plain",
        "optimised",
        "optimised-no-crop",
        "optimised-no-tta",
        "io-only",
        "monai-plain",
        "monai-optimised",
        "ensemble-plain",
        "ensemble-optimised",
    ]
    setup_times, predictors = {}, {}
    for kind in kinds:
        make = lambda k=kind: make_predictor(k, (network, networks), args, monai.base)  # noqa: E731
        seconds, predictors[kind] = timed_once(make)
        setup_times[kind] = seconds
    with tempfile.TemporaryDirectory() as tmp:
        outs = {kind: Path(tmp) / kind for kind in kinds}
        for path in outs.values():
            path.mkdir()
        variants = {k: (lambda k=k: run_case(predictors[k], paths, outs[k])) for k in kinds}
        times, written = interleaved(variants, args.repeats)
        masks = {k: np.asarray(read_volume(p).array) for k, p in written.items()}
    gold = np.asarray(read_volume(paths["gold"]).array) if paths["gold"].is_file() else None
    net_table, notes = network_table(network, monai, args, paths)
    memory = (
        {}
        if args.skip_memory
        else measure_memory(["plain", "optimised", "ensemble-plain", "ensemble-optimised"], args, monai.base)
    )
    load_end = load_average()

    own = len(set(networks)) > 1
    ensemble_name = f"ensemble of {len(networks)}" + (
        " (the model's own networks: what predict runs)" if own else " (one network repeated)"
    )
    labels = {
        "plain": "ours, plain (fp32 NCHW eager, no folding, no crop)",
        "optimised": "ours, optimised + brain-window crop (Predictor crop_to_brain=True, opt-in)",
        "optimised-no-crop": "ours, optimised (Predictor default: optimize=True, no crop)",
        "optimised-no-tta": "ours, optimised, no crop, without the mirroring at test time (--no-tta)",
        "io-only": "I/O + preprocessing only (network replaced by zeros)",
        "monai-plain": f"MONAI UNet c={monai.base}, plain",
        "monai-optimised": f"MONAI UNet c={monai.base}, optimised path (bf16 + channels_last + crop)",
        "ensemble-plain": f"{ensemble_name}, plain",
        "ensemble-optimised": f"{ensemble_name}, optimised (Predictor default, no crop)",
    }
    reference = {"ensemble-optimised": "ensemble-plain", "monai-optimised": "monai-plain"}
    rows = []
    for kind in kinds:
        t = median(times[kind])
        ref = reference.get(kind, "plain")
        if (kind.startswith("optimised") and kind != "optimised-no-tta") or kind in reference:
            d = dice(masks[ref], masks[kind])
            verdict = "PASS" if d >= 1.0 - DICE_TOLERANCE else "FAIL"
            agree = f"{d:.4f} vs {ref}: {verdict}"
        else:
            agree = "-"
        gold_dice = (
            f"{dice(gold, masks[kind]):.3f}"
            if gold is not None and not kind.startswith(("monai", "io"))
            else "-"
        )
        rows.append(
            [
                labels[kind],
                f"{t:.2f}",
                spread(times[kind]),
                f"{median(times['plain']) / t:.2f}",
                f"{setup_times[kind]:.2f}",
                agree,
                gold_dice,
            ]
        )
    case_table = markdown_table(
        [
            "whole case (read + preprocess + predict + write)",
            "median s",
            "min-max s",
            "speed vs plain",
            "setup s",
            "mask Dice vs plain (>= 0.995)",
            "Dice vs gold standard",
        ],
        rows,
    )
    single, ensemble = median(times["optimised"]), median(times["ensemble-optimised"])
    single_nc = median(times["optimised-no-crop"])
    targets = [
        f"- one model, optimised: {single:.2f} s (target <= {TARGET_SINGLE_S:.0f} s: "
        f"{'MET' if single <= TARGET_SINGLE_S else 'MISSED'}); without the crop {single_nc:.2f} s "
        f"({'MET' if single_nc <= TARGET_SINGLE_S else 'MISSED'})",
        f"- {ensemble_name}, optimised (no crop): {ensemble:.2f} s "
        f"(target <= {TARGET_ENSEMBLE_S:.0f} s: {'MET' if ensemble <= TARGET_ENSEMBLE_S else 'MISSED'})",
        f"- mirroring at test time: the model's default is {'on' if ours.flip_tta else 'off'}; optimised, no "
        f"crop, with it {single_nc:.2f} s and without it {median(times['optimised-no-tta']):.2f} s",
        f"- measured with {threads} torch thread(s) at load {load_start} (start) / {load_end} (end)",
    ]
    mem_rows = []
    for kind, m in memory.items():
        if "error" in m:
            mem_rows.append([labels[kind], "error", m["error"].replace("\n", " ")[:80]])
        else:
            mem_rows.append(
                [labels[kind], f"{m['peak_mb']:.0f}", f"{m['peak_mb'] - m['after_imports_mb']:.0f}"]
            )
    mem_table = markdown_table(["fresh process, one case", "peak RSS MiB", "above imports MiB"], mem_rows)
    from lesionseg.nets.checkpoint import load_checkpoint

    state = load_checkpoint(network)
    trained = state.get("trained", {})
    facts = [
        f"- model: `{Path(model).relative_to(REPO) if Path(model).is_relative_to(REPO) else model}`; the "
        f"single-network rows run `{Path(network).name if network == model else network.relative_to(model)}` "
        f"({ours.model.__class__.__name__}, {parameters_m(ours.model):.3f} M parameters, "
        f"{gflops(ours.model, in_channels, size):.2f} GFLOPs per {size[0]} x {size[1]} slice; "
        f"epoch {state.get('epoch')}, best validation Dice {state.get('best_metric', float('nan')):.3f}, "
        f"trained {trained.get('date', '?')})",
        f"- MONAI UNet: channels {tuple(monai.base * 2**i for i in range(5))}, strides 2, num_res_units=2 "
        f"(MONAI defaults otherwise: instance norm, PReLU), matched on {args.monai_match}: "
        f"{parameters_m(monai):.3f} M parameters, {gflops(monai, in_channels, size):.2f} GFLOPs per slice",
        f"- case: `{CASE}` (FLAIR + T1, {tuple(masks['plain'].shape)}), preprocessed to "
        f"{size[0]} x {size[1]} in-plane, batch {args.batch}; bf16 {'on' if args.bf16 else 'off'}; "
        f"{args.repeats} interleaved rounds after one warm-up round; preprocessing "
        f"{ours.preprocess.normalize} z-score, crop to brain",
    ]
    text = "\n\n".join(
        [
            header(
                "Inference speed: one case, plain vs optimised vs MONAI", threads, load_start, load_end, facts
            ),
            case_table,
            "\n".join(["Targets (issue 6):", *targets]),
            mem_table if mem_rows else "(memory not measured: --skip-memory)",
            net_table,
            "\n".join(f"- {n}" for n in notes) if notes else "",
        ]
    )
    print(text)
    print("wrote", write_result(result_path("speed_inference", args.out, args.quick), text), file=sys.stderr)


if __name__ == "__main__":
    main()
