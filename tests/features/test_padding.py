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
