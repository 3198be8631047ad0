"""``impasto sweep`` (a grid over parameters) and ``impasto batch`` (contents x styles)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import add_config_arguments, config_from_args

__all__ = ["register"]

SWEEP_EPILOG = """\
examples:
  impasto sweep photo.jpg starry.jpg --param init=content,noise,uniform -o sweep/
  impasto sweep photo.jpg starry.jpg --param style_weight=1e2,1e3,1e4 --param style_loss=gram,mean_std -o grid/
  impasto sweep photo.jpg starry.jpg --param "content_layers=relu4_2;relu3_1,relu4_2" -o layers/
      two runs: content layers [relu4_2], then [relu3_1, relu4_2]

values:
  ';' separates values for every parameter ('|' is an alias); scalar parameters also take ','
  (style_weight=1e2,1e3). Each value of a list-valued parameter is a comma-separated list, as the
  gatys option takes it, so without ';' the whole text is ONE value: content_layers=relu4_2,relu3_1
  is one run using both layers (a note says so); "content_layers=relu4_2;relu3_1" is two runs.
  List-valued: {lists}.
  Quote the argument: ';' and '|' mean something to the shell.

Writes one image per combination, sheet.png (a labelled contact sheet: rows = first parameter,
columns = second) and results.csv (one row per run: each parameter's value as given, final losses,
time). Style targets are computed once and reused across the grid.
"""

BATCH_EPILOG = """\
examples:
  impasto batch photos/*.jpg --style starry.jpg --style scream.jpg -o styled/

Writes <photo>__<style>.png for every pair; the encoder is built once and each style's targets
are computed once per size.
"""


def register(subparsers: Any) -> None:
    from .. import api

    GatysConfig = api.method_config("gatys")
    epilog = SWEEP_EPILOG.replace("{lists}", ", ".join(api.sweep_list_valued()))
    p = subparsers.add_parser("sweep", help="run a grid over one or two parameters and write a contact sheet", description="Compare settings side by side: one run per combination of the --param values.", epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("content", help="the photograph")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s): PATH[:WEIGHT[:SCALE]]")
    p.add_argument("--param", action="append", required=True, metavar="NAME=V1,V2", help="a swept parameter (once or twice); values separated by ';' (any parameter) or ',' (scalar parameters only), e.g. \"content_layers=relu4_2;relu3_1,relu4_2\"")
    p.add_argument("-o", "--output", default="sweep", help="output folder (default: sweep)")
    add_config_arguments(p, GatysConfig, group_title="base options (as for gatys)")
    p.set_defaults(handler=run_sweep)

    b = subparsers.add_parser("batch", help="stylise many photos with many styles in one process", description="Every content image with every style image, sharing the encoder and style targets.", epilog=BATCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("contents", nargs="+", metavar="content", help="photographs")
    b.add_argument("--style", dest="batch_styles", action="append", required=True, metavar="PATH", help="a style image (repeatable)")
    b.add_argument("-o", "--output", default="styled", help="output folder (default: styled)")
    add_config_arguments(b, GatysConfig, group_title="options (as for gatys)")
    b.set_defaults(handler=run_batch)


def run_sweep(args: argparse.Namespace) -> int:
    from .. import api
    from .progress import ProgressRenderer

    axes = [api.parse_sweep_axis(p) for p in args.param]
    for axis in axes:
        if axis.note:
            print(f"note: {axis.note}", file=sys.stderr)
    config = config_from_args(api.method_config("gatys"), args)
    renderer = ProgressRenderer(enabled=not args.quiet)
    info = api.sweep(args.content, args.styles, axes, args.output, config=config, callback=renderer)
    renderer.close()
    print(f"wrote {len(info['runs'])} images, {info['sheet']} and {info['csv']} ({info['style_targets_computed']} style targets computed)", file=sys.stderr)
    return 0


def run_batch(args: argparse.Namespace) -> int:
    from .. import api
    from .progress import ProgressRenderer

    config = config_from_args(api.method_config("gatys"), args)
    renderer = ProgressRenderer(enabled=not args.quiet)
    done = api.batch(args.contents, args.batch_styles, args.output, config=config, callback=renderer)
    renderer.close()
    print(f"wrote {len(done)} images to {args.output}", file=sys.stderr)
    return 0
