"""A short seeded CPU training of the super-resolution network beats bicubic on held-out crops,
at x2 and at x4 (the x4 one needs the linear, 1/sqrt(fan-in)-scaled output end; see
:mod:`impasto.nets.superres`)."""

from __future__ import annotations

import torch

from impasto.image.save import save_image
from impasto.methods.ff_model import load_model
from impasto.methods.superres_train import degrade, psnr, train_superres
from impasto.nets.superres import bicubic_upscale


def _rectangles(g: torch.Generator, n: int, size: int) -> torch.Tensor:
    """Flat-coloured overlapping rectangles: sharp edges that bicubic interpolation blurs."""
    out = torch.empty(n, 3, size, size)
    for k in range(n):
        img = torch.rand(3, 1, 1, generator=g).expand(3, size, size).clone()
        for _ in range(4):
            y0, x0 = torch.randint(0, size - 4, (2,), generator=g).tolist()
            hh, ww = torch.randint(4, size // 2, (2,), generator=g).tolist()
            img[:, y0 : y0 + hh, x0 : x0 + ww] = torch.rand(3, 1, 1, generator=g)
        out[k] = img
    return out


def _gain_over_bicubic(tmp_path, scale: int) -> float:
    """Train x``scale`` for 200 seeded steps on 48 synthetic photos (32 px, width 16, one residual
    block, pixel loss); the held-out PSNR gain over bicubic in dB."""
    g = torch.Generator().manual_seed(0)
    data = tmp_path / "photos"
    data.mkdir()
    for i, im in enumerate(_rectangles(g, 48, 32)):
        save_image(data / f"{i:02d}.png", im[None])
    held_out = _rectangles(g, 32, 32)  # never seen in training
    model = train_superres(
        None, data, out_dir=tmp_path / "run", scale=scale, encoder="tiny_vgg", weights="random", content_weight=0.0, pixel_weight=1.0,
        train_size=32, batch_size=4, steps=200, sr_channels=16, sr_blocks=1, workers=0, preview_every=0, checkpoint_every=0, seed=0,
    )
    net = load_model(model).net.eval()
    low = degrade(held_out, scale)
    with torch.no_grad():
        up = net(low)
    assert up.shape == held_out.shape
    gain = psnr(up, held_out) - psnr(bicubic_upscale(low, scale).clamp(0, 1), held_out)
    print(f"x{scale}: PSNR gain over bicubic: {gain:.3f} dB")
    return gain


def test_short_training_beats_bicubic_on_held_out_crops(tmp_path):
    gain = _gain_over_bicubic(tmp_path, 2)
    assert gain > 0.1, f"trained net is only {gain:.3f} dB above bicubic"


def test_short_x4_training_beats_bicubic_on_held_out_crops(tmp_path):
    gain = _gain_over_bicubic(tmp_path, 4)  # measured 0.21 dB (seeds 1 and 2 of the run: 0.24, 0.20)
    assert gain > 0.1, f"trained x4 net is only {gain:.3f} dB above bicubic"
