"""Slice-wise (2D or 2.5D) inference over a preprocessed volume, in batches, skipping slices outside the
brain. Output probabilities: (1, X, Y, Z) sigmoid for binary networks, (K, X, Y, Z) softmax otherwise."""

from __future__ import annotations

import sys

import numpy as np
import torch
from tqdm import tqdm

from lesionseg.data.slicing import extract_slice
from lesionseg.nets.device import autocast


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid for one output channel, softmax over channels otherwise."""
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


@torch.inference_mode()
def predict_volume(
    model: torch.nn.Module,
    image: np.ndarray,
    mask: np.ndarray | None,
    context_slices: int,
    batch_size: int = 16,
    bf16: bool = False,
    channels_last: bool = False,
    flip_tta: bool = False,
    z_indices: np.ndarray | None = None,
    crop_multiple: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """Probabilities for every slice of ``image`` (C, X, Y, Z); slices without brain, and with ``mask``
    every voxel outside the brain, are background (sigmoid output 0; softmax output 1 for class 0 and 0
    for the others). Without the mask, a network trained on whole slices fired on the zero background at
    the crop's edge (the demo's phantom: 12,000 false voxels per case).

    ``flip_tta`` averages the prediction with that of the left-right flipped slice. ``crop_multiple`` > 0
    runs the network only on the in-plane bounding box of the brain ``mask`` (grown to a multiple of it,
    e.g. 16, inside the slice) and leaves 0 outside it. The preprocessed input is 0 outside the brain, but
    the crop is not exact: where the network's receptive field reaches past the window (the U-Nets here see
    the whole slice) it meets zero padding at the window's edge instead of the bias-driven activations the
    full slice has over the empty background. How far the cropped mask is from the full-slice one:
    BENCHMARKS.md, "Speed: inference on one whole case" (benchmarks/bench_inference.py).
    """
    model.eval()
    depth = image.shape[-1]
    if z_indices is None:
        z_indices = np.arange(depth) if mask is None else np.flatnonzero(mask.reshape(-1, depth).any(axis=0))
    window = brain_window(mask, image.shape[1:3], crop_multiple) if crop_multiple else None
    masked = mask is not None and getattr(model, "accepts_brain_mask", False)  # PixelNet: MLP on brain only
    out: np.ndarray | None = None
    starts = range(0, len(z_indices), batch_size)
    for start in tqdm(
        starts, desc="slices", unit="batch", leave=False, disable=not progress, file=sys.stderr
    ):
        zs = z_indices[start : start + batch_size]
        slices = [extract_slice(image, int(z), context_slices) for z in zs]
        if window is not None:
            slices = [s[:, window[0], window[1]] for s in slices]
        batch = torch.from_numpy(np.stack(slices)).to(device)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        brain: dict[str, torch.Tensor] = {}
        if masked:
            planes = np.stack([np.asarray(mask[..., int(z)]) > 0 for z in zs])
            planes = planes[:, window[0], window[1]] if window is not None else planes
            brain = {"brain_mask": torch.from_numpy(planes).to(device)}
        with autocast(bf16, device):
            prob = probabilities(model(batch, **brain).float())
            if flip_tta:
                flipped = {k: v.flip(-2) for k, v in brain.items()}
                prob = 0.5 * (prob + probabilities(model(batch.flip(-2), **flipped).float()).flip(-2))
        prob_np = prob.float().cpu().numpy().transpose(1, 2, 3, 0)  # (K, X, Y, b)
        if out is None:
            out = np.zeros((prob_np.shape[0], *image.shape[1:]), dtype=np.float32)
            if prob_np.shape[0] > 1:
                out[0] = 1.0  # softmax: what the network does not see is background with probability 1
        if window is not None:
            out[:, window[0], window[1], zs] = prob_np
        else:
            out[..., zs] = prob_np
    if out is None:  # no brain slice at all
        out = np.zeros((1, *image.shape[1:]), dtype=np.float32)
    if mask is not None:  # brain lesions lie in the brain: outside the mask is background
        outside = ~(np.asarray(mask) > 0)
        out[:, outside] = 0.0
        if out.shape[0] > 1:
            out[0, outside] = 1.0
    return out


def foreground_probability(prob: np.ndarray) -> np.ndarray:
    """Lesion probability: the sigmoid output, or 1 - P(background) for a softmax output."""
    return prob[0] if prob.shape[0] == 1 else 1.0 - prob[0]


def to_label(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(1, ...) -> {0, 1} by threshold; (K, ...) -> argmax class index."""
    if prob.shape[0] == 1:
        return (prob[0] >= threshold).astype(np.uint8)
    return prob.argmax(axis=0).astype(np.uint8)


def brain_window(
    mask: np.ndarray | None, shape: tuple[int, int], multiple: int
) -> tuple[slice, slice] | None:
    """In-plane (X, Y) bounding box of ``mask``, its edges moved out to multiples of ``multiple`` (so the
    network's pooling grid is the one of the full slice), clipped to the slice."""
    if mask is None or not np.any(mask):
        return None
    window = []
    for axis, size in zip((0, 1), shape, strict=True):
        other = tuple(a for a in (0, 1, 2) if a != axis)
        idx = np.flatnonzero(np.asarray(mask).any(axis=other))
        lo = int(idx[0]) // multiple * multiple  # aligned to the pooling grid of the full slice
        hi = min(size, -(-(int(idx[-1]) + 1) // multiple) * multiple)
        window.append(slice(lo, hi))
    return window[0], window[1]
