"""The styles of feed-forward models at apply time: which style of a multi-style model
(``style_index``, ``style_mix``) and the weights of an AdaIN model's paintings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import torch

from ..errors import ConfigError

if TYPE_CHECKING:
    from .ff_apply import ApplyConfig

__all__ = ["parse_style_mix", "parse_weights", "model_styles", "style_choice"]


def parse_style_mix(text: str) -> dict[str, float]:
    """``"0:0.3,2:0.7"`` -> ``{"0": 0.3, "2": 0.7}`` (keys: style indices or names, resolved
    against the model by :func:`style_choice`); ``""`` -> ``{}``."""
    mix: dict[str, float] = {}
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        key, sep, value = part.rpartition(":")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not key or weight != weight:
            raise ConfigError(f"style_mix {text!r}: expected INDEX:WEIGHT,... e.g. 0:0.3,2:0.7", params="style_mix")
        if weight < 0:
            raise ConfigError(f"style_mix {text!r}: weight of {key} must be >= 0", params="style_mix")
        mix[key] = mix.get(key, 0.0) + weight
    if mix and sum(mix.values()) <= 0:
        raise ConfigError(f"style_mix {text!r}: the weights must not all be 0", params="style_mix")
    return mix


def parse_weights(text: str) -> list[float]:
    """``"0.7,0.3"`` -> ``[0.7, 0.3]``; ``""`` -> ``[]``."""
    try:
        values = [float(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"style_weights {text!r}: expected numbers, e.g. 0.7,0.3", params="style_weights") from None
    if any(v < 0 or v != v for v in values) or (values and sum(values) <= 0):
        raise ConfigError(f"style_weights {text!r}: weights must be >= 0 and not all 0", params="style_weights")
    return values


def model_styles(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The styles a multi-style model holds (index order), ``[]`` for other models."""
    return [dict(x) for x in meta.get("styles", [])]


def style_choice(meta: Mapping[str, Any], config: ApplyConfig) -> torch.Tensor | None:
    """The 1 x S style vector ``config`` asks of a multi-style model (None for other models,
    which then must not be asked for a style)."""
    from ..nets.multistyle import style_vector

    n = meta.get("net_config", {}).get("n_styles")
    if n is None:
        if config.style_index or config.style_mix:
            flag = "style_mix" if config.style_mix else "style_index"
            raise ConfigError(f"{flag}: this {meta.get('arch')} model holds one style (style_index and style_mix are for multi-style models)", params=(flag, "style_index", "style_mix"))
        return None
    names = {str(x.get("name")): int(x["index"]) for x in model_styles(meta)}
    mix: dict[int, float] = {}
    for key, weight in parse_style_mix(config.style_mix).items():
        if key.lstrip("-").isdigit():
            k = int(key)
        elif key in names:
            k = names[key]
        else:
            known = ", ".join(f"{i}:{name}" for name, i in names.items())
            raise ConfigError(f"style_mix names style {key!r}, which the model does not hold (styles: {known})", params="style_mix")
        mix[k] = mix.get(k, 0.0) + weight
    return style_vector(int(n), None if mix else config.style_index, mix or None)
