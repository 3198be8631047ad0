"""The command of a registered method that has no hand-written shell: built from its declaration.

Inputs become positional arguments (in order), the Config's fields become options (with their
help and defaults), ``-o`` names the output; the result is saved with its manifest beside it
(``OUT.json``). A method registered by a plugin gets a complete command this way.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from .. import api
from ..config import add_config_arguments, config_from_args

__all__ = ["register_method"]

_NARGS = {"image": None, "model": None, "file": None, "images": "+"}


def register_method(subparsers: Any, name: str) -> None:
    """Add the command ``name`` for the registered method of that name."""
    config_cls = api.method_config(name)
    inputs = api.method_inputs(name)
    schema = api.method_schema(name)
    taken = {"output", "bit_depth"} & {f.name for f in dataclasses.fields(config_cls)}
    if taken:
        raise TypeError(f"method {name}: option(s) {', '.join(sorted(taken))} clash with the command's own -o/--bit-depth")
    usage_inputs = " ".join(i.name.upper() + ("..." if i.kind == "images" else "") for i in inputs)
    epilog = (
        f"example:\n  impasto {name} {usage_inputs} -o {name}.png\n\n"
        f"OUT is written with the run's parameters embedded, and OUT.json holds the full manifest."
    )
    p = subparsers.add_parser(name, help=schema["description"], description=schema["description"], epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    for item in inputs:
        nargs = _NARGS[item.kind]
        if not item.required:
            nargs = "*" if item.kind == "images" else "?"
        p.add_argument(item.name, nargs=nargs, help=f"{item.help} ({item.kind})")
    p.add_argument("-o", "--output", default=f"{name}.png", help=f"output image; format from the extension (default: {name}.png)")
    p.add_argument("--bit-depth", type=int, choices=(8, 16), default=8, help="bits per channel for PNG/TIFF output (default: 8)")
    add_config_arguments(p, config_cls, group_title="options")
    p.set_defaults(handler=_handler(name))


def _handler(name: str) -> Any:
    def run_command(args: argparse.Namespace) -> int:
        from .progress import ProgressRenderer

        config = config_from_args(api.method_config(name), args)
        out = api.check_output(args.output)
        inputs = {i.name: getattr(args, i.name) for i in api.method_inputs(name) if getattr(args, i.name) not in (None, [])}
        renderer = ProgressRenderer(enabled=not getattr(args, "quiet", False), desc=name)
        try:
            result = api.run(name, config=config, callback=renderer, **inputs)
        finally:
            renderer.close()
        result.save(out, bit_depth=args.bit_depth)
        losses = ", ".join(f"{k} {v:.4g}" for k, v in result.losses.items() if isinstance(v, (int, float)) and k != "level")
        took = result.manifest.get("time_s")
        detail = "; ".join(x for x in (f"{took:.1f} s" if isinstance(took, (int, float)) else "", losses) if x)
        print(f"wrote {out}" + (f" ({detail})" if detail else ""), file=sys.stderr)
        return 0

    return run_command
