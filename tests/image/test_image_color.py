"""Colour preservation: YIQ, luminance transfer, colour histogram matching."""

from __future__ import annotations

import pytest
import torch

from impasto.errors import UsageError
from impasto.image.color import luminance, luminance_only, match_color, rgb_to_yiq, transfer_luminance, yiq_to_rgb


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x[0].flatten(1).double()
    mu = flat.mean(dim=1)
    d = flat - mu[:, None]
    return mu, d @ d.T / flat.shape[1]


def _coloured(seed: int, h: int = 24, w: int = 32) -> torch.Tensor:
    """A random image with correlated channels and a distinct colour cast (full-rank covariance)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 1, h, w, generator=g)
    mix = torch.rand(3, 1, generator=g) * 0.5 + 0.2
    noise = torch.rand(1, 3, h, w, generator=g) * 0.3
    return (base * mix.view(1, 3, 1, 1) + noise + torch.rand(1, 3, 1, 1, generator=g) * 0.2).clamp(0, 1)


def test_yiq_round_trip_is_exact(noise_image):
    img = noise_image(16, 16)
    assert float((yiq_to_rgb(rgb_to_yiq(img)) - img).abs().max()) < 1e-6
    img64 = img.double()
    assert float((yiq_to_rgb(rgb_to_yiq(img64)) - img64).abs().max()) < 1e-12


def test_yiq_known_values():
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert rgb_to_yiq(red).flatten().tolist() == pytest.approx([0.299, 0.595716, 0.211456], abs=1e-6)
    grey = torch.full((1, 3, 2, 2), 0.4)
    yiq = rgb_to_yiq(grey)
    assert torch.allclose(yiq[:, 0], torch.tensor(0.4)) and float(yiq[:, 1:].abs().max()) < 1e-6


def test_luminance_and_luminance_only(noise_image):
    img = noise_image(8, 8)
    y = luminance(img)
    assert y.shape == (1, 1, 8, 8)
    expected = 0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]
    assert torch.allclose(y, expected, atol=1e-6)
    grey = luminance_only(img)
    assert grey.shape == (1, 3, 8, 8)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    assert torch.allclose(luminance(grey), y, atol=1e-6)
    assert float(rgb_to_yiq(grey)[:, 1:].abs().max()) < 1e-6  # no chroma left


def test_transfer_luminance_unclamped_is_exact(noise_image):
    stylised, content = noise_image(12, 12, seed=1), noise_image(12, 12, seed=2)
    out = transfer_luminance(stylised, content, clamp=False)
    yiq_out, yiq_s, yiq_c = rgb_to_yiq(out), rgb_to_yiq(stylised), rgb_to_yiq(content)
    assert float((yiq_out[:, 0] - yiq_s[:, 0]).abs().max()) < 1e-5
    assert float((yiq_out[:, 1:] - yiq_c[:, 1:]).abs().max()) < 1e-5


def test_transfer_luminance_clamped_in_gamut_case_keeps_content_chroma(smooth_image):
    # Mid-grey-ish images: Y from one plus I/Q of the other stays inside the RGB cube, so the
    # default clamping changes nothing and the chroma equals the content's. (Checked, not assumed.)
    stylised = smooth_image(16, 16, seed=3, lo=0.35, hi=0.65)
    content = smooth_image(16, 16, seed=4, lo=0.4, hi=0.6)
    raw = transfer_luminance(stylised, content, clamp=False)
    assert float(raw.min()) >= 0 and float(raw.max()) <= 1
    out = transfer_luminance(stylised, content)
    assert torch.equal(out, raw)
    assert float((rgb_to_yiq(out)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs().max()) < 1e-5


def test_transfer_luminance_clamps_out_of_gamut(noise_image):
    stylised = torch.ones(1, 3, 4, 4)  # white luminance
    content = torch.zeros(1, 3, 4, 4)
    content[:, 0] = 1  # saturated red chroma: white + red chroma leaves the cube
    raw = transfer_luminance(stylised, content, clamp=False)
    assert float(raw.max()) > 1
    out = transfer_luminance(stylised, content)
    assert torch.equal(out, raw.clamp(0, 1))


def test_transfer_luminance_resizes_content_and_broadcasts_batch(noise_image):
    stylised = torch.cat([noise_image(16, 20, seed=5), noise_image(16, 20, seed=6)])
    content = noise_image(8, 10, seed=7)
    out = transfer_luminance(stylised, content, clamp=False)
    assert out.shape == (2, 3, 16, 20)
    assert float((luminance(out) - luminance(stylised)).abs().max()) < 1e-5


@pytest.mark.parametrize("mode", ["cholesky", "pca"])
def test_match_color_matches_mean_and_covariance(mode: str):
    source, target = _coloured(1), _coloured(2, 30, 20)
    out = match_color(source, target, mode, clamp=False)
    mu_o, cov_o = _stats(out)
    mu_t, cov_t = _stats(target)
    mu_s, cov_s = _stats(source)
    assert float((mu_s - mu_t).abs().max()) > 0.02 and float((cov_s - cov_t).abs().max()) > 1e-3  # a real change
    assert float((mu_o - mu_t).abs().max()) < 1e-5
    assert float((cov_o - cov_t).abs().max()) < 1e-4 * max(1.0, float(cov_t.abs().max()))


def test_match_color_mean_std_matches_per_channel_moments():
    source, target = _coloured(3), _coloured(4)
    out = match_color(source, target, "mean_std", clamp=False)
    mu_o, cov_o = _stats(out)
    mu_t, cov_t = _stats(target)
    assert float((mu_o - mu_t).abs().max()) < 1e-5
    assert float((cov_o.diagonal() - cov_t.diagonal()).abs().max()) < 1e-4


def test_match_color_of_an_image_with_itself_is_identity():
    img = _coloured(5)
    for mode in ("cholesky", "pca", "mean_std"):
        assert float((match_color(img, img, mode) - img).abs().max()) < 1e-3


def test_match_color_is_clamped_by_default_and_survives_flat_images():
    source, target = _coloured(6), _coloured(7)
    out = match_color(source, target)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    flat = torch.full((1, 3, 8, 8), 0.5)
    grey_target = luminance_only(_coloured(8))  # rank-one covariance
    for s, t in [(flat, target), (source, grey_target), (flat, flat)]:
        res = match_color(s, t)
        assert torch.isfinite(res).all()


def test_match_color_batches_against_one_target():
    source = torch.cat([_coloured(9), _coloured(10)])
    target = _coloured(11)
    out = match_color(source, target, clamp=False)
    for i in range(2):
        assert float((_stats(out[i : i + 1])[0] - _stats(target)[0]).abs().max()) < 1e-5


def test_match_color_rejects_unknown_modes():
    with pytest.raises(UsageError, match="cholesky, pca, mean_std"):
        match_color(_coloured(1), _coloured(2), "histogram")
