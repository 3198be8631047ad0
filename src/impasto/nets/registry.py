"""Generator architectures by name: what ``--arch`` chooses and what a model file records."""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from ..errors import ConfigError, ModelFileError
from .johnson import JOHNSON_PRESETS, TransformerNet
from .texture import TextureNet

__all__ = ["ARCHS", "build_net", "net_from_config", "describe_arch"]

#: architecture name -> one-line description
ARCHS: dict[str, str] = {
    "johnson": "Johnson et al. transformation network (32/64/128 channels, 5 residual blocks, instance norm)",
    "johnson-small": "slimmer Johnson network for CPUs/phones (16/32/64 channels, 3 depthwise-separable residual blocks, 5x5 outer convs)",
    "texture": "Ulyanov et al. multi-scale texture network (noise + downsampled content at 5 scales)",
}


def describe_arch(name: str) -> str:
    return ARCHS[name]


def build_net(arch: str, *, texture: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """A freshly initialised generator and the keyword arguments that rebuild it.

    ``texture=True`` (texture synthesis, no content image) needs ``arch="texture"``.
    """
    if arch not in ARCHS:
        close = difflib.get_close_matches(arch, list(ARCHS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown --arch {arch!r}{hint}; choose from {', '.join(ARCHS)}")
    if arch == "texture":
        config: dict[str, Any] = {"content": not texture, "scales": 5, "channels": 8, "noise_channels": 3}
    else:
        if texture:
            raise ConfigError(f"--texture synthesises from noise and needs --arch texture (not {arch})")
        config = dict(JOHNSON_PRESETS[arch])
        config["channels"] = list(config["channels"])
    return net_from_config(arch, config), config


def net_from_config(arch: str, config: dict[str, Any]) -> nn.Module:
    """Rebuild a generator from a model file's ``arch`` and ``net_config``."""
    try:
        if arch == "texture":
            return TextureNet(**config)
        if arch in ("johnson", "johnson-small"):
            return TransformerNet(**config)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"invalid network configuration for {arch}: {exc}") from None
    raise ModelFileError(f"unknown architecture {arch!r} (known: {', '.join(ARCHS)})")
