"""Networks: one contract test class run over every registered network, then per-network checks."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from lesionseg.errors import LesionsegError
from lesionseg.nets import NETWORKS, PixelNet, create_network, network_config
from lesionseg.nets._common import ResidualUnit
from lesionseg.nets.pixelnet import TORCHVISION_VGG16_CONV_INDICES
from lesionseg.nets.tscnn import TSCNN

# Small widths so the whole file runs in seconds on 2 CPU cores.
SMALL = {
    "unet": {"width": 4},
    "resunet": {"width": 4},
    "tscnn": {"width": 4},
    "pixelnet": {"width": 4, "fc_width": 16, "mlp_width": 16},
}
SIZES = [(33, 47), (32, 32), (17, 70)]


def make(name: str, seed: int = 0, **overrides: object) -> nn.Module:
    torch.manual_seed(seed)
    return create_network(name, **{**SMALL[name], **overrides})


def inputs(net: nn.Module, *size: int, batch: int = 2) -> torch.Tensor:
    """Random input of the right channel count for net's config."""
    return torch.randn(batch, net.config.context_slices * net.config.in_channels, *size)


def test_every_registered_network_has_a_small_test_config() -> None:
    assert set(SMALL) == set(NETWORKS)


@pytest.mark.parametrize("name", sorted(NETWORKS))
class TestNetworkContract:
    @pytest.mark.parametrize("context", [1, 3])
    @pytest.mark.parametrize("size", SIZES)
    @pytest.mark.parametrize("num_classes", [1, 3])
    def test_output_shape_any_size(self, name: str, context: int, size: tuple[int, int], num_classes: int):
        net = make(name, in_channels=2, context_slices=context, num_classes=num_classes).eval()
        x = torch.randn(2, 2 * context, *size)
        with torch.no_grad():
            y = net(x)
        assert y.shape == (2, num_classes, *size)
        assert torch.isfinite(y).all()

    @pytest.mark.parametrize("context", [1, 3])
    def test_backward_gives_finite_gradients(self, name: str, context: int) -> None:
        net = make(name, context_slices=context).train()
        x = torch.randn(2, context, 33, 47, requires_grad=True)
        net(x).square().mean().backward()
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None for g in grads)
        assert all(torch.isfinite(g).all() for g in grads)
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

    def test_state_dict_round_trip_gives_identical_outputs(self, name: str) -> None:
        a = make(name, seed=0)
        a.train()(inputs(a, 32, 32))  # move batch-norm running statistics away from their init
        a.eval()
        b = make(name, seed=1).eval()
        x = inputs(a, 33, 47)
        assert not torch.equal(a(x), b(x))
        b.load_state_dict(a.state_dict())
        with torch.no_grad():
            assert torch.equal(a(x), b(x))
        rebuilt = create_network(name, **network_config(a))
        rebuilt.load_state_dict(a.state_dict())
        with torch.no_grad():
            assert torch.equal(rebuilt.eval()(x), a(x))

    def test_eval_mode_is_deterministic(self, name: str) -> None:
        net = make(name).eval()
        x = inputs(net, 33, 47)
        with torch.no_grad():
            assert torch.equal(net(x), net(x))

    def test_channels_last_equals_nchw(self, name: str) -> None:
        net = make(name, context_slices=3).eval()
        x = torch.randn(2, 3, 33, 47)
        with torch.no_grad():
            expected = net(x)
            net = net.to(memory_format=torch.channels_last)
            got = net(x.to(memory_format=torch.channels_last))
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)

    def test_bf16_autocast_runs(self, name: str) -> None:
        net = make(name).eval()
        x = inputs(net, 33, 47)
        with torch.no_grad():
            expected = net(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got = net(x)
        assert got.shape == expected.shape and torch.isfinite(got).all()
        assert (got.float() - expected).abs().max() < 0.1 * expected.abs().max() + 0.05

    def test_wrong_input_channels_raise(self, name: str) -> None:
        net = make(name, in_channels=2, context_slices=3)
        with pytest.raises(ValueError, match="context_slices"):
            net(torch.randn(1, 2, 32, 32))

    def test_unknown_option_raises_and_lists_options(self, name: str) -> None:
        with pytest.raises(ValueError, match="width"):
            create_network(name, not_an_option=1)

    def test_bad_shared_option_raises(self, name: str) -> None:
        with pytest.raises(ValueError, match="num_classes"):
            create_network(name, num_classes=0)


def test_unknown_network_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="pixelnet, resunet, tscnn, unet"):
        create_network("vnet")


def count(net: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in net.modules())


# --- U-Net (WMH thesis section 2.4) ---
def test_unet_has_19_conv_layers_and_li_widths() -> None:
    net = create_network("unet", in_channels=2)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19
    assert [c.out_channels for c in convs[:10:2]] == [64, 96, 128, 256, 512]
    assert convs[-1].kernel_size == (1, 1) and convs[-1].in_channels == 64
    assert count(net, nn.MaxPool2d) == 1 and count(net, nn.BatchNorm2d) == 0


def test_unet_config_from_json_lists() -> None:
    net = create_network("unet", width=4, channel_multipliers=[1, 2, 4])
    assert net.config.channel_multipliers == (1.0, 2.0, 4.0)
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 4 * 3 - 1
    assert net(torch.randn(1, 1, 9, 9)).shape == (1, 1, 9, 9)


def test_unet_batch_norm_option_and_first_kernel() -> None:
    net = create_network("unet", width=4, batch_norm=True, first_level_kernel=5)
    assert count(net, nn.BatchNorm2d) == 18
    assert net.down[0][0].kernel_size == (5, 5)
    assert net(torch.randn(1, 1, 21, 19)).shape == (1, 1, 21, 19)


# --- Residual U-Net (Zhang et al. 2018) ---
def test_resunet_downsamples_three_times_by_strided_convolution() -> None:
    net = make("resunet")
    strided = [m for m in net.encoder.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 3  # 3 units' body convs; each shortcut subsamples by 2 before its 1x1 conv
    units = [m for m in net.encoder.modules() if isinstance(m, ResidualUnit)]
    assert [u.stride for u in units] == [2, 2, 2]
    assert count(net, nn.MaxPool2d) == 0
    features = net.encoder(torch.randn(1, 1, 32, 48))
    assert [tuple(f.shape[1:]) for f in features] == [(4, 32, 48), (8, 16, 24), (16, 8, 12), (32, 4, 6)]


# --- TS-CNN (section 2.1, Fig. 1) ---
def test_tscnn_encoder_is_shared_and_temporal_concat_folds_time_into_channels() -> None:
    net: TSCNN = make("tscnn", in_channels=2).eval()  # type: ignore[assignment]
    one_prong = make("tscnn", in_channels=2, context_slices=1)
    assert sum(p.numel() for p in net.encoder.parameters()) == sum(
        p.numel() for p in one_prong.encoder.parameters()
    )
    x = torch.randn(2, 6, 16, 24)  # (B, [t-1 | t | t+1] x 2 channels, H, W)
    with torch.no_grad():
        separate = [net.encoder(x[:, 2 * t : 2 * t + 2]) for t in range(3)]
        joint = net.encoder(x.reshape(6, 2, 16, 24))
        for scale, concat in enumerate(net.temporal_concat):
            fused = concat(joint[scale])
            expected = torch.cat([separate[t][scale] for t in range(3)], dim=1)
            torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
    assert count(net, nn.ConvTranspose2d) == 3


def test_tscnn_paper_widths_and_reduce_option() -> None:
    assert create_network("tscnn").encoder.channels == (32, 64, 128, 256)
    assert create_network("tscnn", width=64).encoder.channels == (64, 128, 256, 512)
    net = make("tscnn", reduce_temporal=True)
    assert [t.out_channels for t in net.temporal_concat] == [4, 8, 16, 32]
    assert net(torch.randn(1, 3, 19, 23)).shape == (1, 1, 19, 23)


# --- PixelNet (Islam and Ren 2018, section 2) ---
def pixel_coords(b: int, h: int, w: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    rows = torch.randint(0, h, (b, n), generator=g)
    cols = torch.randint(0, w, (b, n), generator=g)
    coords = torch.stack([rows, cols], dim=-1)
    corners = torch.tensor([[0, 0], [0, w - 1], [h - 1, 0], [h - 1, w - 1]])
    coords[:, :4] = corners  # border pixels, where interpolation clamps
    return coords


@pytest.mark.parametrize("size", [(33, 47), (64, 64), (70, 37)])
def test_pixelnet_forward_pixels_equals_dense_forward(size: tuple[int, int]) -> None:
    net: PixelNet = make("pixelnet", num_classes=3, in_channels=2).eval()  # type: ignore[assignment]
    x = torch.randn(2, 2, *size)
    coords = pixel_coords(2, *size, n=200)
    with torch.no_grad():
        dense = net(x)
        sparse = net.forward_pixels(x, coords)
    assert sparse.shape == (2, 200, 3)
    at_coords = dense.permute(0, 2, 3, 1)[torch.arange(2)[:, None], coords[..., 0], coords[..., 1]]
    torch.testing.assert_close(sparse, at_coords, atol=1e-4, rtol=1e-4)


def test_pixelnet_structure_vgg16_and_hypercolumn() -> None:
    net: PixelNet = make("pixelnet")  # type: ignore[assignment]
    convs = [m for b in net.blocks for m in b if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13
    assert net.hypercolumn_channels == (4, 8, 16, 32, 32, 16)
    assert net.mlp[0].in_features == 108 and len(net.mlp) == 3
    h = net.hypercolumns(torch.randn(1, 1, 40, 40), pixel_coords(1, 40, 40, 10))
    assert h.shape == (1, 10, 108)


def test_pixelnet_rejects_bad_coords() -> None:
    net = make("pixelnet")
    x = torch.randn(1, 1, 20, 30)
    with pytest.raises(ValueError, match="out of bounds"):
        net.forward_pixels(x, torch.tensor([[[20, 0]]]))
    with pytest.raises(ValueError, match="int64"):
        net.forward_pixels(x, torch.tensor([[[1, 0]]], dtype=torch.int32))


def fake_vgg16_state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    state: dict[str, torch.Tensor] = {}
    in_ch = 3
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    for index, out_ch in zip(TORCHVISION_VGG16_CONV_INDICES, widths, strict=True):
        state[f"features.{index}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=g)
        state[f"features.{index}.bias"] = torch.randn(out_ch, generator=g)
        in_ch = out_ch
    return state


def test_pixelnet_loads_torchvision_vgg16_names(tmp_path) -> None:
    state = fake_vgg16_state()
    path = tmp_path / "vgg16.pt"
    torch.save(state, path)
    net = create_network("pixelnet", in_channels=3, fc_width=8, mlp_width=8, pretrained_path=str(path))
    convs = [m for b in net.blocks for m in b if isinstance(m, nn.Conv2d)]
    for index, conv in zip(TORCHVISION_VGG16_CONV_INDICES, convs, strict=True):
        assert torch.equal(conv.weight, state[f"features.{index}.weight"])
        assert torch.equal(conv.bias, state[f"features.{index}.bias"])
    # one input channel: the mean RGB filter, scaled by 3
    net1 = create_network("pixelnet", in_channels=1, fc_width=8, mlp_width=8, pretrained_path=str(path))
    expected = state["features.0.weight"].mean(dim=1, keepdim=True) * 3.0
    torch.testing.assert_close(net1.blocks[0][0].weight, expected)


def test_pixelnet_bad_weights_file_is_a_user_error(tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(LesionsegError, match="bad.pt"):
        create_network("pixelnet", width=64, pretrained_path=str(bad))
    partial = tmp_path / "partial.pt"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, partial)
    with pytest.raises(LesionsegError, match="features.0"):
        create_network("pixelnet", width=64, fc_width=8, mlp_width=8, pretrained_path=str(partial))
    good = tmp_path / "vgg16.pt"
    torch.save(fake_vgg16_state(), good)
    with pytest.raises(LesionsegError, match="width=64"):
        create_network("pixelnet", width=8, pretrained_path=str(good))


def test_the_strided_shortcut_is_the_strided_1x1_convolution() -> None:
    """The residual unit's stride-2 shortcut subsamples, then convolves: the same product as a stride-2 1x1
    convolution with the same weights (so checkpoints keep their meaning and keys)."""
    torch.manual_seed(0)
    unit = ResidualUnit(8, 16, stride=2).eval()
    x = torch.randn(2, 8, 33, 20)
    conv, bn = unit.shortcut
    expected = bn(torch.nn.functional.conv2d(x, conv.weight, stride=2))
    got = unit.shortcut(x[..., ::2, ::2])
    torch.testing.assert_close(got, expected)
    assert unit(x).shape == (2, 16, 17, 10)
    assert set(unit.state_dict()) >= {"shortcut.0.weight", "shortcut.1.running_mean"}


@pytest.mark.parametrize("network", ["resunet", "tscnn"])
def test_width_8_trains_in_channels_last_without_crashing(network: str) -> None:
    """torch 2.13's CPU backward of a channels-last stride-2 1x1 convolution with 8 input channels corrupts
    the heap; the residual units must not reach it (a crash kills the process, so it runs in its own)."""
    code = (
        "import torch\n"
        "from lesionseg.nets import create_network\n"
        "kw = dict(in_channels=2, num_classes=1, width=8)\n"
        f"if {network!r} == 'tscnn': kw['context_slices'] = 3\n"
        f"net = create_network({network!r}, **kw).to(memory_format=torch.channels_last)\n"
        "x = torch.randn(4, 6 if 'context_slices' in kw else 2, 64, 64)\n"
        "x = x.contiguous(memory_format=torch.channels_last)\n"
        "for _ in range(3):\n"
        "    net(x).mean().backward()\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-500:]
