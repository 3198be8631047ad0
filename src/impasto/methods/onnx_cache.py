"""The cache of ONNX exports that :mod:`.ff_onnx` fills: its entries, when each was last used,
pruning to a size budget, and clearing.

An entry is ``<model sha256 prefix>-<exporter stamp>.onnx`` with its record ``<same name>.json``
in :func:`cache_dir` (``impasto_home()/cache/onnx``). The record's modification time is the
entry's last use: :func:`mark_used` sets it when an entry is reused (the ``.onnx`` file itself
is never rewritten). After each new export :func:`prune` removes the least recently used
entries, file and record together, until the cache fits its budget (:func:`cache_budget`:
``IMPASTO_ONNX_CACHE_MAX``, a size such as ``500M``, ``2G`` or ``1.5GB`` with 1G = 1024M, ``0``
keeping only the export just written; else 2G).

An entry in use is never removed. A process using one holds a shared lock on its ``.onnx``
file (:func:`hold`, POSIX ``flock``) for as long as it may read it (a session of ``impasto
apply`` reads it again to tile a big image); removal takes an exclusive lock without waiting
and skips an entry it cannot lock, or whose file was replaced meanwhile (a fresh export). On
Windows, where an open file cannot be deleted, the open handle itself protects the entry.
Files another process removed meanwhile are skipped. Only names of the entries' form are
touched: other files in the folder, and the hidden temporary files of exports in progress,
are left alone, except temporary files over an hour old (an export killed before its rename,
by SIGKILL or a power cut), which :func:`prune` and :func:`clear` remove.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Collection, Iterator

from ..config import impasto_home
from ..errors import ConfigError

__all__ = [
    "CACHE_MAX_ENV",
    "DEFAULT_CACHE_MAX",
    "CacheEntry",
    "EntryHold",
    "cache_dir",
    "parse_size",
    "format_size",
    "cache_budget",
    "entries",
    "mark_used",
    "hold",
    "prune",
    "clear",
    "remove_stale_partials",
    "STALE_PARTIAL_AGE",
]

#: the environment variable that sets the cache's budget
CACHE_MAX_ENV = "IMPASTO_ONNX_CACHE_MAX"
#: the budget without it: 2G
DEFAULT_CACHE_MAX = 2 * 2**30

_ENTRY_NAME = re.compile(r"[0-9a-f]{32}-[0-9a-f]{12}")
#: the hidden temporary files of an entry's export or record (ff_onnx, impasto.atomic)
_PARTIAL_NAME = re.compile(r"\.[0-9a-f]{32}-[0-9a-f]{12}\..+\.(export\.onnx|part\.json)")
#: a temporary file older than this (seconds) belongs to an export that was killed
STALE_PARTIAL_AGE = 3600.0
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def cache_dir() -> Path:
    """Where exports of ``.pt`` models are cached: ``impasto_home()/cache/onnx``."""
    return impasto_home() / "cache" / "onnx"


def parse_size(text: str) -> int:
    """``"500M"``, ``"2G"``, ``"1.5GB"``, ``"1024"`` (bytes) -> bytes (1K = 1024). ValueError when
    ``text`` is not a size."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(n: float) -> str:
    """``n`` bytes for people, in the units :func:`parse_size` reads (1K = 1024): ``"7.1 MB"``."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def cache_budget() -> int:
    """The cache's budget in bytes: ``IMPASTO_ONNX_CACHE_MAX`` when set (ConfigError naming it
    when it is not a size), else :data:`DEFAULT_CACHE_MAX`."""
    text = os.environ.get(CACHE_MAX_ENV, "")
    if not text.strip():
        return DEFAULT_CACHE_MAX
    try:
        return parse_size(text)
    except ValueError:
        raise ConfigError(
            f"{CACHE_MAX_ENV}={text!r} is not a size: give bytes or a size like 500M, 2G or 1.5GB (0 keeps only the latest export)",
            params=CACHE_MAX_ENV,
        ) from None


@dataclass(frozen=True)
class CacheEntry:
    """One cached export: its ``.onnx`` file and record (either may be missing), their size
    together in bytes, its last use (seconds since the epoch), the SHA-256 of the model it was
    exported from (the record's, else the prefix in its name) and that model's path, as recorded."""

    name: str
    onnx: Path
    record: Path
    size: int
    last_used: float
    model_sha256: str
    model: str | None = None


def _entry(folder: Path, name: str) -> CacheEntry | None:
    onnx, record = folder / f"{name}.onnx", folder / f"{name}.json"
    size, times = 0, {}
    for path in (onnx, record):
        try:
            st = path.stat()
        except FileNotFoundError:  # not written yet, or removed meanwhile
            continue
        size += st.st_size
        times[path] = st.st_mtime
    if not times:
        return None
    described: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(record.read_text(encoding="utf-8"))
        described = loaded if isinstance(loaded, dict) else {}
    model_sha256 = described.get("model_sha256")
    return CacheEntry(
        name=name,
        onnx=onnx,
        record=record,
        size=size,
        last_used=times.get(record, times.get(onnx, 0.0)),
        model_sha256=model_sha256 if isinstance(model_sha256, str) else name.split("-")[0],
        model=described.get("model") if isinstance(described.get("model"), str) else None,
    )


def entries(folder: Path | None = None) -> list[CacheEntry]:
    """The entries of the cache (``folder``, default :func:`cache_dir`), least recently used first."""
    folder = cache_dir() if folder is None else folder
    try:
        names = {p.stem for p in folder.iterdir() if p.suffix in (".onnx", ".json") and _ENTRY_NAME.fullmatch(p.stem)}
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [e for e in (_entry(folder, name) for name in names) if e is not None]
    return sorted(found, key=lambda e: (e.last_used, e.name))


def mark_used(record: Path) -> None:
    """Make ``record``'s entry the most recently used (sets the record's modification time, one
    atomic call; a read-only cache keeps its times)."""
    with contextlib.suppress(OSError):
        os.utime(record)


def _same_file(f: IO[bytes], path: Path) -> bool:
    """Whether the open file ``f`` is still the file at ``path``."""
    try:
        here, there = os.fstat(f.fileno()), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _flock(f: IO[bytes], *, exclusive: bool) -> bool:
    """Lock ``f``: shared and waiting, or exclusive without waiting (False when another holds it).
    True where there are no locks (Windows, a file system without them)."""
    try:
        import fcntl  # POSIX only: imported here, so importing impasto works on Windows
    except ImportError:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
    except BlockingIOError:
        return False
    except OSError:  # no locks here: nothing to protect the entry with
        return True
    return True


class EntryHold:
    """Keeps a cache entry from being removed while it is used: a shared lock on its ``.onnx``
    file, released by :meth:`cleanup` (or when the object is collected)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file: IO[bytes] | None = file

    def cleanup(self) -> None:
        """Release the entry (closing the file releases the lock)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def hold(path: Path) -> EntryHold | None:
    """Hold the export at ``path`` (see :class:`EntryHold`); None when there is no file there, or
    it was removed or replaced while the lock was awaited."""
    try:
        file = open(path, "rb")  # noqa: SIM115 - kept open by the hold
    except OSError:
        return None
    _flock(file, exclusive=False)
    if not _same_file(file, path):
        file.close()
        return None
    return EntryHold(file)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    """Whether ``path`` may be removed now: nobody holds it (held exclusively meanwhile), or it
    is gone already."""
    if os.name == "nt":  # pragma: no cover - Windows: deleting an open file fails instead
        yield True
        return
    try:
        file = open(path, "rb")
    except FileNotFoundError:
        yield True
        return
    with file:
        yield _flock(file, exclusive=True) and _same_file(file, path)


def _remove(entry: CacheEntry, *, dry_run: bool = False) -> str | None:
    """Remove ``entry`` (its file, then its record); None when done (or gone already), else why not."""
    try:
        with _exclusive(entry.onnx) as free:
            if not free:
                return "in use"
            if not dry_run:
                entry.onnx.unlink(missing_ok=True)
        if not dry_run:
            entry.record.unlink(missing_ok=True)
    except PermissionError as exc:
        return "in use" if os.name == "nt" else f"cannot remove it: {exc.strerror or exc}"
    except OSError as exc:
        return f"cannot remove it: {exc.strerror or exc}"
    return None


def remove_stale_partials(folder: Path | None = None, *, max_age: float = STALE_PARTIAL_AGE) -> int:
    """Remove the temporary files of exports killed before their rename (hidden, of an entry's
    name, older than ``max_age`` seconds); the bytes freed."""
    folder = cache_dir() if folder is None else folder
    freed, now = 0, time.time()
    try:
        candidates = [p for p in folder.iterdir() if _PARTIAL_NAME.fullmatch(p.name)]
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for path in candidates:
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove
            st = path.stat()
            if now - st.st_mtime > max_age:
                path.unlink()
                freed += st.st_size
    return freed


def prune(budget: int, *, keep: Collection[str] = (), folder: Path | None = None) -> list[CacheEntry]:
    """Remove the least recently used entries, except those named in ``keep`` and those in use,
    until the entries take at most ``budget`` bytes (or none is left to remove), and the
    temporary files of killed exports. Returns the removed entries."""
    remove_stale_partials(folder)
    found = entries(folder)
    total = sum(e.size for e in found)
    removed = []
    for entry in found:
        if total <= budget:
            break
        if entry.name in keep or _remove(entry) is not None:
            continue
        total -= entry.size
        removed.append(entry)
    return removed


def clear(*, dry_run: bool = False, folder: Path | None = None) -> tuple[list[CacheEntry], list[tuple[CacheEntry, str]]]:
    """Remove every entry of the cache (with ``dry_run``, only say which would go): the removed
    entries, and those kept with the reason (``"in use"``, or why removing failed)."""
    removed, kept = [], []
    if not dry_run:
        remove_stale_partials(folder)
    for entry in entries(folder):
        reason = _remove(entry, dry_run=dry_run)
        if reason is None:
            removed.append(entry)
        else:
            kept.append((entry, reason))
    return removed, kept
