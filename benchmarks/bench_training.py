"""Training speed per network (issue 5): fp32 NCHW vs bf16 autocast vs channels_last vs both, and whether
bf16 costs accuracy.

Speed: for each network at its CPU-profile size (``resolve_train_config(method, "cpu")``: unet from
wmh-dice, resunet from resunet-focal, tscnn from tscnn-focal (2.5D, 3 slices per sample), pixelnet from
pixelnet-balanced (the loss on --pixels sampled pixels per image)), two input channels (FLAIR + T1),
--size x --size patches, batch --batch: one training step = zero_grad, forward under the variant's autocast,
the method's loss (``trainer.loss_on_batch``), backward, Adam step. Each variant has its own copy of the
same initial network and its own optimiser; the four variants of one network run interleaved (A, B, C, D,
A, ...), each --steps steps per round, median step time over --repeats rounds after a warm-up round.
Slices/s counts output slices (samples); TS-CNN reads 3 input slices per sample.

Accuracy: the same tiny model (wmh-dice, unet width 8, 10 epochs x 50 steps) trained on a 4-case phantom
(``lesionseg.phantom.write_phantom_dataset``; 3 training subjects, 1 validation subject) through
``lesionseg.train.run.train_model`` in fp32 and in bf16 with the same seed; validation Dice per epoch. A
second fp32 run with another seed gives the seed-to-seed spread the bf16 difference is to be read against.

    python benchmarks/bench_training.py            # ~5-10 min with 1 thread on a loaded 2-core box
    python benchmarks/bench_training.py --quick    # ~1-2 min
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
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
    spread,
    timed_once,
    write_result,
)

METHODS = {
    "unet": "wmh-dice",
    "resunet": "resunet-focal",
    "tscnn": "tscnn-focal",
    "pixelnet": "pixelnet-balanced",
}
VARIANTS = [  # (label, bf16 autocast, channels_last)
    ("fp32 NCHW", False, False),
    ("bf16 NCHW", True, False),
    ("fp32 channels_last", False, True),
    ("bf16 channels_last", True, True),
]
IN_CHANNELS = 2


def training_setup(network: str, args: argparse.Namespace) -> tuple[dict, dict]:
    """The method's CPU config, network and loss, and one fixed synthetic batch."""
    from lesionseg.config.train import resolve_train_config
    from lesionseg.losses import create_loss
    from lesionseg.nets import create_network
    from lesionseg.train.trainer import output_channels

    cfg = resolve_train_config(METHODS[network], "cpu")
    outputs = output_channels(cfg.network, 2)
    net_cfg = dict(
        in_channels=IN_CHANNELS,
        num_classes=outputs,
        width=cfg.width,
        context_slices=cfg.context_slices,
        **cfg.network_options,
    )
    torch.manual_seed(0)
    net = create_network(cfg.network, **net_cfg)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, cfg.context_slices * IN_CHANNELS, args.size, args.size, generator=g)
    targets = (torch.rand(args.batch, args.size, args.size, generator=g) < 0.05).long()
    batch = {"images": images, "targets": targets}
    if network == "pixelnet":
        coords = torch.randint(0, args.size, (args.batch, args.pixels, 2), generator=g)
        batch["coords"] = coords
        batch["pixel_targets"] = targets.flatten(1).gather(1, coords[..., 0] * args.size + coords[..., 1])
    info = dict(
        method=METHODS[network],
        cfg=cfg,
        net=net,
        net_cfg=net_cfg,
        outputs=outputs,
        loss=create_loss(cfg.loss, **cfg.loss_params),
        params=sum(p.numel() for p in net.parameters()) / 1e6,
    )
    return info, batch


def make_step(info: dict, batch: dict, bf16: bool, channels_last: bool):  # noqa: ANN201
    from lesionseg.nets.device import autocast
    from lesionseg.train.trainer import loss_on_batch

    model = copy.deepcopy(info["net"]).train()
    data = dict(batch)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        data["images"] = data["images"].contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with autocast(bf16):
            loss = loss_on_batch(model, info["loss"], data, info["outputs"])
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def speed_table(args: argparse.Namespace) -> str:
    rows = []
    for network in args.networks:
        info, batch = training_setup(network, args)
        steps = {label: make_step(info, batch, bf16, cl) for label, bf16, cl in VARIANTS}

        def rounds(fn):  # noqa: ANN001, ANN202
            return lambda: [fn() for _ in range(args.steps)]

        print(f"{network}: {len(VARIANTS)} variants x {args.repeats} rounds", file=sys.stderr, flush=True)
        times, _ = interleaved({k: rounds(f) for k, f in steps.items()}, args.repeats)
        per_step = {k: [t / args.steps for t in v] for k, v in times.items()}
        base = median(per_step["fp32 NCHW"])
        cells = [f"{args.batch / median(v):.1f} ({base / median(v):.2f}x)" for v in per_step.values()]
        cfg = info["cfg"]
        what = f"{info['method']}: width {cfg.width}, context {cfg.context_slices}"
        what += f", {info['params']:.2f} M params"
        if network == "pixelnet":
            what += f", {args.pixels} px/image"
        rows.append([network, what, *cells, spread(per_step["fp32 NCHW"])])
    return markdown_table(
        [
            "network",
            "CPU config",
            *[f"{label} slices/s (vs fp32 NCHW)" for label, _, _ in VARIANTS],
            "fp32 NCHW s/step min-max",
        ],
        rows,
        "ll" + "r" * (len(VARIANTS) + 1),
    )


def accuracy_check(args: argparse.Namespace) -> tuple[str, list[str]]:
    """fp32 vs bf16 training of the same tiny model on the phantom, same seed (plus fp32 with seed 1)."""
    from lesionseg.config.train import resolve_train_config
    from lesionseg.data.cache import PreprocessCache
    from lesionseg.data.manifest import load_manifest
    from lesionseg.phantom import write_phantom_dataset
    from lesionseg.train.run import train_model

    runs = [("fp32, seed 0", False, 0), ("bf16, seed 0", True, 0)]
    if not args.quick:
        runs.append(("fp32, seed 1", False, 1))
    overrides = [
        "width=8",
        f"epochs={args.acc_epochs}",
        f"steps_per_epoch={args.acc_steps}",
        "batch_size=8",
        "patch_size=[64,64]",
        "preprocess.target_size=[96,112]",
        "val_max_slices=32",
        "lr=0.001",
        "early_stopping_patience=null",
        f"threads={args.threads}",
    ]
    histories, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "phantom"
        write_phantom_dataset(root, 4, seed=0)
        manifest = load_manifest(root / "manifest.json")
        subjects = manifest.subjects
        cache = PreprocessCache(Path(tmp) / "cache")
        for label, bf16, seed in runs:
            cfg = resolve_train_config(
                "wmh-dice", "cpu", overrides=[*overrides, f"bf16={str(bf16).lower()}", f"seed={seed}"]
            )
            print(f"accuracy: training {label}", file=sys.stderr, flush=True)
            seconds[label], result = timed_once(
                lambda cfg=cfg, label=label: train_model(
                    cfg,
                    manifest,
                    root,
                    subjects[:3],
                    subjects[3:],
                    Path(tmp) / label.replace(", ", "_"),
                    cache,
                    progress=False,
                )
            )
            histories[label] = result.history
    epochs = max(len(h) for h in histories.values())
    rows = []
    for e in range(epochs):
        row = [str(e + 1)]
        for label in histories:
            h = histories[label]
            row.append(f"{h[e]['val_dice']:.3f} (loss {h[e]['train_loss']:.3f})" if e < len(h) else "-")
        rows.append(row)
    best = {k: max(r["val_dice"] for r in h) for k, h in histories.items()}
    last = {k: h[-1]["val_dice"] for k, h in histories.items()}
    tail = {k: sum(r["val_dice"] for r in h[-3:]) / len(h[-3:]) for k, h in histories.items()}
    rows.append(["best", *[f"{best[k]:.3f}" for k in histories]])
    rows.append(["mean of the last 3 epochs", *[f"{tail[k]:.3f}" for k in histories]])
    rows.append(["wall s (sequential runs, noisy)", *[f"{seconds[k]:.0f}" for k in histories]])
    table = markdown_table(["epoch", *[f"{k}: val Dice (train loss)" for k in histories]], rows)
    notes = [
        f"- tiny model: wmh-dice CPU preset with {', '.join(overrides[:-1])}; 4-case phantom (default "
        "96 x 112 x 64 at 1.5 mm), subjects 1-3 train, subject 4 validates; validation Dice on whole slices.",
        f"- bf16 - fp32 (same seed): best {best['bf16, seed 0'] - best['fp32, seed 0']:+.3f}, "
        f"mean of the last 3 epochs {tail['bf16, seed 0'] - tail['fp32, seed 0']:+.3f}, "
        f"last {last['bf16, seed 0'] - last['fp32, seed 0']:+.3f}",
    ]
    if "fp32, seed 1" in best:
        notes.append(
            "- seed-to-seed spread in fp32 (seed 1 - seed 0): "
            f"best {best['fp32, seed 1'] - best['fp32, seed 0']:+.3f}, "
            f"mean of the last 3 epochs {tail['fp32, seed 1'] - tail['fp32, seed 0']:+.3f}, "
            f"last {last['fp32, seed 1'] - last['fp32, seed 0']:+.3f}"
        )
    return table, notes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--pixels", type=int, default=2000, help="PixelNet sampled pixels per image")
    parser.add_argument("--steps", type=int, default=2, help="training steps per variant per round")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--networks", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--acc-epochs", type=int, default=10)
    parser.add_argument("--acc-steps", type=int, default=50, help="steps per epoch of the accuracy check")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="3 rounds of 1 step; accuracy 3 x 30 steps, 2 runs"
    )
    parser.add_argument(
        "--out", type=Path, help="markdown output (default benchmarks/results/speed_training.md)"
    )
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats, args.acc_epochs, args.acc_steps = 1, 3, 3, 30
    threads = set_threads(args.threads)
    load_start = load_average()
    print(f"threads {threads}, load {load_start}", file=sys.stderr)
    speed = speed_table(args)
    acc_table, acc_notes = ("", []) if args.skip_accuracy else accuracy_check(args)
    load_end = load_average()
    facts = [
        f"- {args.size} x {args.size} patches, batch {args.batch}, {IN_CHANNELS} input channels; "
        f"step = forward + loss + backward + Adam; {args.repeats} interleaved rounds x {args.steps} "
        "step(s) after a warm-up round",
    ]
    parts = [
        header("Training speed: fp32 vs bf16 vs channels_last", threads, load_start, load_end, facts),
        "Training slices/s (median; in brackets the speed-up over fp32 NCHW of the same network):",
        speed,
    ]
    if acc_table:
        parts += [
            "Does bf16 training cost accuracy? (validation Dice per epoch)",
            acc_table,
            "\n".join(acc_notes),
        ]
    text = "\n\n".join(parts)
    print(text)
    print("wrote", write_result(result_path("speed_training", args.out, args.quick), text), file=sys.stderr)


if __name__ == "__main__":
    main()
