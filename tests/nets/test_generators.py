"""Generator architectures: shapes at any size, exact fast paths, noise behaviour, frozen statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from impasto.nets import ARCHS, JOHNSON_PRESETS, TransformerNet, build_net, frozen_statistics, net_from_config
from impasto.nets.johnson import OutputConv, subpixel_upconv
from impasto.nets.norm import InstanceNorm, instance_norm
from impasto.nets.texture import positional_noise
from impasto.errors import ConfigError, ModelFileError


def _perturbed(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random affine norm parameters too (defaults are 1/0), so the tests see every term."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return net


@pytest.mark.parametrize("arch", ["johnson", "johnson-small"])
@pytest.mark.parametrize("size", [(16, 16), (37, 53), (64, 48), (5, 9)])
def test_johnson_any_size_in_unit_range(arch, size):
    torch.manual_seed(0)
    net, _ = build_net(arch)
    with torch.no_grad():
        y = net(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, *size)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


@pytest.mark.parametrize("arch", ["johnson", "johnson-small"])
def test_fast_path_equals_textbook_network(arch):
    """Sub-pixel upsampling convs and the space-to-depth output conv compute the same function."""
    torch.manual_seed(1)
    net = _perturbed(TransformerNet(**JOHNSON_PRESETS[arch]))
    x = torch.rand(2, 3, 44, 60, requires_grad=True)
    fast, ref = net(x), net.reference(x)
    torch.testing.assert_close(fast, ref, atol=2e-5, rtol=0)
    g_fast = torch.autograd.grad(fast.square().sum(), x)[0]
    g_ref = torch.autograd.grad(ref.square().sum(), x)[0]
    torch.testing.assert_close(g_fast, g_ref, atol=1e-4, rtol=1e-3)


def test_subpixel_upconv_matches_upsample_then_conv():
    torch.manual_seed(2)
    x = torch.randn(1, 5, 7, 9)
    conv = nn.Conv2d(5, 4, 3)
    ref = conv(nn.functional.pad(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"), (1, 1, 1, 1), mode="reflect"))
    torch.testing.assert_close(subpixel_upconv(x, conv.weight, conv.bias), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kernel", [9, 5, 3])
def test_space_to_depth_output_conv_matches_plain_conv(kernel):
    torch.manual_seed(3)
    layer = OutputConv(6, kernel)
    x = torch.randn(1, 6, 20, 28)
    torch.testing.assert_close(layer(x), layer.reference(x), atol=1e-5, rtol=0)


def test_instance_norm_matches_torch():
    torch.manual_seed(4)
    ours = InstanceNorm(6, relu=True)
    ref = nn.InstanceNorm2d(6, affine=True)
    with torch.no_grad():
        for p in (ours.weight, ours.bias):
            p.normal_()
        ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 6, 11, 13)
    torch.testing.assert_close(ours(x), torch.relu(ref(x)), atol=1e-5, rtol=0)


def test_frozen_statistics_on_the_same_image_change_nothing():
    torch.manual_seed(5)
    net = _perturbed(TransformerNet(**JOHNSON_PRESETS["johnson-small"])).eval()
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        whole = net(x)
        with frozen_statistics(net, lambda: net(x)):
            frozen = net(x)
            # a crop now sees the whole image's statistics, not its own
            assert all(m.mode == "frozen" for m in net.modules() if isinstance(m, InstanceNorm))
    torch.testing.assert_close(frozen, whole, atol=1e-6, rtol=0)
    assert all(m.mode == "dynamic" and m.stats is None for m in net.modules() if isinstance(m, InstanceNorm))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_channels_last_inference_norm_matches_the_planar_one(dtype):
    """Channels-last inference on a CPU takes ATen's batch norm one sample at a time: the same
    output and statistics (per-sample scale and shift of conditional norms included), and the
    input's dtype and layout are kept. bf16 is compared with the norm of the quantised input."""
    torch.manual_seed(6)
    x = (torch.randn(2, 6, 11, 13) * 3 + 2).to(dtype)
    w, b = torch.rand(2, 6) + 0.5, torch.randn(2, 6)
    ref, (mean, var) = instance_norm(x.float(), w, b, 1e-5, relu=True)
    with torch.no_grad():
        y, (mean_cl, var_cl) = instance_norm(x.contiguous(memory_format=torch.channels_last), w, b, 1e-5, relu=True)
    assert y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    tol = 1e-5 if dtype == torch.float32 else 2e-2  # bf16: the output is rounded to 8 bits of mantissa
    torch.testing.assert_close(y.float(), ref, atol=tol, rtol=tol)
    assert bool((y >= 0).all())
    torch.testing.assert_close(mean_cl, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(var_cl, var, atol=1e-5, rtol=1e-5)
    # frozen statistics on a bf16 tensor: a same-dtype multiply-add, the same numbers as float32
    frozen, _ = instance_norm(x.clone(), w, b, 1e-5, stats=(mean, var), inplace=True)
    assert frozen.dtype == dtype
    torch.testing.assert_close(frozen.float(), instance_norm(x.float(), w, b, 1e-5, stats=(mean, var))[0], atol=tol, rtol=tol)


def test_channels_last_network_equals_the_planar_one_and_keeps_its_layout():
    """A Johnson network run channels-last (what inference on a CPU does by default) computes the
    same image, with dynamic and with frozen statistics, and its layers keep the layout (one that
    falls back to planar costs a copy at every layer after it). Under bf16 autocast it stays
    close (the quality of bf16 itself is benchmarks/bench_perf.py's business)."""
    torch.manual_seed(7)
    net = _perturbed(TransformerNet(**JOHNSON_PRESETS["johnson"])).eval()
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        planar = net(x)
        with frozen_statistics(net, lambda: net(x[..., :32, :32])):
            planar_frozen = net(x)
        net.to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        layouts = []
        hooks = [m.register_forward_hook(lambda m, i, o: layouts.append((type(m).__name__, o.is_contiguous(memory_format=torch.channels_last)))) for m in (*net.down, *net.res, *net.up)]
        cl = net(xc)
        for h in hooks:
            h.remove()
        with frozen_statistics(net, lambda: net(xc[..., :32, :32])):
            cl_frozen = net(xc)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = net(xc)
    assert all(ok for _, ok in layouts), layouts
    torch.testing.assert_close(cl, planar, atol=5e-5, rtol=0)  # float32 rounding in another order
    torch.testing.assert_close(cl_frozen, planar_frozen, atol=5e-5, rtol=0)
    assert half.shape == planar.shape and float((half.float() - planar).abs().max()) < 0.1


@torch.no_grad()
def test_texture_synthesis_noise_and_size():
    torch.manual_seed(6)
    net, config = build_net("texture", texture=True)
    assert config["content"] is False
    a = net(None, (40, 72), seed=1)
    b = net(None, (40, 72), seed=2)
    again = net(None, (40, 72), seed=1)
    assert a.shape == (1, 3, 40, 72)
    assert torch.equal(a, again), "same seed, same texture"
    assert float((a - b).abs().mean()) > 1e-3, "different noise, different texture"
    big = net(None, (97, 33), seed=1, batch=2)
    assert big.shape == (2, 3, 97, 33)
    assert float((big[0] - big[1]).abs().mean()) > 1e-3, "each sample of a batch gets its own noise"


@torch.no_grad()
def test_texture_stylisation_keeps_content_size():
    torch.manual_seed(7)
    net, _ = build_net("texture")
    y = net(torch.rand(2, 3, 37, 45), seed=0)
    assert y.shape == (2, 3, 37, 45)
    with pytest.raises(ValueError, match="content"):
        net(None, (32, 32))


def test_positional_noise_is_standard_normal_and_crop_consistent():
    z = positional_noise([0, 1], 3, (128, 128))
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1.0) < 0.02
    assert float((z[0] - z[1]).abs().mean()) > 0.5
    crop = positional_noise([0], 3, (20, 30), origin=(100, 50))
    assert torch.equal(crop, z[:1, :, 100:120, 50:80])
    pair = torch.stack([z[0, 0, :, :-1].flatten(), z[0, 0, :, 1:].flatten()])
    assert abs(float(torch.corrcoef(pair)[0, 1])) < 0.02


def test_registry_round_trip_and_errors():
    assert set(ARCHS) == {"johnson", "johnson-small", "texture", "multistyle", "multistyle-small", "adain", "stylepredict", "swap-inverse", "superres"}
    for arch in ARCHS:
        net, config = build_net(arch)
        clone = net_from_config(arch, config)
        clone.load_state_dict(net.state_dict())
    with pytest.raises(ConfigError, match="did you mean 'johnson'"):
        build_net("jonson")
    with pytest.raises(ConfigError, match="needs arch texture"):
        build_net("johnson", texture=True)
    with pytest.raises(ModelFileError):
        net_from_config("johnson", {"channels": [1, 2], "bogus": 3})


def test_small_network_is_much_smaller():
    big = sum(p.numel() for p in build_net("johnson")[0].parameters())
    small = sum(p.numel() for p in build_net("johnson-small")[0].parameters())
    assert small * 10 < big
