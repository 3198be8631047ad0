"""Contract over every registered method: frozen Config dataclasses whose fields all have help
text, valid defaults, a JSON schema and CLI options generated from them, unset flags keep defaults;
a CLI command per method with every option as a flag; the training and apply configs too."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

import impasto
from impasto import api
from impasto.config import add_config_arguments, config_from_args, config_schema, config_to_dict


def _configs():
    for name in impasto.list_methods():
        cls = api.method_config(name)
        yield pytest.param(cls, id=f"{name}.{cls.__name__}")
    yield pytest.param(api.train_config_class(), id="train.TrainConfig")


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
    for name in impasto.list_methods():
        assert name in commands, f"method {name} has no command"
        dests = {a.dest for a in sub.choices[name]._actions}
        fields = {f.name for f in dataclasses.fields(api.method_config(name)) if f.metadata.get("cli", True) is not False}
        assert fields <= dests, f"impasto {name} lacks options {sorted(fields - dests)}"
