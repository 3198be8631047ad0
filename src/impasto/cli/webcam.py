"""``impasto webcam``: live stylisation from a camera, to a window or a file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import api
from ..config import add_config_arguments, config_from_args, config_from_mapping

__all__ = ["register", "run_command", "MODEL_OPTIONS"]

#: the options of ``impasto apply`` that a live run takes
MODEL_OPTIONS = ("style_index", "alpha", "style_edge", "strength", "precision", "runtime", "device", "preserve_colors")

EPILOG = """\
examples:
  impasto webcam --model models/many                         # camera 0 in a window; n/p switch styles
  impasto webcam --model a.pt --model b.pt --camera 1         # keys n/p/0-9 switch between models
  impasto webcam --model m.pt --output live.mp4 --no-window   # record (Ctrl-C or q stops; the file is kept)
  impasto webcam --model m.pt --source clip.mp4 --output out.mp4 --no-window   # a video as the camera

keys: n / p next / previous style, 0-9 a style by number, c consistency on/off,
      f FPS overlay on/off, q or Esc quit.

The window needs an OpenCV with GUI support (pip install opencv-python); the video extra installs
the headless build, which records with --output. Memory stays flat however long it runs.
"""


def register(subparsers: Any) -> None:
    WebcamConfig = api.webcam_config_class()
    p = subparsers.add_parser(
        "webcam",
        help="live style transfer from a camera (window or file)",
        description="Stylise a live camera feed with trained networks, switching styles with keys.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", metavar="MODEL", action="append", required=True, help="a trained model; repeat for several (keys switch between them)")
    p.add_argument("--camera", type=int, default=0, help="camera number for OpenCV (default: 0)")
    p.add_argument("--source", metavar="FILE", help="play this video as the camera (headless machines, tests)")
    p.add_argument("--output", metavar="FILE", help="also record the stylised stream to this video file")
    p.add_argument("--window", action=argparse.BooleanOptionalAction, default=None, help="show a window (default: yes, unless --output is given)")
    p.add_argument("--style", metavar="PAINTING", action="append", default=[], help="AdaIN models: the painting(s) to use")
    add_config_arguments(p, WebcamConfig, group_title="live")
    add_config_arguments(p, api.method_config("apply"), group_title="model", only=MODEL_OPTIONS)
    p.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    WebcamConfig = api.webcam_config_class()
    from .progress import ProgressRenderer

    config = config_from_args(WebcamConfig, args)
    apply = config_from_mapping(api.method_config("apply"), {n: getattr(args, n) for n in MODEL_OPTIONS if hasattr(args, n)})
    window = args.window if args.window is not None else args.output is None
    renderer = ProgressRenderer(enabled=not getattr(args, "quiet", False), unit="frame", desc="webcam")
    try:
        stats = api.run_webcam(args.model, apply=apply, config=config, camera=args.camera, source=args.source, output=args.output,
                           window=window, styles=args.style, callback=renderer)
    finally:
        renderer.close()
    where = f" to {args.output}" if args.output else ""
    print(f"{stats.frames} frames{where} in {stats.seconds:.1f} s ({stats.fps:.1f} fps)", file=sys.stderr)
    return 0
