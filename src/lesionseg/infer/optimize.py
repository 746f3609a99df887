"""Inference-only rewrites of a trained network that keep its outputs (within float tolerance).

Batch-norm folding merges each BatchNorm2d that directly follows a Conv2d (in an nn.Sequential) into the
convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``): one pass over memory less per
layer. Pre-activation blocks (BN before the convolution, as in the residual U-Net) are left as they are.

Convolution + ReLU fusion replaces each Conv2d directly followed by a ReLU (in an nn.Sequential, after BN
folding) by one oneDNN convolution with the ReLU as a post-op (``torch.ops.mkldnn._convolution_pointwise``,
the kernel torch.compile's CPU backend emits for the same pattern): the activation is rectified while it is
still in cache instead of in a second pass over memory. It helps most under bf16 autocast, where the
stand-alone bf16 ReLU is slow (figures: BENCHMARKS.md, "Speed: networks against MONAI's UNet and the
machine's peak", and benchmarks/bench_inference.py). The result is the same convolution then ReLU
(bitwise equal in our tests). The fused module is used only where that kernel exists and passes a
self-check on this machine; otherwise the model keeps its Conv2d and ReLU.
"""

from __future__ import annotations

import copy
import functools

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


class ConvReLU2d(nn.Module):
    """ReLU(conv2d(x)) in one oneDNN call; inference only (no autograd formula).

    Holds the convolution's own weight and bias. Under CPU autocast the input, weight and bias are cast to
    the autocast dtype (the custom op has no autocast rule of its own), as autocast does for ``conv2d``.
    Keeps the input's memory format (channels_last in, channels_last out).
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("ConvReLU2d needs a Conv2d with numeric zero padding")
        self.weight, self.bias = conv.weight, conv.bias
        self.padding = list(conv.padding)
        self.stride = list(conv.stride)
        self.dilation = list(conv.dilation)
        self.groups = conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        if x.dtype != dtype:
            x = x.to(dtype)
        if weight.dtype != dtype:
            weight = weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        return torch.ops.mkldnn._convolution_pointwise(
            x, weight, bias, self.padding, self.stride, self.dilation, self.groups, "relu", [], ""
        )


@functools.cache
def fused_conv_relu_available() -> bool:
    """Whether the oneDNN fused kernel exists here and matches conv2d + ReLU (fp32 and, when supported,
    bf16, NCHW and channels_last) on a small input; checked once per process."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        with torch.random.fork_rng(devices=[]):  # leaves the caller's random state as it was
            torch.manual_seed(0)
            conv = nn.Conv2d(3, 4, 3, padding=1).eval()
            x = torch.randn(2, 3, 9, 7)
        fused = ConvReLU2d(conv)
        dtypes = [None]
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            dtypes.append(torch.bfloat16)
        with torch.inference_mode():
            for memory_format in (torch.contiguous_format, torch.channels_last):
                xm = x.contiguous(memory_format=memory_format)
                for dtype in dtypes:
                    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                        want, got = torch.relu(conv(xm)).float(), fused(xm).float()
                    if got.shape != want.shape or not torch.allclose(got, want, atol=1e-2, rtol=1e-2):
                        return False
        return True
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


def fuse_conv_relu(model: nn.Module) -> tuple[nn.Module, int]:
    """``model`` (modified in place) with Conv2d -> ReLU pairs of an nn.Sequential (Identity layers left
    by BN folding skipped) replaced by ``ConvReLU2d``, and how many were fused; unchanged when the fused
    kernel is not available (``fused_conv_relu_available``)."""
    if not fused_conv_relu_available():
        return model, 0
    fused = 0
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = [n for n, m in module._modules.items() if not isinstance(m, nn.Identity)]
        for first, second in zip(names, names[1:], strict=False):
            conv, relu = module._modules[first], module._modules[second]
            if (
                type(conv) is nn.Conv2d
                and isinstance(relu, nn.ReLU)
                and conv.padding_mode == "zeros"
                and not isinstance(conv.padding, str)
            ):
                module._modules[first] = ConvReLU2d(conv)
                module._modules[second] = nn.Identity()
                fused += 1
    return model, fused


def prepare_for_inference(
    model: nn.Module, channels_last: bool = False, fold_bn: bool = True, fuse_relu: bool | None = None
) -> nn.Module:
    """Eval mode, frozen parameters, optional BN folding, conv + ReLU fusion (default: with ``fold_bn``)
    and channels_last memory format. Returns a copy when anything is folded or fused."""
    if fold_bn:
        model, _ = fold_batch_norm(model)
    if fold_bn if fuse_relu is None else fuse_relu:
        if not fold_bn:
            model = copy.deepcopy(model)
        model, _ = fuse_conv_relu(model.eval())
    model = model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
