"""``impasto reconstruct``: invert one layer's content or style representation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..atomic import check_writable
from ..config import add_config_arguments, config_from_args, config_to_dict

__all__ = ["register"]

EPILOG = """\
examples:
  impasto reconstruct examples/content/tubingen.jpg --layer relu4_2 --what content -o c42.png
  impasto reconstruct examples/style/starry_night.jpg --layer relu3_1 --what style -o s31.png

Content reconstructions from deeper layers keep the layout but lose exact pixels; style
reconstructions keep the texture at the layer's scale and lose the layout.
"""


def register(subparsers: Any) -> None:
    from ..methods.reconstruct import ReconstructConfig

    p = subparsers.add_parser("reconstruct", help="rebuild an image from one layer's representation (see what the network sees)", description="Start from noise and optimise until one layer's content (feature maps) or style (statistics) matches the image.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", help="the image to reconstruct")
    p.add_argument("-o", "--output", default="reconstruction.png", help="output image (default: reconstruction.png)")
    add_config_arguments(p, ReconstructConfig, group_title="options")
    p.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from .. import api
    from ..features import build_encoder
    from ..image.io import load_image, save_image
    from ..image.resize import resize_to_edge
    from ..methods.reconstruct import ReconstructConfig, reconstruct
    from .progress import ProgressRenderer

    config = config_from_args(ReconstructConfig, args)
    out = check_writable(Path(args.output))
    loaded = load_image(args.image, max_pixels=config.max_pixels)
    encoder = build_encoder(config.encoder, weights=config.weights, layers=[config.layer], pooling=config.pooling, device=config.device, preprocessing=config.preprocessing)
    image = resize_to_edge(loaded.image, config.edge).to(next(encoder.buffers()).device)
    renderer = ProgressRenderer(enabled=not args.quiet, desc=f"{config.what} @ {config.layer}")
    r = reconstruct(config, image, encoder, callback=renderer)
    renderer.close()
    meta = {"method": "reconstruct", "config": config_to_dict(config), "input": str(args.image), "distance_start": r.distance_start, "distance_end": r.distance_end, "versions": api.versions()}
    save_image(out, r.image, metadata=meta)
    print(f"wrote {out}: {config.what} distance at {config.layer} {r.distance_start:.4g} -> {r.distance_end:.4g}", file=sys.stderr)
    return 0
