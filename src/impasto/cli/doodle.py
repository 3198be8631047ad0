"""``impasto doodle``: paint a semantic map, get a painting (neural-doodle)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import api
from ..config import add_config_arguments, config_from_args

__all__ = ["register", "run_command"]

EPILOG = """\
examples:
  impasto doodle --style monet.jpg --map my_sketch.png -o painted.png          # monet_sem.png beside monet.jpg
  impasto doodle --style monet.jpg --style-map monet_sem.png --map sketch.png -o painted.png --edge 384
  impasto doodle photo.jpg --style renoir.jpg -o portrait.png                  # photo_sem.png beside photo.jpg
  impasto doodle --style monet.jpg --map sketch.png -o out.png --variety 0.5 --save-every 20

Maps are images of a few flat colours, one per kind of region (sky, water, trees...). The style map
covers the painting, the target map the picture to make; each target colour must also appear in
the style map (a missing one is named in the error). Anti-aliased edges are snapped to the map's
colours; RGB, RGBA and grey maps all work, black is a region like any other, and maps are resized
to their image. X_sem.png beside X is found without a flag.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "doodle",
        help="semantic style transfer: paint a colour map, get a painting (neural-doodle)",
        description="Paint the regions of a colour map (optionally over a photo) with the patches of the same-coloured regions of a painting.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("content", nargs="?", help="a photo whose structure to keep (optional)")
    p.add_argument("--style", required=True, metavar="PAINTING", help="the painting")
    p.add_argument("--style-map", metavar="MAP", help="the painting's map (default: PAINTING_sem.png beside it)")
    p.add_argument("--map", metavar="MAP", help="the map of the picture to make (default: CONTENT_sem.png beside the photo)")
    p.add_argument("-o", "--output", default="doodle.png", help="output image (default: doodle.png); OUT.json holds the manifest")
    add_config_arguments(p, api.method_config("doodle"), group_title="options")
    p.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from .progress import ProgressRenderer

    config = config_from_args(api.method_config("doodle"), args)
    out = api.check_output(args.output)
    inputs = {k: v for k, v in (("content", args.content), ("style", args.style), ("style_map", args.style_map), ("map", args.map)) if v}
    renderer = ProgressRenderer(enabled=not getattr(args, "quiet", False), desc="doodle")
    try:
        result = api.run("doodle", config=config, callback=renderer, **inputs)
    finally:
        renderer.close()
    result.save(out)
    took = result.manifest.get("time_s")
    print(f"wrote {out} ({took:.1f} s)", file=sys.stderr)
    return 0
