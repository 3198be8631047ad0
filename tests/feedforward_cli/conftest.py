"""Fixtures: model files (trained for a step, or built with random weights), photos, a run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def save_photo(path: Path, h: int, w: int, seed: int = 0, *, alpha: bool = False) -> Path:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    img = (img + 0.1 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)
    arr = (img[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    if alpha:
        a = np.full((h, w, 1), 255, np.uint8)
        a[: h // 2] = 128
        Image.fromarray(np.concatenate([arr, a], axis=2), "RGBA").save(path)
    else:
        Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def photo(tmp_path: Path):
    def make(name: str = "photo.png", h: int = 40, w: int = 56, seed: int = 0, alpha: bool = False) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_photo(path, h, w, seed, alpha=alpha)

    return make


def build_model_file(path: Path, arch: str = "johnson-small", *, texture: bool = False, seed: int = 0) -> Path:
    """A model file with random (perturbed) weights, written the way ``train`` writes it."""
    from impasto.methods.feedforward import TrainConfig, _model_payload, save_model
    from impasto.nets import build_net

    torch.manual_seed(seed)
    net, net_config = build_net(arch, texture=texture)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    config = TrainConfig(arch=arch, texture=texture, encoder="tiny_vgg", weights="random", steps=1)
    style = {"name": "style.png", "sha256": "0" * 64}
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_model(path, _model_payload(net.eval(), arch, net_config, config, style, 1, {"name": "tiny_vgg"}))


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "johnson": build_model_file(root / "johnson.pt", "johnson"),
        "johnson-small": build_model_file(root / "small.pt", "johnson-small"),
        "texture": build_model_file(root / "texture.pt", "texture"),
        "texture-synth": build_model_file(root / "synth.pt", "texture", texture=True),
    }


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A real (two-step) training run with logs, previews and a checkpoint."""
    from impasto.methods.feedforward import TrainConfig, train

    root = tmp_path_factory.mktemp("trained")
    photos = root / "photos"
    (photos / "nested").mkdir(parents=True)
    for i in range(3):
        save_photo(photos / ("nested" if i else ".") / f"p{i}.png", 36, 44, seed=i)
    style = save_photo(root / "style.png", 48, 48, seed=9)
    config = TrainConfig(encoder="tiny_vgg", weights="random", arch="johnson-small", train_size=32, batch_size=2, steps=2, workers=0, log_every=1, preview_every=1, preview_count=2)
    train(config, style, photos, root / "run")
    return root / "run"
