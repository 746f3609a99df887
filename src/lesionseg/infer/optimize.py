"""Inference-only rewrites of a trained network that keep its outputs (within float tolerance).

Batch-norm folding merges each BatchNorm2d that directly follows a Conv2d (in an nn.Sequential) into the
convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``): one pass over memory less per
layer. Pre-activation blocks (BN before the convolution, as in the residual U-Net) are left as they are.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``model`` (eval mode) with Conv2d -> BatchNorm2d pairs fused, and how many were fused."""
    model = copy.deepcopy(model).eval()
    fused = 0
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
                fused += 1
    return model, fused


def prepare_for_inference(model: nn.Module, channels_last: bool = False, fold_bn: bool = True) -> nn.Module:
    """Eval mode, frozen parameters, optional BN folding and channels_last memory format."""
    if fold_bn:
        model, _ = fold_batch_norm(model)
    model = model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
