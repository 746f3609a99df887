"""Should gradients flow through SBFL's beta (TS-CNN eq. 2)? Train both variants, compare Dice.

Synthetic small-lesion task: 2D images of Gaussian-smoothed noise with 1-4 faint blobs of a few pixels
(radius 1-2 px, the PWML setting of NOTES.md); a small residual U-Net (TS-CNN Table 1 row B) is trained
with `self_balancing_focal_loss(detach_beta=False)` (the authors' code) and `detach_beta=True` from the
same initialisation and the same batches, for several seeds; Dice is measured on a fixed held-out set at
threshold 0.5 (pooled over all pixels of the set).

    python benchmarks/sbfl_beta_gradient.py            # 5 seeds x 300 steps, ~6 min on one core
    python benchmarks/sbfl_beta_gradient.py --quick    # 2 seeds x 100 steps
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _timing import header, load_average, markdown_table, result_path, set_threads, write_result

from lesionseg.losses import self_balancing_focal_loss
from lesionseg.nets import create_network


def make_images(n: int, size: int, contrast: float, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """n images (n, 1, size, size) of smoothed noise with faint small blobs, and their masks."""
    noise = torch.from_numpy(rng.standard_normal((n, 1, size, size))).float()
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :] / 16.0)[None, None]
    background = F.conv2d(noise, kernel, padding=1) * 2.0  # unit-ish std, correlated like anatomy
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, 1, size, size), dtype=np.float32)
    lesions = np.zeros_like(masks)
    for i in range(n):
        for _ in range(rng.integers(1, 5)):
            cy, cx = rng.uniform(4, size - 4, size=2)
            radius = rng.uniform(1.0, 2.2)
            d2 = (yy - cy) ** 2 + (xx - cx) ** 2
            masks[i, 0][d2 <= radius**2] = 1.0
            lesions[i, 0] += np.exp(-d2 / (2 * radius**2))
    images = background + contrast * torch.from_numpy(lesions)
    return images, torch.from_numpy(masks)


def dice(logits: torch.Tensor, masks: torch.Tensor, threshold: float = 0.0) -> float:
    """Dice of (logits > threshold) against masks, pooled over all pixels."""
    pred = logits > threshold
    truth = masks > 0.5
    inter = (pred & truth).sum().item()
    return 2.0 * inter / max(pred.sum().item() + truth.sum().item(), 1)


def best_dice(logits: torch.Tensor, masks: torch.Tensor) -> float:
    """Dice at the best probability threshold in 0.05..0.95: detection quality apart from calibration."""
    thresholds = torch.logit(torch.linspace(0.05, 0.95, 19)).tolist()
    return max(dice(logits, masks, t) for t in thresholds)


def train(
    detach_beta: bool, seed: int, args: argparse.Namespace, test: tuple[torch.Tensor, ...]
) -> tuple[float, float]:
    torch.manual_seed(seed)
    net = create_network("resunet", width=args.width)
    optimiser = torch.optim.Adam(net.parameters(), lr=args.lr)
    rng = np.random.default_rng(1000 + seed)  # same batches for both variants
    net.train()
    for _ in range(args.steps):
        images, masks = make_images(args.batch, args.size, args.contrast, rng)
        loss = self_balancing_focal_loss(net(images), masks, detach_beta=detach_beta)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()
    with torch.no_grad():
        logits = net(test[0])
    return dice(logits, test[1]), best_dice(logits, test[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--contrast", type=float, default=1.5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for this size)")
    parser.add_argument("--quick", action="store_true", help="2 seeds x 100 steps")
    parser.add_argument("--out", type=Path, help="markdown output (default: results/sbfl_beta_gradient.md)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps = 2, 100
    threads = set_threads(args.threads)
    load_start = load_average()
    test = make_images(64, args.size, args.contrast, np.random.default_rng(12345))
    lesion_fraction = test[1].mean().item()
    out = [
        f"Residual U-Net width {args.width}, {args.size} x {args.size}, batch {args.batch}, "
        f"{args.steps} steps, Adam lr {args.lr}; synthetic small-lesion images (lesion fraction "
        f"{lesion_fraction:.4f}); Dice on 64 held-out images, pooled.",
        "",
        markdown_table(
            [
                "seed",
                "Dice@0.5 through beta (authors)",
                "Dice@0.5 detached",
                "difference",
                "best-threshold Dice through",
                "best-threshold Dice detached",
            ],
            [],
            "rrrrrr",
        ),
    ]
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for detach in (False, True):
            results[detach].append(train(detach, seed, args, test))
        (a, a_best), (b, b_best) = results[False][-1], results[True][-1]
        out.append(f"| {seed} | {a:.4f} | {b:.4f} | {a - b:+.4f} | {a_best:.4f} | {b_best:.4f} |")
        print(out[-1], file=sys.stderr, flush=True)

    def summary(values: list[float], sign: str = "") -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):{sign}.4f} ({sd:.4f})"

    through, detached = [r[0] for r in results[False]], [r[0] for r in results[True]]
    diffs = [a - b for a, b in zip(through, detached, strict=True)]
    through_best, detached_best = [r[1] for r in results[False]], [r[1] for r in results[True]]
    out.append(
        f"| mean (sd) | {summary(through)} | {summary(detached)} | {summary(diffs, '+')} "
        f"| {summary(through_best)} | {summary(detached_best)} |"
    )
    wins = sum(d > 0 for d in diffs)
    out += ["", f"Dice@0.5: gradient through beta better in {wins}/{len(diffs)} seeds."]
    text = header(
        "SBFL (TS-CNN eq. 2): gradient through beta vs detached", threads, load_start, load_average()
    )
    text += "\n" + "\n".join(out)
    print(text)
    path = write_result(result_path("sbfl_beta_gradient", args.out, args.quick), text)
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
