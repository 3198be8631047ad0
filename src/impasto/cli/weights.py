"""``impasto weights``: list, download, verify and import pretrained checkpoints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from .. import api
from ..errors import ChecksumError, UsageError, WeightsError

__all__ = ["register"]

EPILOG = """\
examples:
  impasto weights list                          what is known, what is cached
  impasto weights list --verify                 ... and check the SHA-256 of every cached file
  impasto weights download vgg19.torchvision    fetch (and verify) a checkpoint
  impasto weights download all                  fetch every known checkpoint
  impasto weights verify                        re-check all cached files (exit 1 on a mismatch)
  impasto weights import ~/Downloads/vgg19-dcbb9e9d.pth   offline: copy a file you fetched elsewhere
  impasto weights import neural-style-pt/models/vgg19-d01eb7cb.pth   neural-style-pt's Caffe VGG19

Files are kept in $IMPASTO_HOME/weights, or without IMPASTO_HOME in torch hub's cache
($TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints) under torch hub's file names,
so checkpoints torchvision already downloaded are reused. Every file is checked against its
recorded SHA-256 and size when it is downloaded, imported and loaded (a load re-hashes a file only
when its size, mtime, ctime or inode changed since it was last verified; `verify` always hashes).
CHECK "prefix": only the 8-hex SHA-256 prefix of the published file is known (the Caffe VGG
conversions); their neural-style-pt re-saves are recognised by full SHA-256. INPUT: the
preprocessing the weights expect (caffe: BGR 0-255 minus the mean; torchvision: RGB ImageNet).
"""


def register(subparsers: Any) -> None:
    """Add ``weights`` and its sub-commands to the CLI."""
    p = subparsers.add_parser(
        "weights",
        help="list, download, verify and import pretrained encoder weights",
        description="Manage the pretrained encoder checkpoints impasto uses (verified by SHA-256).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(handler=_help_handler(p))
    sub = p.add_subparsers(title="actions", dest="weights_action", metavar="ACTION")

    ls = sub.add_parser(
        "list",
        help="show known checkpoints and which are cached",
        description="Show every known checkpoint: name, architecture, size, cache state and licence.",
        epilog="examples:\n  impasto weights list\n  impasto weights list --verify",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ls.add_argument("--verify", action="store_true", help="hash cached files (slow for large files) instead of checking sizes only")
    ls.set_defaults(handler=_list)

    dl = sub.add_parser(
        "download",
        help="download and verify checkpoints",
        description="Download checkpoints into the cache, verifying size and SHA-256. Already cached valid files are not fetched again.",
        epilog="examples:\n  impasto weights download vgg19.torchvision\n  impasto weights download vgg16.torchvision resnet50.torchvision\n  impasto weights download all",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dl.add_argument("names", nargs="+", metavar="NAME", help="checkpoint names (see `impasto weights list`), or `all`")
    dl.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="network timeout per request (default: 30)")
    dl.set_defaults(handler=_download)

    vf = sub.add_parser(
        "verify",
        help="re-check cached files against their SHA-256",
        description="Hash cached checkpoints and compare with the recorded SHA-256 and size. Exit code 1 if any does not match or a named one is missing.",
        epilog="examples:\n  impasto weights verify\n  impasto weights verify vgg19.torchvision",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    vf.add_argument("names", nargs="*", metavar="NAME", help="checkpoints to check (default: every cached one)")
    vf.set_defaults(handler=_verify)

    im = sub.add_parser(
        "import",
        help="copy a checkpoint file you downloaded yourself into the cache",
        description=(
            "Verify FILE against a known checkpoint and copy it into the cache (for machines without "
            "internet access). The checkpoint is recognised from the file's SHA-256, else from its name."
        ),
        epilog="examples:\n  impasto weights import vgg19-dcbb9e9d.pth\n  impasto weights import model.pth --name resnet50.torchvision",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    im.add_argument("file", metavar="FILE", help="the checkpoint file")
    im.add_argument("--name", metavar="NAME", help="which checkpoint FILE is (default: recognise it)")
    im.set_defaults(handler=_import)


def _help_handler(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return handler


def _fmt_size(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f}"


def _state(spec: Any, *, deep: bool) -> tuple[str, bool]:
    """(cache column text, ok) for one record."""
    path = api.weights_cache_path(spec)
    if not path.is_file():
        return "no", True
    if not deep:
        size_ok = spec.size_fits(path.stat().st_size)
        return ("yes" if size_ok else "WRONG SIZE"), size_ok
    try:
        api.verify_weights(path, spec)
    except ChecksumError:
        return "MISMATCH", False
    return "verified", True


def _list(args: argparse.Namespace) -> int:
    rows = [("NAME", "ARCH", "MB", "CACHED", "CHECK", "INPUT", "LICENCE")]
    for spec in api.list_weights():
        text, _ = _state(spec, deep=args.verify)
        check = "sha256" if spec.check == "sha256" else "prefix"
        pre = "caffe" if api.is_caffe_weights(spec) else "torchvision"
        rows.append((spec.name, spec.arch, _fmt_size(spec.size), text, check, pre, spec.licence))
    last = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(last)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) if i < last else cell for i, cell in enumerate(row)).rstrip())
    print(f"\ncache: {api.weights_cache_dir()}")
    return 0


def _names(names: list[str]) -> list[Any]:
    if "all" in names:
        return api.list_weights()
    return [api.get_weights(n) for n in dict.fromkeys(names)]  # unknown names fail before any download


class _Bar:
    """A tqdm byte bar on stderr driven by ``(done, total)`` callbacks; closed explicitly."""

    def __init__(self, desc: str, enabled: bool) -> None:
        self.desc, self.enabled, self.bar = desc, enabled, None

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, disable=not self.enabled, leave=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _download(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    for spec in _names(args.names):
        bar = _Bar(spec.name, enabled=not getattr(args, "quiet", False))
        try:
            path = api.download_weights(spec, progress=bar, timeout=args.timeout)
        finally:
            bar.close()
        print(f"{spec.name}: {path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    specs = _names(args.names) if args.names else [s for s in api.list_weights() if api.weights_cache_path(s).is_file()]
    if not specs:
        print(f"no weights cached in {api.weights_cache_dir()}")
        return 0
    failed = 0
    for spec in specs:
        path = api.weights_cache_path(spec)
        if not path.is_file():
            print(f"{spec.name}: not cached ({path})")
            failed += 1
            continue
        try:
            api.verify_weights(path, spec)
        except ChecksumError as exc:
            print(f"{spec.name}: MISMATCH: {exc}")
            failed += 1
        else:
            print(f"{spec.name}: ok ({path})")
    return 1 if failed else 0


def _import(args: argparse.Namespace) -> int:
    src = Path(args.file).expanduser()
    if not src.is_file():
        raise WeightsError(f"{src}: no such file" if not src.exists() else f"{src}: not a file")
    if args.name:
        spec = api.get_weights(args.name)
    else:
        spec = api.identify_weights(src) or next((s for s in api.list_weights() if s.filename == src.name), None)
        if spec is None:
            raise WeightsError(
                f"{src}: not a known checkpoint (its SHA-256 and name match none of: "
                f"{', '.join(s.name for s in api.list_weights())}); to use it anyway pass it directly, e.g. --weights {src}"
            )
    path = api.import_weights(src, spec.name)
    print(f"{spec.name}: {path}")
    return 0
