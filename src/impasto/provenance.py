"""What a run records about itself: file hashes, library versions, JSON manifests written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Mapping

from .atomic import atomic_path

__all__ = ["sha256_file", "versions", "write_json", "peak_memory_mb", "thin_history"]

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    """Versions that matter for reproducing a run (impasto, Python, torch, NumPy, Pillow)."""
    import numpy
    import PIL
    import torch

    from ._version import __version__

    return {
        "impasto": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "platform": platform.platform(),
    }


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any], *, sort_keys: bool = False) -> None:
    """Write ``data`` as indented JSON, atomically (temporary file + rename)."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=sort_keys, default=str) + "\n", encoding="utf-8")


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MB); 0 where the platform cannot tell."""
    try:
        import resource  # POSIX only: imported here, so importing impasto works on Windows
    except ImportError:  # pragma: no cover - Windows
        return 0.0
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def thin_history(history: "list[dict[str, float]]", keep: int = 200) -> list[dict[str, float]]:
    """At most ``keep`` evenly spaced entries of a loss history (the last one always kept)."""
    if len(history) <= keep:
        return [dict(h) for h in history]
    step = len(history) / keep
    picked = [history[int(i * step)] for i in range(keep)]
    return [dict(h) for h in picked[:-1]] + [dict(history[-1])]
