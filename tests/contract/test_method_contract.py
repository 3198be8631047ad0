"""Contract over every registered method: frozen Config dataclasses whose fields all have help
text, valid defaults, a JSON schema and CLI options generated from them, unset flags keep defaults."""

from __future__ import annotations

import argparse
import dataclasses
import importlib

import pytest

from impasto.config import add_config_arguments, config_from_args, config_schema, config_to_dict
from impasto.methods import METHODS


def _configs():
    for name, module in METHODS.items():
        mod = importlib.import_module(module)
        found = [obj for attr, obj in vars(mod).items() if attr.endswith("Config") and dataclasses.is_dataclass(obj) and obj.__module__ == mod.__name__]
        assert found, f"method {name} declares no Config"
        for cls in found:
            yield pytest.param(cls, id=f"{name}.{cls.__name__}")


@pytest.mark.parametrize("cls", list(_configs()))
def test_config_contract(cls):
    assert cls.__dataclass_params__.frozen
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli", True) is not False:
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
    default = cls()
    schema = config_schema(cls)
    assert set(schema["properties"]) == {f.name for f in dataclasses.fields(cls)}
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, cls)
    assert config_from_args(cls, parser.parse_args([])) == default  # unset flags keep the defaults
    assert config_to_dict(default)  # JSON-friendly


def test_every_method_has_a_command():
    from impasto.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = set(sub.choices)
    assert {"gatys", "reconstruct", "train", "apply", "export"} <= commands
