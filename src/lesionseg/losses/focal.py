"""Cross-entropy-type binary losses: BCE, focal (TS-CNN eq. 1), binary focal (thesis eq. 2), SBFL (eq. 2).

All take binary logits (B, 1, ...) and targets (B, 1, ...) float or (B, ...) integer; the maths runs in
float32 from the logits: log p = logsigmoid(z), log(1 - p) = logsigmoid(-z), and with epsilon
log(p + eps) = logaddexp(log p, log eps), so no probability is ever rounded to 0 or 1 first.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._common import binary_inputs, reduce_loss


def focal_terms(
    logits: torch.Tensor, target: torch.Tensor, gamma: float, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Un-weighted focal terms per element (float32, target already float, same shape as logits).

    positive = -y (1 - p)^gamma log(p + eps), negative = -(1 - y) p^gamma log(1 - p + eps).
    """
    log_p = F.logsigmoid(logits)
    log_q = F.logsigmoid(-logits)
    if eps > 0:
        log_eps = torch.tensor(math.log(eps), dtype=logits.dtype, device=logits.device)
        log_p_eps, log_q_eps = torch.logaddexp(log_p, log_eps), torch.logaddexp(log_q, log_eps)
    elif eps == 0:
        log_p_eps, log_q_eps = log_p, log_q
    else:
        raise ValueError(f"eps must be >= 0, got {eps}")
    positive = -target * torch.exp(gamma * log_q) * log_p_eps
    negative = -(1.0 - target) * torch.exp(gamma * log_p) * log_q_eps
    return positive, negative


def binary_cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy from logits: -y log p - (1 - y) log(1 - p)."""
    logits, target = binary_inputs(logits, target)
    return reduce_loss(F.binary_cross_entropy_with_logits(logits, target, reduction="none"), reduction)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.9,
    gamma: float = 1.0,
    eps: float = 1e-7,
    reduction: str = "mean",
) -> torch.Tensor:
    """Focal loss, TS-CNN eq. 1 (Lin et al. 2018).

    FL = -alpha y (1-p)^gamma log(p + eps) - (1 - y)(1 - alpha) p^gamma log(1 - p + eps).
    alpha = 0.9 is the value TS-CNN section 3.2 reports for its focal-loss rows; the paper does not give
    gamma: 1 is the value the authors' public code uses for the same construction (their SBFL).
    With eps = 0 this equals monai.losses.FocalLoss(gamma=gamma, alpha=alpha) on sigmoid outputs.
    """
    logits, target = binary_inputs(logits, target)
    positive, negative = focal_terms(logits, target, gamma, eps)
    return reduce_loss(alpha * positive + (1.0 - alpha) * negative, reduction)


def binary_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Binary focal loss of the WMH thesis, eq. 2 (gamma = 2 as trained there).

    L = -alpha y (1 - p)^gamma log(p) - (1 - y) p^gamma log(1 - p). The thesis prints the positive term
    without log(p), a typo (the loss would not be a cross-entropy, and would not vanish at p = 1); we use
    the standard form. alpha weighs the positives only (not 1 - alpha on the negatives, unlike TS-CNN
    eq. 1); the thesis gives no value, so the default 1 is the un-weighted loss, equal to
    monai.losses.FocalLoss(gamma=gamma, alpha=None).
    """
    logits, target = binary_inputs(logits, target)
    positive, negative = focal_terms(logits, target, gamma, eps=0.0)
    return reduce_loss(alpha * positive + negative, reduction)


def self_balancing_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 1.0,
    eps: float = 1e-7,
    detach_beta: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """Self-balancing focal loss (SBFL), TS-CNN eq. 2.

    SBFL0 = -(1 - y) p^gamma log(1 - p + eps) (ground-truth background pixels),
    SBFL1 = -y (1 - p)^gamma log(p + eps) (ground-truth lesion pixels),
    beta = 0.4 sum(SBFL0) / (sum(SBFL0) + sum(SBFL1)) + 0.5, sums over the whole batch, so beta in
    [0.5, 0.9]; the loss is the mean over all pixels of beta SBFL1 + (1 - beta) SBFL0.

    Eq. 2 as printed multiplies by (1 - y_pred) and y_pred; the text ("focal loss of background and
    foreground pixels") and the authors' public code select pixels by the ground truth, which we
    follow. gamma = 1 and eps = 1e-7 are the authors' values. The sums are clamped at 0 (with eps a
    term can be ~1e-7 negative); if both are 0, beta = 0.5.

    detach_beta: False (the authors' code) lets gradients flow through beta; True treats beta as a
    constant, which makes the gradient that of `focal_loss` with alpha = beta. Through beta, lesion pixels
    get the weight beta + 0.4 S0 (S0 - S1) / (S0 + S1)^2 and background pixels
    1 - beta - 0.4 S1 (S0 - S1) / (S0 + S1)^2 (S = the sums): about 1.3 and 0.1 instead of 0.9 and 0.1
    while S0 >> S1, a somewhat stronger class weighting.

    Default False, chosen by experiment: `python benchmarks/sbfl_beta_gradient.py` trains a small residual
    U-Net on noise images with small blobs both ways over paired seeds (with ``--seeds`` / ``--first-seed``
    for more). The difference stayed within seed noise, in either direction depending on the seeds, so the
    default keeps the authors' behaviour; the figures are in BENCHMARKS.md, "SBFL: should the gradient
    flow through beta?".
    """
    logits, target = binary_inputs(logits, target)
    sbfl1, sbfl0 = focal_terms(logits, target, gamma, eps)
    sum0, sum1 = sbfl0.sum(), sbfl1.sum()
    if detach_beta:
        sum0, sum1 = sum0.detach(), sum1.detach()
    # With eps the terms can be ~-1e-7 below 0 (log(1 + eps) > 0); clamp the sums so beta stays in
    # [0.5, 0.9], and use beta = 0.5 when both are 0 (without a 0/0 in the backward pass).
    sum0, sum1 = sum0.clamp_min(0.0), sum1.clamp_min(0.0)
    total = sum0 + sum1
    ratio = torch.where(total > 0, sum0 / torch.where(total > 0, total, 1.0), 0.0)
    beta = 0.4 * ratio + 0.5
    return reduce_loss(beta * sbfl1 + (1.0 - beta) * sbfl0, reduction)
