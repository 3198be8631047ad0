"""``impasto apply``: stylise images with a trained feed-forward model."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import api
from ..config import add_config_arguments, config_from_args
from .upscale import add_upscale_argument, finisher_from_args
from .runtime import tune_allocator  # noqa: F401 (re-exported for callers of impasto.cli.apply)

__all__ = ["register", "run_command", "tune_allocator"]

EPILOG = """\
examples:
  impasto apply models/starry/model.pt photo.jpg -o styled/
  impasto apply models/starry photos/ more.jpg -o styled/ --edge 1024        # folders too; model folder ok
  impasto apply model.pt big.tif -o out/ --tile 512 --overlap 64             # any size, constant memory
  impasto apply model.pt photo.jpg -o out/ --strength 0.7 --preserve-colors luminance
  impasto apply model.onnx photo.jpg -o out/                                  # ONNX Runtime (impasto export)
  impasto apply models/wall/model.pt -o out/ --size 1024x2048 --seed 3        # texture model: no inputs
  impasto apply models/many photo.jpg -o out/ --style-index 2                 # multi-style model
  impasto apply models/many photo.jpg -o out/ --style-mix 0:0.3,2:0.7         # interpolate two styles
  impasto apply models/many photo.jpg -o sheets/ --sheet                      # every style, one sheet
  impasto apply models/starry photo.jpg -o out/ --upscale models/x4          # finished at 4x (superres model)
  impasto apply models/many --list-styles                                     # what the model holds
  impasto apply models/adain photo.jpg -o out/ --style monet.jpg --alpha 0.8  # any painting (AdaIN)
  impasto apply models/adain photo.jpg -o out/ --style a.jpg --style b.jpg --style-weights 0.7,0.3
  impasto apply models/adain photo.jpg -o out/ --style a.jpg --style b.jpg --style-mask sky.png --style-mask ground.png

The model file describes itself (architecture, style, training), so no other flags are needed.
Outputs are OUT_DIR/<name><suffix>.<format> with the photo's alpha channel and the parameters as
metadata. Unreadable inputs are reported and skipped; the exit code is then 2.
"""




def register(subparsers: Any) -> None:
    ApplyConfig = api.method_config("apply")
    p = subparsers.add_parser(
        "apply",
        help="stylise images with a trained network (fast, any size)",
        description="Stylise photos (files or folders) in one pass with a model trained by `impasto train`.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model file (model.pt, or an exported .onnx), or a training folder")
    p.add_argument("images", nargs="*", help="images and/or folders of images")
    p.add_argument("-o", "--output", metavar="OUT_DIR", default="styled", help="output folder (default: styled)")
    p.add_argument("--style", metavar="PAINTING", action="append", default=[], help="AdaIN models: the painting whose style to use (repeat it to mix several, see --style-weights)")
    p.add_argument("--style-mask", metavar="MAP", action="append", default=[], help="AdaIN models: one grey map per --style painting, white where that painting applies (spatial control; where no map is white the photo is kept)")
    p.add_argument("--list-styles", action="store_true", help="print the styles a multi-style model holds (index, name, SHA-256) and exit")
    add_upscale_argument(p)
    add_config_arguments(p, ApplyConfig, group_title="options")
    p.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from .progress import ProgressRenderer

    ApplyConfig = api.method_config("apply")

    quiet = bool(getattr(args, "quiet", False))
    if args.list_styles:
        styles = api.model_styles(args.model)
        if not styles:
            print(f"{args.model}: holds one style (not a multi-style model)")
        for s in styles:
            print(f"{s['index']:>3}  {s.get('name')}  {s.get('sha256', '')[:16]}")
        return 0
    config = config_from_args(ApplyConfig, args)
    finisher = finisher_from_args(args)
    if getattr(args, "tune_allocator", True):  # in-process tests turn it off
        tune_allocator()
    renderer = ProgressRenderer(enabled=not quiet, unit="img", desc="stylising")
    try:
        result = api.apply(args.model, list(args.images), args.output, config=config, callback=renderer, styles=args.style, masks=args.style_mask)
    finally:
        renderer.close()
    if finisher is not None:
        for path in result.written:
            finisher.file(path, bit_depth=config.bit_depth)
    n = len(result.written)
    print(f"wrote {n} image(s) to {args.output} in {result.seconds:.1f} s", file=sys.stderr)
    if result.failed:
        print(f"impasto: error: {len(result.failed)} input(s) could not be read:", file=sys.stderr)
        for _, message in result.failed:
            print(f"  {message}", file=sys.stderr)
        return 2
    return 0
