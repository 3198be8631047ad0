"""``impasto cache``: show and clear the cache of ONNX exports that ``impasto apply`` keeps."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from .. import api

__all__ = ["register"]

EPILOG = """\
examples:
  impasto cache list                 each cached export: model, size, last use; the total
  impasto cache list --json          the same as JSON (sizes in bytes)
  impasto cache clear --dry-run      what clearing would remove
  impasto cache clear                remove the cached exports

What lives there: a .pt model that runs with ONNX Runtime (`impasto apply MODEL.pt --runtime
onnx`; runtime auto in the Python API, `impasto serve` and `impasto video` for johnson,
johnson-small and superres models on the CPU) is exported to ONNX once, into
$IMPASTO_HOME/cache/onnx (default ~/.impasto/cache/onnx): one .onnx file per model file content
and exporter version, with a .json record that verifies it. A model.onnx beside model.pt (from
`impasto export`) is used instead and is not part of the cache. Removing cached exports is always
safe: the next run exports again (a few seconds per model).

The cache keeps itself within a budget: after each new export the least recently used exports
go until it fits. IMPASTO_ONNX_CACHE_MAX sets the budget (bytes, or a size like 500M, 2G,
1.5GB, with 1G = 1024M; 0 keeps only the latest export; default 2G). An export that a running
process is using is never removed, by pruning or by `clear`.
"""


def register(subparsers: Any) -> None:
    """Add ``cache`` and its sub-commands to the CLI."""
    p = subparsers.add_parser(
        "cache",
        help="list or clear the cached ONNX exports of trained models",
        description="Show and clear the ONNX exports `impasto apply` caches for .pt models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(handler=lambda _args: p.print_help() or 2)  # no action: the help, exit code 2
    sub = p.add_subparsers(title="actions", dest="cache_action", metavar="ACTION")

    ls = sub.add_parser(
        "list",
        help="show the cached exports, least recently used first, and their total",
        description="Show each cached ONNX export (model SHA-256 prefix, size, last use, the model file it came from), least recently used (pruned first) first, then the total and the budget.",
        epilog="examples:\n  impasto cache list\n  impasto cache list --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ls.add_argument("--json", action="store_true", help="print JSON: folder, budget, total and entries (sizes in bytes, times ISO 8601)")
    ls.set_defaults(handler=_list)

    cl = sub.add_parser(
        "clear",
        help="remove the cached exports",
        description="Remove every cached ONNX export (file and record) and say how much that freed. Exports a running process uses are kept. Exit code 1 when one could not be removed.",
        epilog="examples:\n  impasto cache clear --dry-run\n  impasto cache clear",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cl.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    cl.set_defaults(handler=_clear)


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds).astimezone()


def _list(args: argparse.Namespace) -> int:
    budget = api.onnx_cache_budget()
    folder = api.onnx_cache_dir()
    found = api.onnx_cache_entries()
    total = sum(e.size for e in found)
    if args.json:
        rows = [{"name": e.name, "model_sha256": e.model_sha256, "size": e.size, "last_used": _when(e.last_used).isoformat(timespec="seconds"), "model": e.model} for e in found]
        print(json.dumps({"folder": str(folder), "budget": budget, "total": total, "entries": rows}, indent=2))
        return 0
    if not found:
        print(f"no ONNX exports cached in {folder}")
        return 0
    rows = [("MODEL", "SIZE", "LAST USED", "EXPORTED FROM")]
    rows += [(e.model_sha256[:12], api.format_size(e.size), _when(e.last_used).strftime("%Y-%m-%d %H:%M"), e.model or "?") for e in found]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join([*(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])), row[3]]).rstrip())
    print(f"\ntotal {api.format_size(total)} in {len(found)} export(s), least recently used first; budget {api.format_size(budget)} (IMPASTO_ONNX_CACHE_MAX)")
    print(f"cache: {folder}")
    return 0


def _clear(args: argparse.Namespace) -> int:
    folder = api.onnx_cache_dir()
    removed, kept = api.clear_onnx_cache(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for entry in removed:
        print(f"{verb} {entry.model_sha256[:12]}  {api.format_size(entry.size)}  {entry.model or ''}".rstrip())
    for entry, reason in kept:
        print(f"kept {entry.model_sha256[:12]}  {api.format_size(entry.size)}: {reason}", file=sys.stderr)
    freed = api.format_size(sum(e.size for e in removed))
    if not removed and not kept:
        print(f"no ONNX exports cached in {folder}")
    else:
        print(f"{'would free' if args.dry_run else 'freed'} {freed} ({len(removed)} export(s)) in {folder}")
    return 1 if any(reason != "in use" for _, reason in kept) else 0
