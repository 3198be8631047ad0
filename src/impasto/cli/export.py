"""``impasto export``: export a trained model to ONNX or TorchScript."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run_command"]

EPILOG = """\
examples:
  impasto export models/starry/model.pt                        # -> models/starry/model.onnx
  impasto export models/starry/model.pt --format torchscript -o starry.torchscript.pt
  impasto apply models/starry/model.onnx photo.jpg -o out/     # run it with ONNX Runtime

The ONNX graph takes any batch, height and width (sides a multiple of 4, or 16 for texture
networks; `impasto apply` pads and crops) and carries the model's description as metadata.
`impasto apply --runtime onnx` tiles big images with exact whole-image statistics (tiled output
equals whole-image output), as the torch runtime does. The Python API, the service and video run
johnson and johnson-small .pt models in fp32 with ONNX Runtime on the CPU (runtime auto; see
`impasto apply --help`), exporting them once into impasto's cache (IMPASTO_HOME/cache/onnx, default ~/.impasto/cache/onnx; see
`impasto cache --help`); export yourself to ship or inspect the .onnx file. An ONNX export records
the SHA-256 of the model file it came from: `impasto apply model.pt` uses the model.onnx beside it
only while that matches.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a trained network to ONNX or TorchScript",
        description="Export a model trained by `impasto train` for ONNX Runtime or TorchScript.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model file (model.pt) or training folder")
    p.add_argument("-o", "--output", metavar="OUT", help="output file (default: next to the model, .onnx or .torchscript.pt)")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="export format (default: onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version, >= 17 (default: 17)")
    p.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    from .. import api

    path = api.export(args.model, args.output, format=args.format, opset=args.opset)
    print(f"wrote {path}", file=sys.stderr)
    return 0
