"""Parameter sweeps and batches over the gatys method, reusing encoders and style targets."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import ConfigError
from .gatys import GatysConfig

__all__ = ["SweepAxis", "parse_axis", "grid", "contact_sheet", "write_csv", "slug"]

#: parameters that can be swept (GatysConfig fields)
SWEEPABLE = tuple(f.name for f in dataclasses.fields(GatysConfig) if f.name not in ("device", "save_every", "max_pixels", "content_mask", "style_mask"))


@dataclass(frozen=True)
class SweepAxis:
    """One swept parameter and its values (as given on the command line)."""

    name: str
    values: tuple[str, ...]


def parse_axis(text: str) -> SweepAxis:
    """``style_weight=1e2,1e3`` or ``style-layers=relu1_1,relu2_1|relu3_1`` ('|' separates values
    whose text contains commas, e.g. layer sets)."""
    name, eq, rest = text.partition("=")
    name = name.strip().replace("-", "_")
    if not eq or not rest.strip():
        raise ConfigError(f"--param {text!r}: expected NAME=V1,V2,... (e.g. style_weight=1e2,1e3,1e4)")
    if name not in SWEEPABLE:
        import difflib

        close = difflib.get_close_matches(name, SWEEPABLE, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"--param {name!r} cannot be swept{hint}; choose from {', '.join(SWEEPABLE)}")
    sep = "|" if "|" in rest or name.endswith("layers") else ","
    values = tuple(v.strip() for v in rest.split(sep) if v.strip())
    if not values:
        raise ConfigError(f"--param {text!r}: no values")
    return SweepAxis(name, values)


def grid(base: GatysConfig, axes: Sequence[SweepAxis]) -> list[tuple[dict[str, str], GatysConfig]]:
    """Every combination of the axes' values applied to ``base`` (validated)."""
    from ..config import config_from_mapping, config_to_dict

    if not 1 <= len(axes) <= 2:
        raise ConfigError("a sweep takes one or two --param axes")
    if len({a.name for a in axes}) != len(axes):
        raise ConfigError("the two --param axes must be different parameters")
    combos = []
    for values in itertools.product(*(a.values for a in axes)):
        labels = {a.name: v for a, v in zip(axes, values)}
        merged = {**config_to_dict(base), **labels}
        combos.append((labels, config_from_mapping(GatysConfig, merged)))
    return combos


def slug(labels: dict[str, str]) -> str:
    """A file-name-safe label: ``style_weight-1e3_init-noise``."""
    text = "_".join(f"{k}-{v}" for k, v in labels.items())
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:120]


def contact_sheet(images: Sequence[torch.Tensor], labels: Sequence[str], columns: int, *, cell: int = 256) -> torch.Tensor:
    """Tile ``images`` into a labelled grid (1x3xHxW in [0, 1])."""
    from PIL import Image, ImageDraw

    from ..image.convert import pil_to_tensor, tensor_to_pil

    rows = (len(images) + columns - 1) // columns
    pad, text_h = 6, 18
    sheet = Image.new("RGB", (columns * (cell + pad) + pad, rows * (cell + text_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (img, label) in enumerate(zip(images, labels)):
        pil = tensor_to_pil(img)
        pil.thumbnail((cell, cell))
        r, c = divmod(i, columns)
        x, y = pad + c * (cell + pad), pad + r * (cell + text_h + pad)
        sheet.paste(pil, (x + (cell - pil.width) // 2, y + text_h + (cell - pil.height) // 2))
        draw.text((x, y + 2), label[:48], fill="black")
    return pil_to_tensor(sheet)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` (same keys) as CSV atomically."""
    from ..atomic import atomic_path

    keys = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)



