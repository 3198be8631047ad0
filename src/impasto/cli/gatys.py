"""``impasto gatys``: optimisation-based style transfer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import api
from ..config import add_config_arguments, config_from_args
from ..errors import UsageError
from .upscale import add_upscale_argument, finisher_from_args

__all__ = ["register", "run_command"]

EPILOG = """\
examples:
  impasto gatys examples/content/tubingen.jpg examples/style/starry_night.jpg -o out.png
  impasto gatys photo.jpg --style starry.jpg:0.7 --style scream.jpg:0.3 -o blend.png
  impasto gatys photo.jpg starry.jpg --preserve-colors luminance --edge 1024 -o big.png
  impasto gatys photo.jpg starry.jpg --style-layers relu1_1:0.2,relu3_1,relu5_1 --init noise
  impasto gatys photo.jpg starry.jpg --save-every 50 -o out.png   # out.step0050.png, ...
  impasto gatys --resume out.png.json                              # continue an interrupted run
  impasto gatys photo.jpg starry.jpg -o big.png --upscale models/x4 # finish at 4x the optimised size

Ctrl-C keeps the last finished step: OUT, OUT.json and OUT.resume.pt (the exact optimiser state);
--resume continues as if the run had never stopped (same image, same step count).

Styles take PATH[:WEIGHT[:SCALE]]. Layer lists take NAME[:WEIGHT],... (unknown names get a
"did you mean"). Weights are normalised per layer, so the defaults work for every encoder and size.
The output embeds all parameters (PNG text chunk) and OUT.json holds the full run manifest.
"""


def register(subparsers: Any) -> None:
    GatysConfig = api.method_config("gatys")
    p = subparsers.add_parser(
        "gatys",
        help="optimisation-based style transfer (Gatys et al.)",
        description="Optimise an image so its deep features match the photo's content and the painting's style.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("content", nargs="?", help="the photograph")
    p.add_argument("styles", nargs="*", metavar="style", help="style image(s): PATH[:WEIGHT[:SCALE]]")
    p.add_argument("--style", dest="extra_styles", action="append", default=[], metavar="PATH[:W[:S]]", help="another style image with blend weight and scale (repeatable)")
    p.add_argument("-o", "--output", default="out.png", help="output image; format from the extension (default: out.png)")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), default=8, help="bits per channel for PNG/TIFF output (default: 8)")
    p.add_argument("--resume", metavar="RUN.json", help="continue an interrupted run exactly where it stopped (its saved optimiser state, OUT.resume.pt; else its last snapshot)")
    add_upscale_argument(p)
    add_config_arguments(p, GatysConfig, group_title="method options")
    p.set_defaults(handler=run_command)


TUNE_MAX_EDGE = 1024


def _memory_bound(args: argparse.Namespace) -> bool:
    """Runs where memory matters more than speed: a budget or tiles were asked for, or the image
    is large (above TUNE_MAX_EDGE px). The allocator tuning keeps every freed block in the process,
    which doubled the peak of a tiled 4096 px run (4.6 -> 9.3 GB), so those runs (and resumed
    runs, whose size is in the manifest) get the lean allocator instead, which hands freed blocks
    back at once (see impasto.allocator)."""
    if str(getattr(args, "max_memory", "auto") or "auto") != "auto" or int(getattr(args, "tile", 0) or 0) > 0 or getattr(args, "resume", None):
        return True
    edges = [int(getattr(args, "edge", 0) or 0)]
    scales = str(getattr(args, "scales", "") or "")
    edges += [int(x) for x in scales.replace(" ", "").split(",") if x.isdigit()]
    return max(edges) > TUNE_MAX_EDGE


def run_command(args: argparse.Namespace) -> int:
    from .progress import ProgressRenderer, download_bar

    GatysConfig = api.method_config("gatys")

    quiet = getattr(args, "quiet", False)
    if getattr(args, "tune_allocator", True):  # in-process tests turn it off
        from .runtime import lean_allocator, tune_allocator

        if _memory_bound(args):
            lean_allocator()  # peak RSS = peak of live tensors (512x384: 857 vs 1058-1107 MB, ~25 % slower steps)
        else:
            tune_allocator()  # ~11 % faster L-BFGS steps at 512 px (benchmarks/bench_gatys.py)
    if args.resume:
        manifest = api.load_manifest(args.resume)
        content = args.content or manifest["content"]["path"]
        styles = [f"{s['path']}:{s['weight']}:{s['scale']}" for s in manifest["styles"]]
        out = Path(args.output if args.output != "out.png" else manifest.get("output", args.output))
        given = {k: v for k, v in vars(args).items() if k in GatysConfig.__dataclass_fields__}
        config_kwargs = given
    else:
        if not args.content:
            raise UsageError("give a CONTENT image and at least one STYLE image (or --resume RUN.json)")
        styles = list(args.styles) + list(args.extra_styles)
        if not styles:
            raise UsageError("give at least one STYLE image (positional or --style PATH)")
        content = args.content
        out = Path(args.output)
        config_kwargs = {}
    api.check_output(out)
    finisher = finisher_from_args(args)
    renderer = ProgressRenderer(enabled=not quiet)
    if args.resume:
        result = api.stylize(content, styles, resume=args.resume, callback=renderer, snapshot_path=out, download_progress=download_bar("weights", not quiet), **config_kwargs)
    else:
        config = config_from_args(GatysConfig, args)
        _print_precision_tip(config, quiet)
        result = api.stylize(content, styles, config=config, callback=renderer, snapshot_path=out, download_progress=download_bar("weights", not quiet))
    renderer.close()
    for note in result.manifest.get("content", {}).get("notes", []):
        print(f"note: {args.content}: {note}", file=sys.stderr)
    status = result.manifest.get("status")
    if finisher is not None and status not in ("interrupted", "non-finite"):  # an unfinished run stays resumable at its size
        result = finisher.result(result)
    result.save(out, bit_depth=args.bit_depth)
    losses = result.manifest.get("final_losses", {})
    summary = ", ".join(f"{k} {v:.4g}" for k, v in losses.items() if k != "level")
    if status == "interrupted":
        print(f"interrupted: saved the current image to {out} (resume with: impasto gatys --resume {out}.json)", file=sys.stderr)
        return 130
    if status == "non-finite":
        print(f"stopped: the loss became non-finite; saved the last finite image to {out} (try a lower --lr)", file=sys.stderr)
        return 1
    print(f"wrote {out} ({result.manifest.get('time_s', 0):.1f} s; {summary})", file=sys.stderr)
    return 0


def _print_precision_tip(config: Any, quiet: bool) -> None:
    """One line when ``--precision auto`` keeps this run in fp32 on a CPU with native bfloat16."""
    if quiet:
        return
    tip = api.precision_tip(config, "gatys")
    if tip:
        print(f"tip: {tip}", file=sys.stderr)
