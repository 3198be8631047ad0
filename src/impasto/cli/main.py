"""``impasto`` entry point: builds the sub-commands and maps errors to exit codes in one place."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from .._version import __version__
from ..errors import ImpastoError

__all__ = ["main", "entry", "build_parser"]

#: registered methods with a hand-written shell (batches of files, resuming, ...); every other
#: registered method, plugins included, gets the command built by impasto.cli.method
SHELLS = {
    "gatys": "impasto.cli.gatys",
    "reconstruct": "impasto.cli.reconstruct",
    "apply": "impasto.cli.apply",
    "doodle": "impasto.cli.doodle",
    "upscale": "impasto.cli.upscale",
}

#: commands that are tools rather than methods, each a module with register(subparsers)
TOOLS = (
    "impasto.cli.sweep",
    "impasto.cli.train",
    "impasto.cli.export",
    "impasto.cli.monitor",
    "impasto.cli.serve",
    "impasto.cli.video",
    "impasto.cli.webcam",
    "impasto.cli.weights",
    "impasto.cli.cache",
)

DESCRIPTION = """\
impasto renders a photograph in the style of a painting.

  impasto gatys photo.jpg painting.jpg -o out.png       optimise the pixels (Gatys et al.)
  impasto train --style painting.jpg --data photos/ -o model/   train a fast network per style
  impasto apply model/model.pt photo.jpg -o styled/     stylise in one pass with a trained network
  impasto weights download vgg19.torchvision           fetch the pretrained encoder
  impasto video clip.mp4 -o out.mp4 --model model/    a video, without flicker (or --style: optimised)
  impasto webcam --model model/                         live from a camera
  impasto serve                                         a web page and REST API at 127.0.0.1:8000
  impasto cache list                                    the ONNX exports apply keeps (cache clear: remove them)

Run `impasto COMMAND --help` for the options of each command.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line plus a hint (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="impasto", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"impasto {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", parser_class=_Parser)
    from .. import api
    from .method import register_method

    for method in api.list_methods():  # the methods, from the registry
        if method in SHELLS:
            importlib.import_module(SHELLS[method]).register(sub)
        else:
            register_method(sub, method)
    for name in TOOLS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a command not shipped in this build
                continue
            raise
        module.register(sub)
    for subparser in sub.choices.values():  # the global flags also work after the command
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and debug logging")
        subparser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 runtime failure, 2 bad input/usage, 130 Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s: %(message)s", force=True)
    logging.captureWarnings(True)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except ImpastoError as exc:
        if args.debug:
            raise
        print(f"impasto: error: {exc.with_flags()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("impasto: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        if args.debug:
            raise
        print("impasto: error: out of memory; try a smaller --edge or a --max-memory budget (tiled)", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the one place that turns crashes into a line
        if args.debug:
            raise
        print(f"impasto: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
