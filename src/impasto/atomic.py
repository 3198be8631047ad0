"""Write files atomically: to a temporary file in the same folder, renamed at the end."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import OutputError

__all__ = ["atomic_path", "check_writable"]


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Fail early (before any work) when ``path`` cannot be written. Returns it as a Path."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise OutputError(f"{p}: is a directory, expected a file name")
    if not parent.exists():
        raise OutputError(f"{p}: cannot write: folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{p}: cannot write: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{p}: cannot write: folder {parent} is not writable")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    The temporary name keeps the suffix so libraries that pick a format from it still work.
    """
    final = check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".part{final.suffix}", dir=final.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
