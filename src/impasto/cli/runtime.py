"""Process-wide runtime settings that only commands (never the library) may change: the glibc
allocator settings live in :mod:`impasto.allocator` (the library reads which one is in force)."""

from __future__ import annotations

from ..api import LEAN_MMAP_THRESHOLD, allocator_mode, lean_allocator, tune_allocator

__all__ = ["tune_allocator", "lean_allocator", "allocator_mode", "LEAN_MMAP_THRESHOLD"]
