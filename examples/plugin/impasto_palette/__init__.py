"""``palette``: repaint a photo with a painting's main colours (an example impasto plugin)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from impasto.api import Input, Result, config_to_dict, load_input_image
from impasto.errors import ConfigError
from impasto.progress import StepEvent, emit


@dataclass(frozen=True)
class PaletteConfig:
    """Options of the palette method (their help text becomes the CLI's and the service's)."""

    colours: int = field(default=8, metadata={"help": "how many colours to take from the painting"})
    iterations: int = field(default=20, metadata={"help": "k-means iterations", "short": "-n"})
    seed: int = field(default=0, metadata={"help": "seed of the k-means start"})

    def __post_init__(self) -> None:
        if not 2 <= self.colours <= 64:
            raise ConfigError(f"colours must be in 2..64, got {self.colours}", params="colours")
        if self.iterations < 1:
            raise ConfigError(f"iterations must be >= 1, got {self.iterations}", params="iterations")


def kmeans(pixels: torch.Tensor, k: int, iterations: int, seed: int, callback: Callable[[Any], None] | None = None) -> torch.Tensor:
    """k colours (k x 3) clustering ``pixels`` (N x 3), seeded."""
    gen = torch.Generator().manual_seed(seed)
    centres = pixels[torch.randperm(len(pixels), generator=gen)[:k]].clone()
    for step in range(1, iterations + 1):
        nearest = torch.cdist(pixels, centres).argmin(1)
        for j in range(k):
            members = pixels[nearest == j]
            if len(members):
                centres[j] = members.mean(0)
        emit(callback, StepEvent(step=step, total=iterations, losses={}))
    return centres


class PaletteMethod:
    """Each photo pixel takes the painting colour of the same brightness rank."""

    name = "palette"
    summary = "repaint the photo with the painting's main colours (example plugin)"
    Config = PaletteConfig
    inputs = (Input("content", "image", "the photograph"), Input("style", "image", "the painting"))

    def run(self, config: PaletteConfig, inputs: Mapping[str, Any], *, callback: Callable[[Any], None] | None = None) -> Result:
        t0 = time.perf_counter()
        photo, alpha, photo_info = load_input_image(inputs["content"], "content")
        painting, _, painting_info = load_input_image(inputs["style"], "style")
        pixels = painting[0].reshape(3, -1).T
        pixels = pixels[torch.randperm(len(pixels), generator=torch.Generator().manual_seed(config.seed))[:20000]]
        centres = kmeans(pixels, config.colours, config.iterations, config.seed, callback)
        centres = centres[centres.sum(1).argsort()]  # dark to light
        flat = photo[0].reshape(3, -1).T
        rank = flat.sum(1).argsort().argsort().float() / max(1, len(flat) - 1)  # brightness rank 0..1
        index = (rank * config.colours).long().clamp(max=config.colours - 1)
        out = centres[index].T.reshape(photo.shape)
        manifest = {"method": self.name, "config": config_to_dict(config), "content": photo_info, "style": painting_info,
                    "palette": [[round(float(v), 4) for v in c] for c in centres], "time_s": round(time.perf_counter() - t0, 3)}
        return Result(image=out.clamp(0, 1), alpha=alpha, manifest=manifest)
