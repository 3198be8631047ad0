"""fit_edge / resize / resize_to_edge / resize_mask."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from impasto.errors import UsageError
from impasto.image.resize import fit_edge, resize, resize_mask, resize_to_edge


@pytest.mark.parametrize(
    "size,edge,expected",
    [
        ((480, 640), 512, (384, 512)),
        ((640, 480), 512, (512, 384)),
        ((300, 300), 64, (64, 64)),
        ((6, 4000), 512, (1, 512)),  # a sliver keeps at least one pixel
        ((3, 1000), 100, (1, 100)),
        ((10, 20), 40, (20, 40)),  # enlarging
        ((10, 20), 5, (3, 5)),  # 2.5 rounds half up
        ((1, 1), 7, (7, 7)),
    ],
)
def test_fit_edge_examples(size, edge, expected):
    assert fit_edge(size, edge) == expected


def test_fit_edge_properties():
    for h, w, edge in itertools.product([1, 2, 7, 33, 480, 1001], [1, 3, 64, 639, 4000], [1, 5, 64, 513]):
        nh, nw = fit_edge((h, w), edge)
        assert max(nh, nw) == edge and min(nh, nw) >= 1
        if h >= w:
            assert abs(nw - w * edge / h) <= 0.5 or nw == 1
        else:
            assert abs(nh - h * edge / w) <= 0.5 or nh == 1


@pytest.mark.parametrize("args", [((10, 10), 0), ((10, 10), 2.5), ((0, 10), 5), ((10,), 5), ((10, -3), 5), ((10, 10), True)])
def test_fit_edge_rejects_bad_arguments(args):
    with pytest.raises(UsageError):
        fit_edge(*args)


def test_resize_shapes_and_identity():
    img = torch.rand(2, 3, 20, 30)
    assert resize(img, (10, 15)).shape == (2, 3, 10, 15)
    assert resize(img, (40, 7)).shape == (2, 3, 40, 7)  # one side up, one down
    assert resize(img, (20, 30)) is img
    assert resize(torch.rand(1, 5, 8, 8), (4, 4)).shape == (1, 5, 4, 4)  # any channel count


def test_downscaling_is_antialiased():
    checker = (torch.arange(63).view(-1, 1) + torch.arange(63).view(1, -1)) % 2
    img = checker.float().expand(1, 3, 63, 63)
    small = resize(img, (21, 21))  # by 3: plain sampling would land on whole pixels
    aliased = F.interpolate(img, size=(21, 21), mode="bicubic", align_corners=False, antialias=False).clamp(0, 1)
    assert float((small - 0.5).abs().max()) < 0.02  # fine detail averages to grey
    assert float((aliased - 0.5).abs().max()) > 0.4  # what it would look like without antialiasing


def test_upscaling_is_plain_bicubic_clamped():
    img = torch.rand(1, 3, 8, 8)
    big = resize(img, (24, 20))
    ref = F.interpolate(img, size=(24, 20), mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.equal(big, ref)


def test_resize_stays_in_range_and_keeps_constants():
    step = torch.zeros(1, 3, 8, 8)
    step[..., 4:] = 1
    for size in [(32, 32), (3, 3), (8, 30)]:
        out = resize(step, size)
        assert float(out.min()) >= 0 and float(out.max()) <= 1  # bicubic overshoot is clamped
    flat = torch.full((1, 3, 9, 13), 0.3)
    for size in [(4, 5), (30, 40)]:
        assert torch.allclose(resize(flat, size), torch.tensor(0.3), atol=1e-6)


def test_resize_keeps_dtype_and_gradients():
    img = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    out = resize(img, (4, 4))
    assert out.dtype == torch.float64
    out.sum().backward()
    assert img.grad is not None and float(img.grad.abs().sum()) > 0


def test_resize_to_edge():
    assert resize_to_edge(torch.rand(1, 3, 48, 64), 32).shape == (1, 3, 24, 32)
    assert resize_to_edge(torch.rand(1, 3, 6, 4000), 512).shape == (1, 3, 1, 512)


def test_resize_errors():
    with pytest.raises(UsageError):
        resize(torch.rand(3, 8, 8), (4, 4))
    with pytest.raises(UsageError):
        resize(torch.rand(1, 3, 8, 8), (0, 4))
    with pytest.raises(UsageError, match="floating-point"):
        resize(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), (4, 4))


def test_resize_mask_keeps_a_partition_of_unity():
    labels = torch.randint(0, 3, (1, 1, 37, 41), generator=torch.Generator().manual_seed(0))
    masks = torch.cat([(labels == k).float() for k in range(3)], dim=0)  # 3x1xHxW one-hot
    for size in [(9, 10), (37, 41), (80, 90)]:
        out = resize_mask(masks, size)
        assert out.shape == (3, 1, *size)
        assert torch.allclose(out.sum(dim=0), torch.ones(1, *size), atol=1e-5)
        assert float(out.min()) >= 0 and float(out.max()) <= 1
    # bilinear (antialiased when shrinking): soft values appear at the region borders
    small = resize_mask(masks, (9, 10))
    assert bool(((small > 0.05) & (small < 0.95)).any())
