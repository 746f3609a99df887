"""PixelNet's masked dense inference: the MLP only at brain pixels gives the full dense path's labels there
and background elsewhere, directly and through slice-wise inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lesionseg.infer.slicewise import predict_volume, to_label
from lesionseg.nets.pixelnet import BACKGROUND_LOGIT, PixelNet, PixelNetConfig


def small_pixelnet(num_classes: int, in_channels: int = 2, context_slices: int = 1) -> PixelNet:
    torch.manual_seed(3)
    config = PixelNetConfig(
        in_channels=in_channels,
        num_classes=num_classes,
        width=4,
        context_slices=context_slices,
        fc_width=16,
        mlp_width=24,
    )
    net = PixelNet(config).eval()
    with torch.no_grad():  # no MLP biases, so that the labels follow the features and vary over the image
        for layer in net.mlp:
            layer.bias.zero_()
    return net


def brain_masks(batch: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Ellipses of different sizes (the last image has no brain) plus a few isolated pixels."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:h, :w]
    masks = np.zeros((batch, h, w), dtype=bool)
    for i in range(batch - 1):
        a, b = rng.uniform(0.2, 0.45) * h, rng.uniform(0.2, 0.45) * w
        masks[i] = ((rows - h / 2) / a) ** 2 + ((cols - w / 2) / b) ** 2 <= 1.0
        masks[i, rng.integers(h, size=3), rng.integers(w, size=3)] = True
    return torch.from_numpy(masks)


class DenseOnly(nn.Module):
    """The same network seen without `accepts_brain_mask`: slice-wise inference runs the full dense path."""

    def __init__(self, net: PixelNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.mark.parametrize(("num_classes", "h", "w"), [(4, 45, 70), (1, 64, 33), (3, 96, 96)])
def test_masked_logits_and_labels_equal_dense_on_brain(num_classes: int, h: int, w: int) -> None:
    net = small_pixelnet(num_classes)
    x = torch.randn(3, 2, h, w)
    mask = brain_masks(3, h, w, seed=num_classes)
    with torch.no_grad():
        dense = net(x)
        masked = net(x, brain_mask=mask)
    assert masked.shape == dense.shape
    brain = mask[:, None].expand_as(dense)
    assert torch.allclose(masked[brain], dense[brain], atol=1e-5, rtol=1e-5)
    if num_classes == 1:
        cut = dense[:, 0][mask].median()  # a threshold that splits the brain pixels of this random net
        labels_dense, labels_masked = dense[:, 0] >= cut, masked[:, 0] >= cut
        assert torch.all(torch.sigmoid(masked[~brain]) == 0.0)
    else:
        labels_dense, labels_masked = dense.argmax(1), masked.argmax(1)
        probabilities = torch.softmax(masked, dim=1)
        assert torch.all(probabilities[:, 0][~mask] == 1.0)
        assert torch.all(probabilities[:, 1:][~mask[:, None].expand_as(probabilities[:, 1:])] == 0.0)
    assert torch.equal(labels_masked[mask], labels_dense[mask])
    assert len(torch.unique(labels_dense[mask])) > 1  # the comparison is not between two constant maps
    # the image without brain is all background
    if num_classes > 1:
        assert torch.all(masked[2, 0] == 0.0) and torch.all(masked[2, 1:] == BACKGROUND_LOGIT)
    else:
        assert torch.all(masked[2] == BACKGROUND_LOGIT)


def test_slices_without_brain_skip_the_convolutions(monkeypatch: pytest.MonkeyPatch) -> None:
    net = small_pixelnet(3)
    x = torch.randn(4, 2, 40, 36)
    mask = brain_masks(3, 40, 36, seed=5)[[2, 0, 2, 1]]  # brainless slices first and third
    seen: list[int] = []
    original = PixelNet.features

    def spy(self: PixelNet, padded: torch.Tensor) -> list[torch.Tensor]:
        seen.append(padded.shape[0])
        return original(self, padded)

    monkeypatch.setattr(PixelNet, "features", spy)
    with torch.no_grad():
        masked = net(x, brain_mask=mask)
        seen.clear()
        dense = net(x)
    brain = mask[:, None].expand_as(dense)
    assert seen == [4]  # the dense path convolves every slice; the masked one only the two with brain
    assert torch.allclose(masked[brain], dense[brain], atol=1e-5, rtol=1e-5)
    assert torch.all(masked[[0, 2], 0] == 0.0) and torch.all(masked[[0, 2], 1:] == BACKGROUND_LOGIT)
    with torch.no_grad():
        seen.clear()
        net(x, brain_mask=mask)
        assert seen == [2]
        seen.clear()
        net(x, brain_mask=torch.zeros_like(mask))
        assert seen == []


def test_masked_equals_sparse_path_and_checks_shape() -> None:
    net = small_pixelnet(3, context_slices=3, in_channels=1)
    x = torch.randn(2, 3, 50, 40)
    mask = brain_masks(2, 50, 40, seed=9)
    with torch.no_grad():
        masked = net(x, brain_mask=mask)
        where = mask.nonzero()
        first = where[where[:, 0] == 0][:, 1:][None]
        sparse = net.forward_pixels(x[:1], first)[0]  # (N, K)
    assert torch.allclose(masked[0][:, first[0, :, 0], first[0, :, 1]].T, sparse, atol=1e-5)
    with pytest.raises(ValueError, match="brain_mask must be"):
        net(x, brain_mask=mask[:, :-1])


@pytest.mark.parametrize(("flip_tta", "crop_multiple"), [(False, 0), (True, 16)])
def test_predict_volume_uses_masked_path_with_identical_masks(
    flip_tta: bool, crop_multiple: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = small_pixelnet(4)
    rng = np.random.default_rng(0)
    mask = np.zeros((60, 52, 7), dtype=np.uint8)
    mask[10:50, 8:40, 1:6] = 1
    mask[30:, 30:, 3] = 0
    image = (rng.normal(size=(2, 60, 52, 7)) * mask).astype(np.float32)
    calls: list[int] = []
    original = PixelNet.forward_masked

    def spy(self: PixelNet, x: torch.Tensor, brain_mask: torch.Tensor) -> torch.Tensor:
        calls.append(int(brain_mask.sum()))
        return original(self, x, brain_mask)

    monkeypatch.setattr(PixelNet, "forward_masked", spy)
    kwargs = dict(batch_size=3, flip_tta=flip_tta, crop_multiple=crop_multiple)
    masked = predict_volume(net, image, mask, 1, **kwargs)
    assert calls and sum(calls) == int(mask.sum()) * (2 if flip_tta else 1)
    dense = predict_volume(DenseOnly(net), image, mask, 1, **kwargs)
    assert len(calls) == (4 if flip_tta else 2)  # the dense run did not go through the masked path
    assert np.allclose(masked, dense, atol=1e-5)
    assert np.array_equal(to_label(masked), to_label(dense))
    assert len(np.unique(to_label(dense)[mask > 0])) > 1
