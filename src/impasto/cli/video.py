"""``impasto video``: stylise a video (or a folder of frames), consistent over time and resumable."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import api
from ..config import add_config_arguments, config_from_args, config_from_mapping
from ..errors import UsageError
from .upscale import add_upscale_argument, finisher_from_args

__all__ = ["register", "run_command", "FAST_OPTIONS", "OPTIM_OPTIONS"]

#: ApplyConfig options that make sense per frame (the rest are image-file options)
FAST_OPTIONS = ("style_index", "style_mix", "style_weights", "alpha", "style_edge", "strength", "runtime", "precision", "tile", "encoder_weights", "preserve_colors", "device")
#: GatysConfig options of the optimisation path (iterations, edge and seed are the video's own)
OPTIM_OPTIONS = ("content_weight", "style_weight", "tv_weight", "style_layers", "content_layers", "style_loss", "encoder", "weights", "pooling", "padding", "style_scale", "optimizer")

EPILOG = """\
examples:
  impasto video clip.mp4 -o styled.mp4 --model models/starry/model.pt      # fast: any trained network
  impasto video clip.mp4 -o styled.mp4 --model models/many --style-index 2  # a multi-style model
  impasto video clip.mp4 -o styled.mp4 --model models/adain --style monet.jpg
  impasto video clip.mp4 -o styled.mp4 --style starry.jpg --edge 256        # optimisation (Ruder et al.)
  impasto video frames/ -o out_frames/ --model m.pt --fps 24                # folders of frames, both ways
  impasto video clip.mp4 -o preview.mp4 --model m.pt --frames 48 --edge 480 # a quick preview

The fast path runs each frame through the network and (--consistency flow, the default) blends it
with the previous output warped by optical flow where tracking is confident, which removes most
flicker. Without --model each frame is optimised from the warped previous one with a temporal
loss. Flow is OpenCV's (no external binaries), computed once per clip and cached.

Frame rate, duration and orientation are kept and audio streams are copied. Finished frames go
to a work folder beside the output as they complete: after Ctrl-C or a crash, run the same
command again to continue. The output is written at the end, atomically, with OUTPUT.json
holding the options and `flicker` (the mean warping error between consecutive output frames over
reliably tracked pixels, beside the input clip's own).
"""


def register(subparsers: Any) -> None:
    VideoConfig = api.video_config_class()
    p = subparsers.add_parser(
        "video",
        help="stylise a video or folder of frames (temporally consistent, resumable)",
        description="Stylise a video with a trained network (--model) or by per-frame optimisation (--style), without flicker.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="a video file (anything FFmpeg reads), a folder of frames, or a pattern like frames/%%05d.png")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4 .mov .mkv .webm .avi) or a new folder for PNG frames")
    p.add_argument("--model", metavar="MODEL", help="a trained model (model.pt, .onnx, or a training folder): the fast path")
    add_upscale_argument(p)
    p.add_argument("--style", metavar="PAINTING", action="append", default=[], help="without --model: the painting to optimise towards (repeat to blend, PATH:WEIGHT); with an AdaIN model: its painting(s)")
    add_config_arguments(p, VideoConfig, group_title="video")
    add_config_arguments(p, api.method_config("apply"), group_title="fast path (--model)", only=FAST_OPTIONS)
    add_config_arguments(p, api.method_config("gatys"), group_title="optimisation path (--style without --model)", only=OPTIM_OPTIONS)
    p.set_defaults(handler=run_command)


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if hasattr(args, n)]


def run_command(args: argparse.Namespace) -> int:
    VideoConfig = api.video_config_class()
    from .progress import ProgressRenderer

    video = config_from_args(VideoConfig, args)
    if args.model:
        wrong = [n for n in _given(args, OPTIM_OPTIONS) if n not in FAST_OPTIONS]
        if wrong:
            raise UsageError(f"--{wrong[0].replace('_', '-')} is an optimisation option; it does nothing with --model")
        given = {n: getattr(args, n) for n in FAST_OPTIONS if hasattr(args, n)}
        apply = config_from_mapping(api.method_config("apply"), {**given, "seed": video.seed, "max_pixels": video.max_pixels})
        gatys = None
    else:
        if not args.style:
            raise UsageError("give --model MODEL (fast) or --style PAINTING (optimisation)")
        wrong = [n for n in _given(args, FAST_OPTIONS) if n not in OPTIM_OPTIONS and n not in ("preserve_colors", "device")]
        if wrong:
            raise UsageError(f"--{wrong[0].replace('_', '-')} is a --model option")
        given = {n: getattr(args, n) for n in (*OPTIM_OPTIONS, "preserve_colors", "device") if hasattr(args, n)}
        gatys = config_from_mapping(api.method_config("gatys"), {**given, "seed": video.seed, "max_pixels": video.max_pixels})
        apply = None
    finisher = finisher_from_args(args)
    renderer = ProgressRenderer(enabled=not getattr(args, "quiet", False), unit="frame", desc="video")
    try:
        result = api.render_video(args.input, args.output, model=args.model, style=args.style or None, config=video, apply=apply, gatys=gatys, callback=renderer, upscale=finisher)
    finally:
        renderer.close()
    f = result.flicker
    ratio = f"{f['output'] / f['input']:.2f}x the input's" if f.get("input") else "n/a"
    spf = result.manifest.get("seconds_per_frame")
    print(f"wrote {result.output} ({result.frames} frames, {spf:.2f} s/frame; flicker {f['output']:.4f}, {ratio} {f['input']:.4f})" if spf is not None
          else f"wrote {result.output} ({result.frames} frames; flicker {f['output']:.4f})", file=sys.stderr)
    return 0
