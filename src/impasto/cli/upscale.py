"""``impasto upscale``: super-resolution with a trained network (or a bicubic/lanczos baseline)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import api
from ..config import add_config_arguments, config_from_args
from ..errors import ImageError, OutputError, UsageError

#: what a folder input contributes (the photo formats impasto reads)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")

__all__ = ["register", "run_command", "add_upscale_argument", "finisher_from_args"]

EPILOG = """\
examples:
  impasto train --arch superres --scale 4 --data coco/train2014 -o models/sr4   # train a x4 network
  impasto upscale models/sr4 photo.jpg -o photo_x4.png
  impasto upscale models/sr4 a.jpg b.png photos/ -o big/            # several images: OUT is a folder
  impasto upscale models/sr4 huge.tif -o huge_x4.tif --tile 256 --bit-depth 16
  impasto upscale bicubic photo.jpg -o photo_bicubic.png --scale 4  # baselines: bicubic, lanczos

One image: OUT is the output file (or an existing folder: OUT/<name>_x<scale>.png). Several images
or a folder: OUT is a folder (created) of <name>_x<scale>.png. The output is exactly scale times
the input; an alpha channel is upscaled bicubically; the run's parameters are embedded as metadata.
Tiles (--tile) give the same result as the whole image. Unreadable inputs are reported and
skipped; the exit code is then 2.
"""


def add_upscale_argument(p: argparse.ArgumentParser) -> None:
    """``--upscale MODEL``: the finishing post-step of gatys, apply and video."""
    p.add_argument("--upscale", metavar="MODEL", help="finish the result at 2-8x its size: a super-resolution model (impasto train --arch superres; "
                   "model.pt or its folder) or bicubic / lanczos[:2|4|8] (default x4); recorded in the manifest under upscale")


def finisher_from_args(args: argparse.Namespace) -> Any:
    """The loaded ``--upscale`` finisher (None without the flag); a bad model fails here, before any work."""
    return api.load_finisher(getattr(args, "upscale", None), device=str(getattr(args, "device", None) or "auto"))


def register(subparsers: Any) -> None:
    UpscaleConfig = api.method_config("upscale")
    p = subparsers.add_parser(
        "upscale",
        help="upscale images x4/x8 with a super-resolution network (Johnson et al.) or bicubic/lanczos",
        description="Upscale images with a network trained by `impasto train --arch superres`, or with a classical baseline.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="super-resolution model (model.pt or its training folder), or bicubic / lanczos")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="images and/or folders of images")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="output file (one image) or folder (several)")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), default=8, help="bits per channel for PNG/TIFF output (default: 8)")
    add_config_arguments(p, UpscaleConfig, group_title="options")
    p.set_defaults(handler=run_command)


def _expand(images: list[str]) -> tuple[list[Path], bool]:
    """Every input file (folders scanned recursively, sorted) and whether OUT must be a folder."""
    files: list[Path] = []
    folder_input = False
    for raw in images:
        p = Path(raw)
        if p.is_dir():
            folder_input = True
            found = sorted((f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS), key=lambda f: f.relative_to(p).as_posix())
            if not found:
                raise UsageError(f"{p}: no images found in the folder")
            files += found
        else:
            files.append(p)
    return files, folder_input or len(files) > 1


def run_command(args: argparse.Namespace) -> int:
    config = config_from_args(api.method_config("upscale"), args)
    files, many = _expand(list(args.images))
    out = Path(args.output)
    if many or out.is_dir():
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out}: exists and is not a folder (several images need an output folder)")
    else:
        api.check_output(out)  # fail before any work
    folder = many or out.is_dir()
    if folder:
        out.mkdir(parents=True, exist_ok=True)
        api.check_output(out / "probe.png")
    failed: list[str] = []
    written: list[Path] = []
    taken: set[Path] = set()
    for src in files:
        try:  # a bad model fails here, on the first image, before any output is made
            result = api.run("upscale", config=config, model=args.model, image=str(src))
        except ImageError as exc:
            if not many:
                raise
            failed.append(str(exc))
            continue
        scale = result.manifest["scale"]
        target = out / f"{src.stem}_x{scale}.png" if folder else out
        k = 1
        while target in taken:
            target = out / f"{src.stem}_x{scale}_{k}.png"
            k += 1
        taken.add(target)
        result.save(target, bit_depth=args.bit_depth, sidecar=False)
        written.append(target)
        if not getattr(args, "quiet", False):
            m = result.manifest
            print(f"wrote {target} ({m['size'][0]}x{m['size'][1]}, x{m['scale']}, {m['time_s']:.2f} s{', tiled' if m['tile'] else ''})", file=sys.stderr)
    if failed:
        print(f"impasto: error: {len(failed)} input(s) could not be read:", file=sys.stderr)
        for message in failed:
            print(f"  {message}", file=sys.stderr)
        return 2
    return 0
