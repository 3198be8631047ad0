"""Turn a method's frozen Config dataclass into CLI options and a JSON schema.

The dataclass is the single source of truth for defaults: CLI flags are generated from its fields
(help text from ``field(metadata={"help": ...})``), and flags the user did not give do not override
the defaults (argparse.SUPPRESS).

Field metadata keys:
  help     help text (required for a good --help)
  flag     override the flag name (default: --field-name)
  choices  allowed values
  parse    callable str -> value for complex types (e.g. "relu1_1:0.2,relu2_1")
  metavar  metavar shown in --help
  cli      False to hide a field from the CLI
  short    an extra short flag, e.g. "-n"
  action   "append" to allow repeating the flag (collects a list, given to ``parse`` joined by ',')
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Collection, Mapping, TypeVar, Union, get_args, get_origin

from .errors import ConfigError

__all__ = ["add_config_arguments", "config_from_args", "config_from_mapping", "config_schema", "config_to_dict", "check_rules", "impasto_home"]

C = TypeVar("C")


def impasto_home() -> "Path":
    """Where impasto keeps its state (service jobs, flow caches): ``IMPASTO_HOME``, else ``~/.impasto``."""
    import os
    from pathlib import Path

    return Path(os.environ.get("IMPASTO_HOME") or Path.home() / ".impasto")


def check_rules(rules: "typing.Iterable[tuple[object, str | tuple[str, ...], str]]") -> None:
    """Raise ConfigError for the first ``(ok, param(s), message)`` rule whose ``ok`` is false.

    Messages name parameters (``"lr must be > 0, got 0"``); the CLI shows them as flags.
    """
    for ok, params, message in rules:
        if not ok:
            raise ConfigError(message, params=params)


def _flag(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def _base_type(tp: Any) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else str
    return tp


def _resolved_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, group_title: str | None = None, only: Collection[str] | None = None) -> None:
    """Add one option per field of the dataclass ``cls`` to ``parser`` (defaults shown, not applied);
    ``only``: just these fields."""
    hints = _resolved_hints(cls)
    target: Any = parser.add_argument_group(group_title) if group_title else parser
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli", True) is False or (only is not None and f.name not in only):
            continue
        tp = _base_type(hints[f.name])
        default = _default_of(f)
        shown = default
        if isinstance(default, (tuple, list)):
            shown = ",".join(str(x) for x in default) if default else "none"
        elif isinstance(default, Mapping):
            shown = ",".join(f"{k}:{v}" for k, v in default.items()) if default else "none"
        elif default == "":
            shown = "none"
        shown = f.metadata.get("default_shown", shown)  # e.g. "auto" for a None meaning "decided at run time"
        help_text = f.metadata.get("help", "")
        help_text = f"{help_text} (default: {shown})" if help_text else f"default: {shown}"
        help_text = help_text.replace("%", "%%")
        names = [_flag(f)] + ([f.metadata["short"]] if "short" in f.metadata else [])
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if "choices" in f.metadata:
            kwargs["choices"] = list(f.metadata["choices"])
        if "metavar" in f.metadata:
            kwargs["metavar"] = f.metadata["metavar"]
        elif "choices" not in f.metadata and tp in (int, float):
            kwargs["metavar"] = "N" if tp is int else "X"
        if tp is bool:
            kwargs.pop("metavar", None)
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.metadata.get("action") == "append":
            kwargs["action"] = "append"
        elif "parse" in f.metadata:
            kwargs["type"] = str
        elif tp in (int, float, str):
            kwargs["type"] = tp
        else:
            kwargs["type"] = str
        target.add_argument(*names, **kwargs)


def _convert(cls: type, name: str, value: Any) -> Any:
    f = {x.name: x for x in dataclasses.fields(cls)}[name]
    hints = _resolved_hints(cls)
    parse = f.metadata.get("parse")
    if isinstance(value, list) and f.metadata.get("action") == "append":
        value = ",".join(value) if parse else value
    if parse is not None and isinstance(value, str):
        try:
            return parse(value)
        except ConfigError:
            raise
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{name}: {exc}", params=name) from None
    tp = _base_type(hints[name])
    if tp in (int, float) and isinstance(value, str):
        try:
            return tp(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {value!r}", params=name) from None
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def config_from_mapping(cls: type[C], values: Mapping[str, Any]) -> C:
    """Build ``cls`` from a mapping; unknown keys are an error; values are converted and validated."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        import difflib

        hints = []
        for u in unknown:
            close = difflib.get_close_matches(u, sorted(names), n=1)
            hints.append(f"{u!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"unknown option(s) for {cls.__name__}: {', '.join(hints)}")
    kwargs = {k: _convert(cls, k, v) for k, v in values.items()}
    return cls(**kwargs)


def config_from_args(cls: type[C], args: argparse.Namespace) -> C:
    """Build ``cls`` from parsed CLI args: only the flags the user gave override the defaults."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}  # type: ignore[arg-type]
    return config_from_mapping(cls, given)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config (tuples become lists, paths strings)."""

    def clean(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [clean(x) for x in v]
        if isinstance(v, Mapping):
            return {str(k): clean(x) for k, x in v.items()}
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return config_to_dict(v)
        if isinstance(v, (str, int, float, bool)) or v is None:
            return v
        return str(v)

    return {f.name: clean(getattr(config, f.name)) for f in dataclasses.fields(config)}


def config_schema(cls: type) -> dict[str, Any]:
    """A JSON schema (draft 2020-12 subset) for the fields of ``cls``."""
    hints = _resolved_hints(cls)
    props: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        tp = _base_type(hints[f.name])
        js = {int: "integer", float: "number", bool: "boolean", str: "string"}.get(tp)
        entry: dict[str, Any] = {"description": f.metadata.get("help", "")}
        if js:
            entry["type"] = js
        if "choices" in f.metadata:
            entry["enum"] = list(f.metadata["choices"])
        d = _default_of(f)
        entry["default"] = list(d) if isinstance(d, tuple) else (dict(d) if isinstance(d, Mapping) else d)
        props[f.name] = entry
    return {"type": "object", "title": cls.__name__, "properties": props, "additionalProperties": False}
