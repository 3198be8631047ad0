"""Fixtures for the image layer: the shared awkward inputs and small deterministic images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
# A copy of shared/bad-inputs (with its README) lives in the repository, so the tests need
# nothing outside the checkout.
BAD_INPUTS = REPO_ROOT / "tests" / "data" / "bad-inputs"


@pytest.fixture(scope="session")
def bad() -> Path:
    """tests/data/bad-inputs (a copy of shared/bad-inputs). Never skipped."""
    assert BAD_INPUTS.is_dir(), f"{BAD_INPUTS} is missing: the image tests need the copy of shared/bad-inputs in the repository"
    return BAD_INPUTS


def _smooth_image(h: int = 24, w: int = 32, seed: int = 0, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """A deterministic 1x3xHxW image in [lo, hi] with smooth structure (compresses well, survives JPEG)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 6), max(2, w // 6), generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return lo + (hi - lo) * img


def _noise_image(h: int = 24, w: int = 32, seed: int = 0, channels: int = 3) -> torch.Tensor:
    """Uniform noise 1xCxHxW in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, channels, h, w, generator=g)


@pytest.fixture
def smooth_image():
    """Factory: ``smooth_image(h, w, seed, lo, hi)``."""
    return _smooth_image


@pytest.fixture
def noise_image():
    """Factory: ``noise_image(h, w, seed, channels)``."""
    return _noise_image
