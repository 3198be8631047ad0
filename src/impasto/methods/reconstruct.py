"""See what the network sees: rebuild an image from one layer's content or style representation,
starting from noise (the replication project's 'reconstruction' experiment)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from ..config import check_rules, config_to_dict
from ..features import DEFAULT_DEVICE
from ..image.io import DEFAULT_MAX_PIXELS
from ..provenance import versions
from .inputs import load_input
from .registry import Input
from .result import Result
from ..losses import STYLE_LOSSES, PerceptualLoss
from ..optim.pixel import OPTIMIZERS, optimise_pixels
from ..progress import Event

__all__ = ["ReconstructConfig", "ReconstructOutput", "ReconstructMethod", "reconstruct"]


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
    device: str = field(default=DEFAULT_DEVICE, metadata={"help": "compute device: auto, cpu, cuda, cuda:N, mps"})
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata={"help": "decompression-bomb limit for the input"})

    def __post_init__(self) -> None:
        check_rules([
            (self.iterations >= 0, "iterations", f"iterations must be >= 0, got {self.iterations}"),
            (self.edge >= 16, "edge", f"edge must be >= 16 px, got {self.edge}"),
        ])


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


class ReconstructMethod:
    """Rebuild an image from noise so that one layer's content or style representation matches."""

    name = "reconstruct"
    summary = "rebuild an image from one layer's representation (see what the network sees)"
    Config = ReconstructConfig
    inputs = (Input("image", "image", "the image to reconstruct"),)
    context = ("download_progress",)
    main_options = ("layer", "what", "iterations", "edge", "seed")

    def run(self, config: ReconstructConfig, inputs: Mapping[str, Any], *, callback: Callable[[Event], None] | None = None,
            download_progress: Callable[[int, int | None], None] | None = None) -> Result:
        """Load and resize the image, build the encoder, reconstruct; the manifest holds the distances."""
        from ..features import build_encoder
        from ..image.resize import resize_to_edge

        image, _, info = load_input(inputs["image"], "image", config.max_pixels)
        encoder = build_encoder(config.encoder, weights=config.weights, layers=[config.layer], pooling=config.pooling,
                                device=config.device, preprocessing=config.preprocessing, progress=download_progress)
        t0 = time.perf_counter()
        r = reconstruct(config, resize_to_edge(image, config.edge).to(next(encoder.buffers()).device), encoder, callback=callback)
        source = inputs["image"] if isinstance(inputs["image"], (str, bytes)) or hasattr(inputs["image"], "__fspath__") else info.get("path")
        manifest = {
            "method": "reconstruct", "config": config_to_dict(config), "input": str(source), "distance_start": r.distance_start,
            "distance_end": r.distance_end, "versions": versions(), "final_losses": r.history[-1] if r.history else {},
            "time_s": round(time.perf_counter() - t0, 3),
        }
        return Result(image=r.image, manifest=manifest)
