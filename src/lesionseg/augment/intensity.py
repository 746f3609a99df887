"""Intensity augmentation of z-scored slices: gamma, contrast, brightness, Gaussian noise and blur.

nnU-Net v2's 2D intensity transforms, drawn per sample: each is applied with its own probability, so most
samples see one or two of them. ``sample_intensity_params`` draws; ``apply_intensity`` is the
deterministic twin, so a draw can be logged and replayed.

``reduce_lesion_contrast`` is not nnU-Net's: it uses the label to pull lesion intensities towards the
tissue around them, for training sets whose lesions are all brighter than those of the scans to come.
``drop_modalities`` is modality dropout (HeMIS, Havaei et al., MICCAI 2016): every modality but the first
is blanked, so that the model also learns to read the first one (FLAIR in the MS manifests) alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class IntensityParams:
    """One draw; the identity by default."""

    gamma: float = 1.0  # on intensities rescaled to [0, 1] per channel, then scaled back
    contrast: float = 1.0  # multiply the deviation from the channel mean
    brightness: float = 1.0  # multiply every intensity
    noise_std: float = 0.0  # additive Gaussian noise (z-score units)
    blur_sigma: float = 0.0  # Gaussian blur in pixels
    noise_seed: int = 0

    def is_identity(self) -> bool:
        return self == IntensityParams(noise_seed=self.noise_seed)


def sample_intensity_params(rng: np.random.Generator, strong: bool = False) -> IntensityParams:
    """nnU-Net v2's probabilities and ranges: noise (p 0.1, variance U[0, 0.1]), blur (p 0.2, sigma
    U[0.5, 1]), brightness (p 0.15, x U[0.75, 1.25]), contrast (p 0.15, x U[0.75, 1.25]), gamma (p 0.3,
    U[0.7, 1.5]). ``strong`` widens brightness (p 0.3, U[0.7, 1.3]), contrast (p 0.5, U[0.6, 1.5]) and
    gamma (p 0.5, U[0.6, 1.6]): for training sets that mix sites whose lesion contrast differs."""
    draws = rng.random(5)
    bright_p, bright = (0.3, (0.7, 1.3)) if strong else (0.15, (0.75, 1.25))
    contrast_p, contrast = (0.5, (0.6, 1.5)) if strong else (0.15, (0.75, 1.25))
    gamma_p, gamma = (0.5, (0.6, 1.6)) if strong else (0.3, (0.7, 1.5))
    return IntensityParams(
        noise_std=float(np.sqrt(rng.uniform(0, 0.1))) if draws[0] < 0.1 else 0.0,
        blur_sigma=float(rng.uniform(0.5, 1.0)) if draws[1] < 0.2 else 0.0,
        brightness=float(rng.uniform(*bright)) if draws[2] < bright_p else 1.0,
        contrast=float(rng.uniform(*contrast)) if draws[3] < contrast_p else 1.0,
        gamma=float(rng.uniform(*gamma)) if draws[4] < gamma_p else 1.0,
        noise_seed=int(rng.integers(2**31)),
    )


def apply_intensity(image: np.ndarray, params: IntensityParams) -> np.ndarray:
    """``image`` (C, H, W) float32 with ``params`` applied per channel (background stays where it was
    only for brightness and contrast about 0; noise and blur touch every pixel, as in nnU-Net)."""
    if params.is_identity():
        return image
    out = image.astype(np.float32, copy=True)
    if params.noise_std > 0:
        noise_rng = np.random.default_rng(params.noise_seed)
        out += noise_rng.normal(0.0, params.noise_std, size=out.shape).astype(np.float32)
    if params.blur_sigma > 0:
        out = np.stack([ndimage.gaussian_filter(ch, params.blur_sigma) for ch in out]).astype(np.float32)
    out *= params.brightness
    if params.contrast != 1.0:
        mean = out.mean(axis=(1, 2), keepdims=True)
        lo, hi = out.min(axis=(1, 2), keepdims=True), out.max(axis=(1, 2), keepdims=True)
        out = np.clip((out - mean) * params.contrast + mean, lo, hi)
    if params.gamma != 1.0:
        lo, hi = out.min(axis=(1, 2), keepdims=True), out.max(axis=(1, 2), keepdims=True)
        span = np.maximum(hi - lo, 1e-7)
        out = np.power((out - lo) / span, params.gamma) * span + lo
    return out.astype(np.float32)


LESION_CONTRAST_RANGE = (0.5, 1.0)  # the share of a lesion's contrast to its surround that is kept
SURROUND_PIXELS = 3  # the ring around the lesions whose median stands for the tissue they sit in


def reduce_lesion_contrast(image: np.ndarray, lesion: np.ndarray, keep: float) -> np.ndarray:
    """``image`` (C, H, W) with each channel's lesion pixels moved towards the median of the brain
    (nonzero) pixels in a ring of ``SURROUND_PIXELS`` around the lesions: x + (1 - keep) w (ref - x),
    with ``w`` the lesion mask smoothed by a Gaussian (sigma 1 pixel) so that no sharp edge marks where the
    label was. ``keep`` 1 (or no lesion, or no brain in the ring) returns ``image`` itself."""
    lesion = lesion > 0
    if keep >= 1.0 or not lesion.any():
        return image
    ring = ndimage.binary_dilation(lesion, iterations=SURROUND_PIXELS) & ~lesion
    weight = ndimage.gaussian_filter(lesion.astype(np.float32), 1.0)
    weight = np.maximum(weight, lesion) * (1.0 - keep)
    out = image.astype(np.float32, copy=True)
    for channel in out:
        surround = channel[ring & (channel != 0)]
        if surround.size:
            inside = (weight > 1e-3) & (channel != 0)  # background stays background
            channel[inside] += weight[inside] * (float(np.median(surround)) - channel[inside])
    return out


def drop_modalities(image: np.ndarray, modalities: int) -> np.ndarray:
    """``image`` (context x ``modalities`` channels, H, W; ordered [t-1 modalities, t ..., t+1 ...]) with
    every modality but the first set to 0, the brain mean after z-scoring and the background value. One
    modality returns ``image`` itself."""
    if modalities <= 1:
        return image
    out = image.copy()
    for m in range(1, modalities):
        out[m::modalities] = 0.0
    return out
