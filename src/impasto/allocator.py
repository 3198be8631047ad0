"""glibc allocator settings: process-wide, so only commands (``impasto.cli``) apply them, never the
library; the library only asks which one is in force (:func:`allocator_mode`), because the faster
inference engine depends on it (see ``impasto.methods.ff_onnx``).

``IMPASTO_ALLOCATOR=system`` keeps glibc's defaults whatever the command would pick (the test
suite sets it, so that commands run inside it leave the test process as it was)."""

from __future__ import annotations

__all__ = ["tune_allocator", "lean_allocator", "allocator_mode", "LEAN_MMAP_THRESHOLD"]

_MODE = "system"


#: blocks of at least this many bytes get their own mapping under lean_allocator()
LEAN_MMAP_THRESHOLD = 1 << 20


def tune_allocator() -> bool:
    """Keep freed memory in this process for reuse (glibc only; a process-wide setting, so it is
    done by the commands, never by the library).

    The networks allocate and free many tensors of 32-512 MB per image. glibc serves blocks that
    big with fresh mmap()s, so every one is page-faulted in again (~60 ms per 128 MB here): more
    time than the arithmetic of the memory-bound layers. With mmap off and trimming raised, freed
    blocks are reused: about 1.7x faster inference and 1.3x faster training steps, at the cost of
    the process keeping its peak memory until it exits. Same effect for any program:
    ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4294967296``. Returns True if it was applied.
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    ok = mallopt(m_mmap_max, 0) == 1
    ok = mallopt(m_trim_threshold, 2**31 - 1) == 1 and ok
    if ok:
        _set_mode("tuned")
    return bool(ok)


def lean_allocator(threshold: int = LEAN_MMAP_THRESHOLD) -> bool:
    """Give freed memory back to the system at once, so the peak RSS is the peak of live tensors
    (glibc only; process-wide, so done by commands, never by the library).

    glibc maps big blocks on their own, but raises that threshold (up to 32 MB) each time such a
    block is freed; from then on the 1-32 MB activations of one L-BFGS evaluation live in the heap,
    where the holes they leave are not always reusable by the next. Fixing the threshold at
    ``threshold`` bytes stops that: a 512x384 Gatys run on VGG19 peaks at 857-879 MB instead of
    1058-1107 MB (4 MB: 910, 16 MB: 983, 32 MB: 1063), at the price of page-faulting every big
    tensor in again (~25 % slower steps here). For runs where memory matters more than speed.
    Same effect for any program: ``MALLOC_MMAP_THRESHOLD_=1048576``. Returns True if applied.
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    m_mmap_threshold = -3
    ok = mallopt(m_mmap_threshold, int(threshold)) == 1
    if ok:
        _set_mode("lean")
    return bool(ok)


def allocator_mode() -> str:
    """Which setting this process applied: ``"tuned"``, ``"lean"`` or ``"system"`` (glibc's own)."""
    return _MODE


def _set_mode(mode: str) -> None:
    global _MODE
    _MODE = mode


def _mallopt():  # type: ignore[no-untyped-def]
    """glibc's ``mallopt`` (None elsewhere, and under ``IMPASTO_ALLOCATOR=system``)."""
    import ctypes
    import ctypes.util
    import os
    import sys

    if os.environ.get("IMPASTO_ALLOCATOR", "").strip().lower() == "system":
        return None
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.mallopt
    except (OSError, AttributeError):
        return None
