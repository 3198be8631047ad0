"""Style-transfer methods: each declares a frozen Config dataclass, its inputs and ``run()``,
and is registered by name (see :mod:`impasto.methods.registry`); the API, the CLI and the
service are built from that registry."""

from __future__ import annotations

from .registry import METHODS, Input, Method, get_method, method_names, register, unregister

__all__ = ["METHODS", "Input", "Method", "get_method", "method_names", "register", "unregister"]
