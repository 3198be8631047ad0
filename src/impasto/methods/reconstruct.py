"""See what the network sees: rebuild an image from one layer's content or style representation,
starting from noise (the replication project's 'reconstruction' experiment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..errors import ConfigError
from ..losses import STYLE_LOSSES, PerceptualLoss
from ..optim.pixel import OPTIMIZERS, optimise_pixels
from ..progress import Event

__all__ = ["ReconstructConfig", "ReconstructOutput", "reconstruct"]


@dataclass(frozen=True)
class ReconstructConfig:
    """Options of ``impasto reconstruct``."""

    layer: str = field(default="relu3_1", metadata={"help": "the layer whose representation is inverted"})
    what: str = field(default="content", metadata={"help": "content (feature maps) or style (their statistics)", "choices": ("content", "style")})
    style_loss: str = field(default="gram", metadata={"help": "statistic for --what style", "choices": STYLE_LOSSES})
    iterations: int = field(default=200, metadata={"help": "optimisation steps", "short": "-n"})
    optimizer: str = field(default="lbfgs", metadata={"help": "optimiser", "choices": OPTIMIZERS})
    edge: int = field(default=256, metadata={"help": "longest side in px"})
    encoder: str = field(default="vgg19", metadata={"help": "feature network"})
    weights: str = field(default="auto", metadata={"help": "encoder weights: auto, random, NAME or FILE"})
    preprocessing: str = field(default="auto", metadata={"help": "input convention of a --weights file: auto (from its record), caffe or torchvision", "choices": ("auto", "caffe", "torchvision")})
    pooling: str = field(default="max", metadata={"help": "VGG pooling", "choices": ("max", "avg")})
    seed: int = field(default=0, metadata={"help": "seed of the starting noise"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, mps"})
    max_pixels: int = field(default=100_000_000, metadata={"help": "decompression-bomb limit for the input"})

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ConfigError(f"--iterations must be >= 0, got {self.iterations}")
        if self.edge < 16:
            raise ConfigError(f"--edge must be >= 16 px, got {self.edge}")


@dataclass
class ReconstructOutput:
    image: torch.Tensor
    distance_start: float
    distance_end: float
    history: list[dict[str, float]]


def reconstruct(
    config: ReconstructConfig, image: torch.Tensor, encoder: Any, *, callback: Callable[[Event], None] | None = None
) -> ReconstructOutput:
    """Optimise uniform noise until its ``config.layer`` representation matches ``image``'s."""
    if config.what == "content":
        loss = PerceptualLoss(encoder, content_layers=[config.layer], style_layers=[], content_weight=1.0, style_weight=0.0)
        loss.set_content(image)
    else:
        loss = PerceptualLoss(encoder, content_layers=[], style_layers=[config.layer], content_weight=0.0, style_weight=1.0, style_loss=config.style_loss, seed=config.seed)
        loss.set_style([image])
    gen = torch.Generator().manual_seed(config.seed)
    start = torch.rand(image.shape, generator=gen).to(image.device)
    with torch.no_grad():
        d0 = float(loss(start)[0])
    r = optimise_pixels(start, lambda x: loss(x), iterations=config.iterations, optimizer=config.optimizer, callback=callback)
    with torch.no_grad():
        d1 = float(loss(r.image)[0])
    return ReconstructOutput(image=r.image.cpu(), distance_start=d0, distance_end=d1, history=r.history)
