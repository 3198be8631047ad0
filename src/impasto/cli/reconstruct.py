"""``impasto reconstruct``: invert one layer's content or style representation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import api
from ..config import add_config_arguments, config_from_args

__all__ = ["register"]

EPILOG = """\
examples:
  impasto reconstruct examples/content/tubingen.jpg --layer relu4_2 --what content -o c42.png
  impasto reconstruct examples/style/starry_night.jpg --layer relu3_1 --what style -o s31.png

Content reconstructions from deeper layers keep the layout but lose exact pixels; style
reconstructions keep the texture at the layer's scale and lose the layout.
"""


def register(subparsers: Any) -> None:
    ReconstructConfig = api.method_config("reconstruct")
    p = subparsers.add_parser("reconstruct", help="rebuild an image from one layer's representation (see what the network sees)", description="Start from noise and optimise until one layer's content (feature maps) or style (statistics) matches the image.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", help="the image to reconstruct")
    p.add_argument("-o", "--output", default="reconstruction.png", help="output image (default: reconstruction.png)")
    add_config_arguments(p, ReconstructConfig, group_title="options")
    p.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from .progress import ProgressRenderer

    config = config_from_args(api.method_config("reconstruct"), args)
    out = api.check_output(Path(args.output))
    renderer = ProgressRenderer(enabled=not args.quiet, desc=f"{config.what} @ {config.layer}")
    try:
        result = api.run("reconstruct", config=config, callback=renderer, image=args.image)
    finally:
        renderer.close()
    meta = {k: v for k, v in result.manifest.items() if k in ("method", "config", "input", "distance_start", "distance_end", "versions")}
    api.save_image(out, result.image, metadata=meta)
    m = result.manifest
    print(f"wrote {out}: {config.what} distance at {config.layer} {m['distance_start']:.4g} -> {m['distance_end']:.4g}", file=sys.stderr)
    return 0
