"""Remember which files were hashed, so a 548 MB checkpoint is not re-hashed on every start.

A small JSON record in the weights cache (``verified-files.json``) maps a file's absolute path to
its SHA-256 together with the file's identity at the time: size, mtime_ns, ctime_ns, inode and
device. :func:`file_sha256` returns the recorded digest while all five are unchanged and hashes
the file again as soon as any differs (a rewrite, a copy over it, a rename onto it, ``touch``).

Racy files: a file modified within the same clock tick as it was hashed could keep its mtime, so
(like Git's "racily clean" index entries) a file is only recorded once its mtime lies at least
``RACY_MARGIN_NS`` before the moment hashing began; a freshly written file is simply hashed again
next time. The record is written atomically (temporary file + rename); when the cache is not
writable nothing is recorded and every load hashes, as before.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from ..provenance import write_json

__all__ = ["RECORD_NAME", "RACY_MARGIN_NS", "MAX_ENTRIES", "file_sha256", "forget", "record_path"]

log = logging.getLogger(__name__)

RECORD_NAME = "verified-files.json"
#: a file whose mtime is this close to the hashing time is not recorded (see the module docstring)
RACY_MARGIN_NS = 2_000_000_000
#: the record keeps this many files (the most recently hashed)
MAX_ENTRIES = 64
_VERSION = 1


def record_path(cache: Path) -> Path:
    """Where the record lives inside the weights cache folder ``cache``."""
    return cache / RECORD_NAME


def _identity(st: os.stat_result) -> dict[str, int]:
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino, "device": st.st_dev}


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.debug("ignoring unreadable %s: %s", path, exc)
        return {}
    files = data.get("files") if isinstance(data, dict) and data.get("version") == _VERSION else None
    return files if isinstance(files, dict) else {}


def _save(path: Path, files: dict[str, Any]) -> None:
    if len(files) > MAX_ENTRIES:
        files = dict(list(files.items())[-MAX_ENTRIES:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"version": _VERSION, "files": files})
    except Exception as exc:  # noqa: BLE001 - the record is an optimisation; never fail a load over it
        log.debug("could not write %s: %s", path, exc)


def file_sha256(path: str | os.PathLike[str], cache: Path, hasher: Callable[[Path], str], *, force: bool = False) -> str:
    """The SHA-256 of ``path``: from the record in ``cache`` while the file is unchanged, else
    ``hasher(path)`` (then recorded). ``force=True`` always hashes (and refreshes the record)."""
    p = Path(path).expanduser().resolve()
    key = str(p)
    record = record_path(cache)
    before = p.stat()
    identity = _identity(before)
    files = _load(record)
    entry = files.get(key)
    if not force and isinstance(entry, dict) and all(entry.get(k) == v for k, v in identity.items()):
        digest = entry.get("sha256")
        if isinstance(digest, str) and len(digest) == 64:
            return digest
    started = time.time_ns()
    digest = hasher(p)
    if _identity(p.stat()) != identity:  # changed while being hashed: do not trust it for next time
        return digest
    updated = {k: v for k, v in files.items() if k != key}
    if identity["mtime_ns"] <= started - RACY_MARGIN_NS:  # else racy: modified too recently
        updated[key] = {**identity, "sha256": digest}
    if updated != files:
        _save(record, updated)
    return digest


def forget(path: str | os.PathLike[str], cache: Path) -> None:
    """Drop ``path`` from the record (e.g. after it failed verification)."""
    record = record_path(cache)
    files = _load(record)
    if files.pop(str(Path(path).expanduser().resolve()), None) is not None:
        _save(record, files)
