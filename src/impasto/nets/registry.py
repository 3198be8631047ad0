"""Generator architectures by name: what ``arch`` chooses and what a model file records.

Each architecture lives in one file of :mod:`impasto.nets` and registers itself there::

    register_arch("johnson", "Johnson et al. transformation network ...", TransformerNet,
                  defaults={"channels": [32, 64, 128], "n_res": 5, "separable": False})

``build`` is called with the JSON-friendly keyword arguments ``defaults`` (merged with
``synthesis`` for texture synthesis from noise alone, ``texture=True``; an architecture without
``synthesis`` cannot do it); the result must follow :class:`impasto.nets.protocol.Generator`.
The built-in architectures register when :mod:`impasto.nets` is imported (``johnson``,
``johnson-small``, ``texture``, in that order).
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..errors import ConfigError, ImpastoError, ModelFileError
from .protocol import check_generator

__all__ = ["ARCHS", "ArchSpec", "register_arch", "unregister_arch", "get_arch", "build_net", "net_from_config", "twin_net", "describe_arch", "synthesis_archs", "recipe_of"]

#: architecture name -> one-line description (the choices of ``arch``), in registration order
ARCHS: dict[str, str] = {}


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture: how to build it and its default configuration."""

    name: str
    description: str
    build: Callable[..., nn.Module]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    synthesis: Mapping[str, Any] | None = None  # overrides of ``defaults`` for texture synthesis
    twin: Mapping[str, Any] = field(default_factory=dict)  # overrides for throw-away twins (e.g. no pretrained encoder)
    recipe: str | None = None  # "module:ConfigClass:train_function" of an arch with its own training recipe
    paintings: bool = True  # its recipe learns from a folder of paintings as well as photos (False: photos alone)


_SPECS: dict[str, ArchSpec] = {}


def register_arch(
    name: str,
    description: str,
    build: Callable[..., nn.Module],
    *,
    defaults: Mapping[str, Any] | None = None,
    synthesis: Mapping[str, Any] | None = None,
    twin: Mapping[str, Any] | None = None,
    recipe: str | None = None,
    paintings: bool = True,
    replace: bool = False,
) -> ArchSpec:
    """Register a generator architecture under ``name`` (see the module docstring).

    ``build(**config)`` returns the network; ``defaults`` is the config of a fresh network (stored
    in model files as ``net_config``); ``synthesis``, if given, makes ``texture=True`` possible;
    ``twin`` overrides the config of throw-away twins (:func:`twin_net`: sizes, receptive field),
    e.g. random encoder weights where the real ones come from the weights manager; ``recipe``
    (``"module:ConfigClass:train_function"``) names the training recipe of an architecture that
    learns any style from folders of photos and paintings (``train_function(config, photos,
    paintings, out_dir, *, callback, resume)``), instead of the one-style recipe; ``paintings=False``
    for a recipe that learns from photos alone (super-resolution: ``paintings`` is then None).
    A taken name raises ValueError unless ``replace``.
    """
    if not replace and name in _SPECS:
        raise ValueError(f"an architecture named {name!r} is already registered")
    spec = ArchSpec(name, description, build, dict(defaults or {}), None if synthesis is None else dict(synthesis), dict(twin or {}), recipe, paintings)
    _SPECS[name] = spec
    ARCHS[name] = description
    return spec


def unregister_arch(name: str) -> None:
    """Remove an architecture (tests and plugins that registered a temporary one)."""
    _SPECS.pop(name, None)
    ARCHS.pop(name, None)


def _unknown(arch: str) -> ConfigError:
    close = difflib.get_close_matches(arch, list(ARCHS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown arch {arch!r}{hint}; choose from {', '.join(ARCHS)}", params="arch")


def get_arch(arch: str) -> ArchSpec:
    """The record of ``arch``; an unknown name raises ConfigError with a suggestion."""
    if arch not in _SPECS:
        raise _unknown(arch)
    return _SPECS[arch]


def describe_arch(name: str) -> str:
    """The one-line description of an architecture."""
    return ARCHS[name]


def recipe_of(arch: str) -> tuple[type, Callable[..., Any]] | None:
    """(config class, train function) of an architecture with its own recipe, else None."""
    import importlib

    spec = _SPECS.get(arch)
    if spec is None or spec.recipe is None:
        return None
    module, cls, fn = spec.recipe.split(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, cls), getattr(loaded, fn)


def synthesis_archs() -> list[str]:
    """The architectures that can synthesise a texture from noise alone (``texture=True``)."""
    return [name for name, spec in _SPECS.items() if spec.synthesis is not None]


def build_net(arch: str, *, texture: bool = False, overrides: Mapping[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A freshly initialised generator and the keyword arguments that rebuild it.

    ``texture=True`` (texture synthesis, no content image) needs an architecture registered with
    ``synthesis`` (``texture``). ``overrides`` replace entries of the configuration (e.g. a
    multi-style network's ``n_styles``).
    """
    spec = get_arch(arch)
    config = copy.deepcopy(dict(spec.defaults))
    if texture:
        if spec.synthesis is None:
            raise ConfigError(f"texture synthesis from noise needs arch {' or '.join(synthesis_archs())} (not {arch})", params="arch")
        config.update(copy.deepcopy(dict(spec.synthesis)))
    config.update(copy.deepcopy(dict(overrides or {})))
    return net_from_config(arch, config), config


def net_from_config(arch: str, config: dict[str, Any]) -> nn.Module:
    """Rebuild a generator from a model file's ``arch`` and ``net_config``."""
    spec = _SPECS.get(arch)
    if spec is None:
        raise ModelFileError(f"unknown architecture {arch!r} (known: {', '.join(ARCHS)})")
    try:
        net = spec.build(**config)
    except ImpastoError:
        raise  # already one line naming its parameters (e.g. an AdaIN model's encoder_weights)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"invalid network configuration for {arch}: {exc}") from None
    check_generator(net, arch)
    return net


def twin_net(arch: str, config: dict[str, Any]) -> nn.Module:
    """A network of the same architecture and configuration with throw-away weights, built
    without touching the global random state: for its sizes, noise and receptive field (the ONNX
    runner)."""
    spec = _SPECS.get(arch)
    with torch.random.fork_rng(devices=[]):
        return net_from_config(arch, {**config, **(dict(spec.twin) if spec is not None else {})}).eval()
