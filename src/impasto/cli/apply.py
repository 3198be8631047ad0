"""``impasto apply``: stylise images with a trained feed-forward model."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import add_config_arguments, config_from_args

__all__ = ["register", "run_command", "tune_allocator"]

EPILOG = """\
examples:
  impasto apply models/starry/model.pt photo.jpg -o styled/
  impasto apply models/starry photos/ more.jpg -o styled/ --edge 1024        # folders too; model folder ok
  impasto apply model.pt big.tif -o out/ --tile 512 --overlap 64             # any size, constant memory
  impasto apply model.pt photo.jpg -o out/ --strength 0.7 --preserve-colors luminance
  impasto apply model.onnx photo.jpg -o out/                                  # ONNX Runtime (impasto export)
  impasto apply models/wall/model.pt -o out/ --size 1024x2048 --seed 3        # texture model: no inputs

The model file describes itself (architecture, style, training), so no other flags are needed.
Outputs are OUT_DIR/<name><suffix>.<format> with the photo's alpha channel and the parameters as
metadata. Unreadable inputs are reported and skipped; the exit code is then 2.
"""


def tune_allocator() -> bool:
    """Keep freed memory in this process for reuse (glibc only; a process-wide setting, so it is
    done here in the command, never by the library).

    The networks allocate and free many tensors of 32-512 MB per image. glibc serves blocks that
    big with fresh mmap()s, so every one is page-faulted in again (~60 ms per 128 MB here): more
    time than the arithmetic of the memory-bound layers. With mmap off and trimming raised, freed
    blocks are reused: about 1.7x faster inference and 1.3x faster training steps, at the cost of
    the process keeping its peak memory until it exits. Same effect for any program:
    ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4294967296``. Returns True if it was applied.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    ok = mallopt(m_mmap_max, 0) == 1
    ok = mallopt(m_trim_threshold, 2**31 - 1) == 1 and ok
    return bool(ok)


def register(subparsers: Any) -> None:
    from ..methods.feedforward import ApplyConfig

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
    add_config_arguments(p, ApplyConfig, group_title="options")
    p.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from ..methods.feedforward import ApplyConfig, apply_model
    from .progress import ProgressRenderer

    quiet = bool(getattr(args, "quiet", False))
    config = config_from_args(ApplyConfig, args)
    if getattr(args, "tune_allocator", True):  # in-process tests turn it off
        tune_allocator()
    renderer = ProgressRenderer(enabled=not quiet, unit="img", desc="stylising")
    try:
        result = apply_model(args.model, list(args.images), args.output, config=config, callback=renderer)
    finally:
        renderer.close()
    n = len(result.written)
    print(f"wrote {n} image(s) to {args.output} in {result.seconds:.1f} s", file=sys.stderr)
    if result.failed:
        print(f"impasto: error: {len(result.failed)} input(s) could not be read:", file=sys.stderr)
        for _, message in result.failed:
            print(f"  {message}", file=sys.stderr)
        return 2
    return 0
