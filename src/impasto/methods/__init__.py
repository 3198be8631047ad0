"""Style-transfer methods: each declares a frozen Config dataclass and a run function."""

from __future__ import annotations

__all__ = ["METHODS"]

#: method name -> module path; the CLI and the service are built from this registry
METHODS: dict[str, str] = {
    "gatys": "impasto.methods.gatys",
    "reconstruct": "impasto.methods.reconstruct",
    "feedforward": "impasto.methods.feedforward",
}
