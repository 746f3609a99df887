"""Slice-wise (2D or 2.5D) inference over a preprocessed volume, in batches, skipping slices outside the
brain. Output probabilities: (1, X, Y, Z) sigmoid for binary networks, (K, X, Y, Z) softmax otherwise."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from lesionseg.data.slicing import extract_slice


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid for one output channel, softmax over channels otherwise."""
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


def autocast(bf16: bool):  # noqa: ANN201 - a context manager
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


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
) -> np.ndarray:
    """Probabilities for every slice of ``image`` (C, X, Y, Z); slices without brain stay 0.

    ``flip_tta`` averages the prediction with that of the left-right flipped slice.
    """
    model.eval()
    depth = image.shape[-1]
    if z_indices is None:
        z_indices = np.arange(depth) if mask is None else np.flatnonzero(mask.reshape(-1, depth).any(axis=0))
    out: np.ndarray | None = None
    for start in range(0, len(z_indices), batch_size):
        zs = z_indices[start : start + batch_size]
        batch = torch.from_numpy(np.stack([extract_slice(image, int(z), context_slices) for z in zs]))
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast(bf16):
            prob = probabilities(model(batch).float())
            if flip_tta:
                prob = 0.5 * (prob + probabilities(model(batch.flip(-2)).float()).flip(-2))
        prob_np = prob.float().numpy()  # (b, K, X, Y)
        if out is None:
            out = np.zeros((prob_np.shape[1], *image.shape[1:]), dtype=np.float32)
        out[..., zs] = prob_np.transpose(1, 2, 3, 0)
    if out is None:  # no brain slice at all
        out = np.zeros((1, *image.shape[1:]), dtype=np.float32)
    return out


def to_label(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(1, ...) -> {0, 1} by threshold; (K, ...) -> argmax class index."""
    if prob.shape[0] == 1:
        return (prob[0] >= threshold).astype(np.uint8)
    return prob.argmax(axis=0).astype(np.uint8)
