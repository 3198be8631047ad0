"""The method registry behind the API and the CLI: a toy method registered here appears in
``list_methods``, gets a JSON schema, runs through ``impasto.run`` and gets a complete CLI command
(positional inputs, options with help and defaults, -o) without any change to the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import torch

import impasto
from impasto import api
from impasto.cli.main import build_parser, main
from impasto.errors import ConfigError, UsageError
from impasto.methods import registry
from impasto.progress import StepEvent, emit


@dataclass(frozen=True)
class InvertConfig:
    """Options of the toy method."""

    amount: float = field(default=1.0, metadata={"help": "how far towards the negative, 0..1"})
    steps: int = field(default=3, metadata={"help": "progress steps to report", "short": "-n"})
    mode: str = field(default="rgb", metadata={"help": "what to invert", "choices": ("rgb", "luma")})

    def __post_init__(self) -> None:
        if not 0 <= self.amount <= 1:
            raise ConfigError(f"amount must be in [0, 1], got {self.amount}", params="amount")


class InvertMethod:
    """A toy method: blends the photo with its negative."""

    name = "invert"
    summary = "blend the photo with its negative (a test method)"
    Config = InvertConfig
    inputs = (registry.Input("content", "image", "the photo"),)

    def run(self, config, inputs, *, callback=None):
        image, alpha, info = api.load_input_image(inputs["content"], "content")
        for step in range(1, config.steps + 1):
            emit(callback, StepEvent(step=step, total=config.steps, losses={"total": 1.0 / step}))
        out = (1 - config.amount) * image + config.amount * (1 - image)
        return api.Result(image=out, alpha=alpha, manifest={"method": "invert", "config": api.config_to_dict(config), "content": info, "final_losses": {"total": 1.0 / config.steps}})


@pytest.fixture
def invert():
    registry.register(InvertMethod)
    yield InvertMethod
    registry.unregister("invert")


def test_builtin_methods_are_listed_and_described():
    names = impasto.list_methods()
    assert names[:3] == ["gatys", "reconstruct", "apply"]
    for name in names:
        schema = impasto.method_schema(name)
        assert schema["title"] == name and schema["description"]
        assert schema["additionalProperties"] is False and schema["properties"]
        assert schema["x-inputs"], f"{name} declares no inputs"
    gatys = impasto.method_schema("gatys")["properties"]
    assert gatys["edge"] == {"description": gatys["edge"]["description"], "type": "integer", "default": 512}
    assert "gram" in gatys["style_loss"]["enum"]


def test_a_registered_method_is_listed_described_and_runs(invert, tmp_path, write_image):
    assert "invert" in impasto.list_methods()
    schema = impasto.method_schema("invert")
    assert schema["properties"]["amount"]["default"] == 1.0 and schema["properties"]["mode"]["enum"] == ["rgb", "luma"]
    assert schema["x-inputs"] == [{"name": "content", "kind": "image", "description": "the photo", "required": True}]
    photo = write_image("p.png", 24, 32)
    events = []
    result = impasto.run("invert", content=str(photo), amount=0.25, callback=events.append)
    loaded = impasto.load_image(photo).image
    assert torch.allclose(result.image, 0.75 * loaded + 0.25 * (1 - loaded))
    assert [e.step for e in events if isinstance(e, StepEvent)] == [1, 2, 3]
    assert result.losses == {"total": pytest.approx(1 / 3)}
    out = result.save(tmp_path / "o.png")
    assert json.loads((tmp_path / "o.png.json").read_text())["config"]["amount"] == 0.25 and out.is_file()


def test_run_names_the_bad_parameter(invert):
    with pytest.raises(ConfigError, match=r"method invert has no input or option 'amout' \(did you mean 'amount'\?\)"):
        impasto.run("invert", content="x.png", amout=0.5)
    with pytest.raises(UsageError, match="method invert needs content"):
        impasto.run("invert", amount=0.5)
    with pytest.raises(ConfigError, match=r"^amount must be in \[0, 1\], got 2") as info:
        impasto.run("invert", content="x.png", amount=2)
    assert info.value.params == ("amount",) and info.value.with_flags() == "--amount must be in [0, 1], got 2"
    with pytest.raises(UsageError, match=r"unknown method 'invret' \(did you mean 'invert'\?\)"):
        impasto.run("invret", content="x.png")
    with pytest.raises(UsageError, match="config: expected a InvertConfig"):
        impasto.run("invert", content="x.png", config=impasto.api.method_config("gatys")())


def test_a_registered_method_gets_a_cli_command(invert, tmp_path, write_image, capsys):
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert "invert" in sub.choices
    helptext = sub.choices["invert"].format_help()
    for text in ("content", "--amount", "how far towards the negative, 0..1 (default: 1.0)", "-n", "--mode", "{rgb,luma}", "-o OUTPUT"):
        assert text in helptext
    photo = write_image("p.png", 24, 32)
    out = tmp_path / "neg.png"
    assert main(["invert", str(photo), "-o", str(out), "--amount", "0.5", "-q"]) == 0
    manifest = json.loads((tmp_path / "neg.png.json").read_text())
    assert manifest["config"] == {"amount": 0.5, "steps": 3, "mode": "rgb"} and manifest["output"] == str(out)
    assert "wrote" in capsys.readouterr().err
    assert main(["invert", str(photo), "-o", str(tmp_path / "bad.png"), "--amount", "3", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["impasto: error: --amount must be in [0, 1], got 3.0"]  # the flag, not the parameter
    assert not (tmp_path / "bad.png").exists()


def test_registration_is_checked():
    class NoConfig:
        name, summary, inputs = "broken", "x", ()

        def run(self, config, inputs, *, callback=None):
            return None

    with pytest.raises(TypeError, match="has no 'Config'"):
        registry.register(NoConfig)

    @dataclass
    class Mutable:
        x: int = 1

    class Unfrozen(NoConfig):
        Config = Mutable

    with pytest.raises(TypeError, match="Config must be a frozen dataclass"):
        registry.register(Unfrozen)

    class Clash(InvertMethod):
        inputs = (registry.Input("amount", "image", "clashes with an option"),)

    with pytest.raises(TypeError, match="input 'amount' is also an option"):
        registry.register(Clash)

    class Taken(InvertMethod):
        name = "gatys"

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Taken)
    with pytest.raises(ValueError, match="kind must be one of"):
        registry.Input("x", "video", "not a kind yet")


def test_stylize_is_a_thin_wrapper_of_run(tmp_path):
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 40, 48, generator=g)
    style = torch.rand(1, 3, 40, 40, generator=g)
    kw = dict(edge=48, iterations=3, encoder="tiny_vgg", weights="random")
    a = impasto.stylize(content, style, **kw)
    b = impasto.run("gatys", content=content, style=style, **kw)
    assert torch.equal(a.image, b.image) and a.losses == b.losses
