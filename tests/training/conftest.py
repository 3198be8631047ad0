"""Fixtures for training tests: a tiny photo folder (nested, mixed formats, broken files) and a style."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def _photo(h: int, w: int, seed: int) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    img = (img + 0.15 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)
    return Image.fromarray((img[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def make_photo_folder(root: Path, n: int = 6, *, broken: bool = True) -> Path:
    """n photos in nested folders and mixed formats, plus (optionally) two broken files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "a" / "b").mkdir(parents=True, exist_ok=True)
    places = [root / "p0.png", root / "a" / "p1.jpg", root / "a" / "b" / "p2.webp", root / "p3.bmp", root / "a" / "p4.PNG", root / "a" / "b" / "p5.jpeg"]
    for i in range(n):
        path = places[i % len(places)] if i < len(places) else root / f"extra{i}.png"
        _photo(36 + 4 * i, 44 + 2 * i, seed=i).save(path)
    (root / "notes.txt").write_text("not a photo")
    if broken:
        (root / "a" / "zz_header_garbage.jpg").write_bytes(b"this is not a jpeg at all")
        good = (root / "p0.png").read_bytes()
        (root / "a" / "b" / "zz_truncated.png").write_bytes(good[: len(good) // 3])  # valid header, corrupt data
    return root


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    return make_photo_folder(tmp_path / "photos")


@pytest.fixture
def style_file(tmp_path: Path) -> Path:
    path = tmp_path / "style.png"
    g = torch.Generator().manual_seed(99)
    stripes = torch.zeros(1, 3, 48, 48)
    stripes[:, 0, :, ::6] = 1.0
    stripes[:, 2, ::4, :] = 0.8
    img = (stripes + 0.2 * torch.rand(1, 3, 48, 48, generator=g)).clamp(0, 1)
    Image.fromarray((img[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    return path


TINY = dict(encoder="tiny_vgg", weights="random", train_size=32, batch_size=2, workers=0, preview_every=0)


@pytest.fixture
def photo_folder_factory():
    return make_photo_folder


@pytest.fixture
def tiny() -> dict:
    """TrainConfig overrides for fast tests: tiny_vgg with random weights, 32 px, batch 2, no workers."""
    return dict(TINY)
