"""``impasto train``: train a feed-forward stylisation network for one style."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import api
from ..config import add_config_arguments, config_from_mapping
from ..errors import UsageError

__all__ = ["register", "run_command"]

EPILOG = """\
examples:
  impasto train --style starry.jpg --data coco/train2014 -o models/starry
  impasto train --style starry.jpg --data photos/ -o models/starry-small --arch johnson-small --steps 20000
  impasto train --style wall.jpg --texture --arch texture -o models/wall      # texture synthesis, no photos
  impasto train --style starry.jpg --data photos/ -o m --style-layers relu1_2:0.5,relu2_2,relu3_3,relu4_3
  impasto train --resume -o models/starry                                     # continue after a stop
  impasto monitor models/starry                                               # watch it in a browser

OUT_DIR receives model.pt (the final, self-describing model), checkpoint.pt + config.json (every
--checkpoint-every steps; --resume continues exactly from there), log.jsonl (mean losses every
--log-every steps) and previews/step_N/*.png. Ctrl-C saves a checkpoint of the last finished step.
Photos are found recursively (any mix of JPEG/PNG/WebP/TIFF/BMP/GIF; MS-COCO's layout works);
unreadable files are skipped and counted. Layer lists take NAME[:WEIGHT],...
"""


def register(subparsers: Any) -> None:
    TrainConfig = api.train_config_class()
    p = subparsers.add_parser(
        "train",
        help="train a fast feed-forward network for one style (Johnson et al.; texture networks)",
        description="Train a generator network that stylises any photo in one pass (or synthesises a texture).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--style", metavar="STYLE", help="the style image")
    p.add_argument("--data", metavar="PHOTOS_DIR", help="folder of training photos (searched recursively)")
    p.add_argument("-o", "--output", metavar="OUT_DIR", required=True, help="folder for the model, checkpoints, log and previews")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT_DIR from its last checkpoint (style, data and settings are read from OUT_DIR/config.json; --steps may be raised)")
    add_config_arguments(p, TrainConfig, group_title="training options")
    p.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from .progress import ProgressRenderer

    TrainConfig = api.train_config_class()

    quiet = bool(getattr(args, "quiet", False))
    out = Path(args.output)
    given = {name: getattr(args, name) for name in TrainConfig.__dataclass_fields__ if hasattr(args, name)}
    style, data = args.style, args.data
    if args.resume:
        saved = api.saved_training(out)
        config = config_from_mapping(TrainConfig, {**saved.get("config", {}), **given})
        style = style or (saved.get("style") or {}).get("path")
        data = data or saved.get("data")
    else:
        if not args.style:
            raise UsageError("give the style image with --style STYLE.jpg")
        config = config_from_mapping(TrainConfig, given)
        if not config.texture and not args.data:
            raise UsageError("give a folder of training photos with --data PHOTOS_DIR (or --texture --arch texture for texture synthesis)")
    from .apply import tune_allocator

    if getattr(args, "tune_allocator", True):  # see its docstring: ~1.3x faster steps on a CPU
        tune_allocator()
    renderer = ProgressRenderer(enabled=not quiet, unit="step", desc="training")
    try:
        model = api.train(config, style, data, out, callback=renderer, resume=args.resume)
    finally:
        renderer.close()
    print(f"wrote {model}", file=sys.stderr)
    return 0
