"""Colour preservation (Gatys, Ecker, Bethge, Hertzmann & Shechtman 2017, "Controlling perceptual
factors in neural style transfer", section 5).

Two ways to keep the content's colours:

* luminance-only transfer: stylise the luminance channel only (``luminance_only``), then put the
  content's chroma back (``transfer_luminance``). YIQ is the colour space used in the paper.
* colour histogram matching: recolour the style image so its RGB mean and covariance equal the
  content's before stylising (``match_color``, a linear colour transfer).
"""

from __future__ import annotations

import functools

import torch

from ..errors import UsageError
from .convert import validate_image

__all__ = ["rgb_to_yiq", "yiq_to_rgb", "luminance", "luminance_only", "transfer_luminance", "match_color", "MATCH_MODES"]

# FCC NTSC YIQ. The inverse is computed from this matrix (not the rounded published inverse), so
# rgb -> yiq -> rgb is exact up to floating-point rounding.
_RGB_TO_YIQ = (
    (0.299, 0.587, 0.114),
    (0.595716, -0.274453, -0.321263),
    (0.211456, -0.522591, 0.311135),
)
MATCH_MODES = ("cholesky", "pca", "mean_std")


@functools.lru_cache(maxsize=None)
def _matrices() -> tuple[torch.Tensor, torch.Tensor]:
    fwd = torch.tensor(_RGB_TO_YIQ, dtype=torch.float64)
    return fwd, torch.linalg.inv(fwd)


def _apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    m = matrix.to(device=x.device, dtype=x.dtype if x.dtype == torch.float64 else torch.float32)
    out = torch.einsum("ij,bjhw->bihw", m, x.to(m.dtype))
    return out.to(x.dtype)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """Bx3xHxW RGB -> Bx3xHxW YIQ (Y in [0, 1]; I, Q signed). Not clamped."""
    validate_image(image, "rgb_to_yiq")
    return _apply(_matrices()[0], image)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """Bx3xHxW YIQ -> Bx3xHxW RGB, the exact inverse of :func:`rgb_to_yiq`. Not clamped."""
    validate_image(yiq, "yiq_to_rgb")
    return _apply(_matrices()[1], yiq)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Bx3xHxW -> Bx1xHxW luminance Y = 0.299 R + 0.587 G + 0.114 B."""
    validate_image(image, "luminance")
    return rgb_to_yiq(image)[:, :1]


def luminance_only(image: torch.Tensor) -> torch.Tensor:
    """A grey Bx3xHxW image (R = G = B = Y): its I and Q are zero, its luminance is the input's."""
    return luminance(image).expand(-1, 3, -1, -1).contiguous()


def transfer_luminance(stylised: torch.Tensor, content: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
    """Luminance (Y) of ``stylised`` with the chroma (I, Q) of ``content``.

    ``content`` is resized to the stylised image's size if needed; its batch may be 1 or match.
    The result is clamped to [0, 1] unless ``clamp=False`` (clamping can change I/Q where the
    combination falls outside the RGB cube).
    """
    validate_image(stylised, "transfer_luminance: stylised")
    validate_image(content, "transfer_luminance: content")
    if content.shape[0] not in (1, stylised.shape[0]):
        raise UsageError(f"transfer_luminance: content batch {content.shape[0]} does not match stylised batch {stylised.shape[0]}")
    if tuple(content.shape[-2:]) != tuple(stylised.shape[-2:]):
        from .resize import resize

        content = resize(content, tuple(stylised.shape[-2:]))
    content = content.to(device=stylised.device, dtype=stylised.dtype)
    ys = rgb_to_yiq(stylised)[:, :1]
    iq = rgb_to_yiq(content)[:, 1:].expand(stylised.shape[0], -1, -1, -1)
    out = yiq_to_rgb(torch.cat([ys, iq], dim=1))
    return out.clamp(0, 1) if clamp else out


def _stats(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean (Bx3x1) and covariance (Bx3x3) of the pixels of a Bx3xHxW tensor (float64)."""
    flat = x.flatten(2).double()
    mu = flat.mean(dim=2, keepdim=True)
    d = flat - mu
    cov = d @ d.transpose(1, 2) / flat.shape[2]
    return mu, cov + eps * torch.eye(3, dtype=cov.dtype, device=cov.device)


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    vals = vals.clamp_min(1e-12)
    p = -0.5 if inverse else 0.5
    return vecs @ torch.diag_embed(vals**p) @ vecs.transpose(1, 2)


def match_color(source: torch.Tensor, target: torch.Tensor, mode: str = "cholesky", *, eps: float = 1e-5, clamp: bool = True) -> torch.Tensor:
    """``source`` recoloured so its RGB mean and covariance match ``target``'s (linear colour transfer).

    ``mode``: "cholesky" (A = L_t L_s^-1), "pca" (A = C_t^1/2 C_s^-1/2, the symmetric square
    roots of Gatys et al. 2017) or "mean_std" (per channel: matches means and variances only).
    ``eps`` regularises the covariances (a flat source has none). The result is clamped to [0, 1]
    unless ``clamp=False``; clamping moves the statistics slightly where colours leave the cube.
    """
    validate_image(source, "match_color: source")
    validate_image(target, "match_color: target")
    if mode not in MATCH_MODES:
        raise UsageError(f"match_color: unknown mode {mode!r}; use one of {', '.join(MATCH_MODES)}")
    if target.shape[0] not in (1, source.shape[0]):
        raise UsageError(f"match_color: target batch {target.shape[0]} does not match source batch {source.shape[0]}")
    b, _, h, w = source.shape
    mu_s, cov_s = _stats(source, eps)
    mu_t, cov_t = _stats(target.to(source.device), eps)
    mu_t, cov_t = mu_t.expand(b, -1, -1), cov_t.expand(b, -1, -1)
    if mode == "cholesky":
        l_s = torch.linalg.cholesky(cov_s)
        l_t = torch.linalg.cholesky(cov_t)
        a = l_t @ torch.linalg.inv(l_s)
    elif mode == "pca":
        a = _sqrtm(cov_t) @ _sqrtm(cov_s, inverse=True)
    else:
        std_s = torch.diagonal(cov_s, dim1=1, dim2=2).sqrt()
        std_t = torch.diagonal(cov_t, dim1=1, dim2=2).sqrt()
        a = torch.diag_embed(std_t / std_s)
    flat = source.flatten(2).double()
    out = (a @ (flat - mu_s) + mu_t).reshape(b, 3, h, w).to(source.dtype)
    return out.clamp(0, 1) if clamp else out
