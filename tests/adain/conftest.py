"""Fixtures for the AdaIN tests: a tiny network (tiny_vgg, random weights), images, and folders of
photos and paintings (nested, mixed formats, one corrupt file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from impasto.nets.adain import AdaINNet


def picture(h: int, w: int, seed: int) -> torch.Tensor:
    """A deterministic 1x3xHxW image in [0, 1] with structure at several scales."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    return (img + 0.2 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


def save_picture(path: Path, h: int, w: int, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (picture(h, w, seed)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture(scope="session")
def net() -> AdaINNet:
    """An AdaIN network on tiny_vgg (random encoder weights), in eval mode, with a lively random
    decoder: He-initialised, its output spread around 0.5 (an untrained decoder's output is
    nearly constant, which would make the equalities below trivially true)."""
    from impasto.features import random_init

    torch.manual_seed(0)
    net = AdaINNet(encoder="tiny_vgg", weights="random").eval()
    random_init(net.decoder, seed=1)
    with torch.no_grad():
        y = net.decoder(net.adain_features(net.encode(picture(64, 64, 0)), net.prepare_style([picture(64, 64, 1)])))
        last = net.decoder.convs[-1]
        last.weight.mul_(0.2 / float(y.std()))
        last.bias.fill_(0.5)
    return net


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """(photos, paintings): photos flat and nested; paintings in WikiArt-like artist folders as
    .jpg/.webp/.png, plus one corrupt file (a valid header, truncated data)."""
    photos, paintings = tmp_path / "photos", tmp_path / "wikiart"
    for i in range(5):
        save_picture(photos / ("sub" if i % 2 else "") / f"p{i}.png", 40 + 4 * i, 48, seed=i)
    for i, name in enumerate(["Impressionism/monet/a.jpg", "Impressionism/monet/b.webp", "Cubism/braque/c.png", "Cubism/d.webp", "e.jpg"]):
        save_picture(paintings / name, 48, 44 + 4 * i, seed=100 + i)
    good = (paintings / "Cubism/braque/c.png").read_bytes()
    (paintings / "Cubism/braque/zz_broken.png").write_bytes(good[: len(good) // 3])
    return photos, paintings
