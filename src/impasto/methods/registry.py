"""The method registry: every way of making an image, by name, behind one protocol.

A method is a small object (usually a class with class attributes) that declares

- ``name``: a short lowercase word; it is also the CLI command and the service's path;
- ``summary``: one line for ``--help`` listings and ``GET /methods``;
- ``Config``: a frozen dataclass, the single source of its options' defaults and help text;
- ``inputs``: the files or images it takes (:class:`Input`), e.g. ``content`` and ``style``;
- ``run(config, inputs, *, callback=None, **context) -> Result``, which emits progress events.

The Python API (``impasto.list_methods``, ``method_schema``, ``run``), the CLI and the web service
are all built from this registry. Built-in methods are listed in :data:`METHODS`; other packages
add theirs through the entry-point group ``impasto.methods`` (see CONTRIBUTING.md), and code can
call :func:`register` directly.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Protocol, runtime_checkable

from ..errors import ConfigError, UsageError

__all__ = ["Input", "Method", "METHODS", "ENTRY_POINT_GROUP", "register", "unregister", "get_method", "method_names", "INPUT_KINDS"]

log = logging.getLogger(__name__)

#: what an input can be: one image; one or more images (e.g. blended styles); a trained model
#: file; any other file
INPUT_KINDS = ("image", "images", "model", "file")

#: the built-in methods: name -> "module:attribute"
METHODS: dict[str, str] = {
    "gatys": "impasto.methods.gatys_method:GatysMethod",
    "reconstruct": "impasto.methods.reconstruct:ReconstructMethod",
    "apply": "impasto.methods.ff_apply:ApplyMethod",
    "swap": "impasto.methods.swap:SwapMethod",
    "doodle": "impasto.methods.doodle:DoodleMethod",
    "upscale": "impasto.methods.upscale:UpscaleMethod",
}

ENTRY_POINT_GROUP = "impasto.methods"
_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


@dataclass(frozen=True)
class Input:
    """One input of a method: ``name`` is the keyword of ``impasto.run`` and the CLI positional."""

    name: str
    kind: str  # one of INPUT_KINDS
    help: str
    required: bool = True

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"Input {self.name!r}: kind must be one of {', '.join(INPUT_KINDS)}, got {self.kind!r}")


@runtime_checkable
class Method(Protocol):
    """What a registered method provides (class attributes plus ``run``).

    Optional: ``context`` (run-time extras ``run`` accepts), ``resolve_config``, and
    ``main_options`` (the options most people change: forms show these and fold the rest away).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    Config: ClassVar[type]
    inputs: ClassVar[tuple[Input, ...]]

    def run(self, config: Any, inputs: Mapping[str, Any], *, callback: Callable[[Any], None] | None = None, **context: Any) -> Any:
        """Make the image; returns a :class:`~impasto.methods.result.Result`."""
        ...


_registered: dict[str, Any] = {}
_plugins_loaded = False


def _check(method: Any) -> Any:
    """Validate a method object (or class: it is instantiated) and return the instance."""
    obj = method() if isinstance(method, type) else method
    where = getattr(obj, "__module__", "?") + "." + type(obj).__name__
    for attr in ("name", "summary", "Config", "inputs", "run"):
        if not hasattr(obj, attr):
            raise TypeError(f"method {where} has no {attr!r} (see impasto.methods.registry.Method)")
    if not isinstance(obj.name, str) or not _NAME.fullmatch(obj.name):
        raise TypeError(f"method {where}: name {obj.name!r} must be a short lowercase word (a CLI command)")
    if not (dataclasses.is_dataclass(obj.Config) and obj.Config.__dataclass_params__.frozen):  # type: ignore[attr-defined]
        raise TypeError(f"method {obj.name}: Config must be a frozen dataclass")
    fields = {f.name for f in dataclasses.fields(obj.Config)}
    for item in obj.inputs:
        if not isinstance(item, Input):
            raise TypeError(f"method {obj.name}: inputs must be Input records, got {item!r}")
        if item.name in fields:
            raise TypeError(f"method {obj.name}: input {item.name!r} is also an option of {obj.Config.__name__}")
    return obj


def register(method: Any, *, replace: bool = False) -> Any:
    """Add a method (an object or a class, which is instantiated); usable as a class decorator.

    A name that is taken raises ValueError unless ``replace`` is true.
    """
    obj = _check(method)
    if not replace and (obj.name in _registered or obj.name in METHODS):
        raise ValueError(f"a method named {obj.name!r} is already registered")
    _registered[obj.name] = obj
    return method


def unregister(name: str) -> None:
    """Remove a method added with :func:`register` (built-in methods stay)."""
    _registered.pop(name, None)


def _load_builtin(name: str) -> Any:
    module, _, attr = METHODS[name].partition(":")
    obj = _check(getattr(importlib.import_module(module), attr))
    _registered[name] = obj
    return obj


def _load_plugins() -> None:
    """Register the methods other packages declare in the ``impasto.methods`` entry-point group.

    A plugin that fails to load or clashes with a built-in name is skipped with a warning: it
    must not break the commands of everything else.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in METHODS:
            log.warning("ignoring plugin method %r from %s: the name belongs to a built-in method", ep.name, ep.value)
            continue
        try:
            obj = _check(ep.load())
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal
            log.warning("ignoring plugin method %r (%s): %s: %s", ep.name, ep.value, type(exc).__name__, exc)
            continue
        if obj.name != ep.name:
            log.warning("ignoring plugin method %r (%s): it calls itself %r", ep.name, ep.value, obj.name)
            continue
        _registered.setdefault(obj.name, obj)


def method_names() -> list[str]:
    """Every method name: the built-in ones first, then the plugins and registered ones (sorted)."""
    _load_plugins()
    extra = sorted(n for n in _registered if n not in METHODS)
    return list(METHODS) + extra


def get_method(name: str) -> Any:
    """The method called ``name``; an unknown name raises UsageError with a suggestion."""
    if name in _registered:
        return _registered[name]
    if name in METHODS:
        return _load_builtin(name)
    _load_plugins()
    if name in _registered:
        return _registered[name]
    known = method_names()
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UsageError(f"unknown method {name!r}{hint}; choose from {', '.join(known)}")


def split_arguments(method: Any, arguments: Mapping[str, Any], context: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Sort keyword arguments of ``impasto.run`` into (inputs, options, context) for ``method``;
    an unknown keyword raises ConfigError naming it (with a suggestion)."""
    input_names = [i.name for i in method.inputs]
    option_names = [f.name for f in dataclasses.fields(method.Config)]
    inputs: dict[str, Any] = {}
    options: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in arguments.items():
        if key in input_names:
            inputs[key] = value
        elif key in option_names:
            options[key] = value
        elif key in context:
            extra[key] = value
        else:
            known = input_names + option_names + list(context)
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"method {method.name} has no input or option {key!r}{hint}")
    missing = [i.name for i in method.inputs if i.required and inputs.get(i.name) is None]
    if missing:
        raise UsageError(f"method {method.name} needs {', '.join(missing)}")
    return inputs, options, extra
