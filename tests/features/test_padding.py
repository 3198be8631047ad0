"""Reflect/replicate padding of a frozen encoder: the memory-saving padded convolution gives
exactly what PyTorch's padded Conv2d gives, forward and backward, in fp32 and under bf16."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from impasto.features.padding import current_padding, padding_mode, set_padding


def _pair(mode: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    ours = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1, stride=2))
    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode=mode), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1, stride=2, padding_mode=mode))
    plain.load_state_dict(ours.state_dict())
    set_padding(ours, "reflect")
    return ours, plain


@pytest.mark.parametrize("side", [16, 1])  # 1 px: too small to reflect, so both replicate
def test_padded_convolution_matches_pytorch(side: int) -> None:
    ours, plain = _pair("reflect" if side > 1 else "replicate")
    x = torch.rand(2, 3, side, side + 5)
    grads = []
    for net in (ours, plain):
        xi = x.clone().requires_grad_(True)
        y = net(xi)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        grads.append((y.detach(), xi.grad, net[0].weight.grad, net[2].bias.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("kernel", [3, 5])
def test_frozen_padded_convolution_input_gradient_is_exact(layout, kernel: int) -> None:
    """A frozen encoder's backward skips the padded copy and folds the reflected rows and columns
    itself: float64, both layouts, padding 1 and 2, stride 1 and 2, equal to PyTorch's."""
    torch.manual_seed(0)
    p = kernel // 2
    ours = nn.Sequential(nn.Conv2d(3, 6, kernel, padding=p), nn.ReLU(), nn.Conv2d(6, 4, kernel, padding=p, stride=2)).double()
    plain = nn.Sequential(nn.Conv2d(3, 6, kernel, padding=p, padding_mode="reflect"), nn.ReLU(), nn.Conv2d(6, 4, kernel, padding=p, stride=2, padding_mode="reflect")).double()
    plain.load_state_dict(ours.state_dict())
    set_padding(ours, "reflect")
    grads = []
    for net in (ours.requires_grad_(False), plain.requires_grad_(False)):
        xi = torch.rand(2, 3, 11, 13, dtype=torch.float64).contiguous(memory_format=layout) if not grads else x0.clone()
        x0 = xi.detach().clone() if not grads else x0
        xi.requires_grad_(True)
        y = net(xi)
        (y * torch.linspace(-1, 1, y.numel(), dtype=torch.float64).view_as(y)).sum().backward()
        grads.append((y.detach(), xi.grad))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def test_padded_convolution_under_bf16_autocast() -> None:
    ours, plain = _pair("reflect")
    for net in (ours, plain):
        net.requires_grad_(False)
    x = torch.rand(1, 3, 16, 16)
    out = []
    for net in (ours, plain):
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(xi)
        y.float().sum().backward()
        out.append((y, xi.grad))
    assert out[0][0].dtype == torch.bfloat16 and out[0][1].dtype == torch.float32
    torch.testing.assert_close(out[0][0].float(), out[1][0].float(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=5e-2, atol=5e-2)


def test_padding_mode_is_restored() -> None:
    ours, _ = _pair("reflect")
    with padding_mode(ours, "zeros"):
        assert current_padding(ours) == "zeros"
    assert current_padding(ours) == "reflect"
