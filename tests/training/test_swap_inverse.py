"""Style swap's inverse network (Chen & Schmidt 2016): ``impasto train --arch swap-inverse`` on tiny
folders of photos and paintings (the loss goes down, the model file holds the decoder only and
the encoder's weights_id, a resumed run equals an uninterrupted one bit for bit), and
``impasto swap PHOTO PAINTING MODEL``: the swapped features decoded in one pass, closer to them
than the photo itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from impasto import api
from impasto.cli.main import main
from impasto.errors import ConfigError, ModelFileError
from impasto.methods.ff_model import load_model
from impasto.methods.swapinverse_train import SwapInverseTrainConfig, swap_step, train_swapinverse
from impasto.nets.swapinverse import SwapInverseNet
from impasto.progress import StepEvent
from tests.adain.conftest import save_picture

TINY = dict(encoder="tiny_vgg", weights="random", train_size=32, batch_size=2, workers=0, preview_every=0)
FLAGS = ["--encoder", "tiny_vgg", "--weights", "random", "--train-size", "32", "--batch-size", "2", "--workers", "0", "-q"]


class Crash(Exception):
    """Stands in for the process being killed (no cleanup, no checkpoint)."""


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(autouse=True)
def _one_thread():
    """The networks here are tiny: one thread runs them faster than two (and a busy machine does
    not slow it down by an order of magnitude)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Five photos (40..56 x 48 px) and five paintings (48 x 44..60 px), as in the AdaIN tests."""
    root = tmp_path_factory.mktemp("swapinv_data")
    for i in range(5):
        save_picture(root / "photos" / f"p{i}.png", 40 + 4 * i, 48, seed=i)
        save_picture(root / "paintings" / f"s{i}.png", 48, 44 + 4 * i, seed=100 + i)
    return {"root": root, "photos": root / "photos", "paintings": root / "paintings"}


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Path:
    """A run folder trained for 200 steps (tiny_vgg, random weights, 32 px)."""
    run = tmp_path_factory.mktemp("swapinv_run") / "run"
    before = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMPASTO_HOME", str(tmp_path_factory.mktemp("impasto_home")))
        torch.set_num_threads(1)
        try:
            config = SwapInverseTrainConfig(**{**TINY, "steps": 200, "lr": 3e-3, "lr_schedule": "constant", "log_every": 50, "checkpoint_every": 0})
            train_swapinverse(config, data["photos"], data["paintings"], run)
        finally:
            torch.set_num_threads(before)
    return run


def test_defaults_follow_the_paper_and_bad_settings_are_refused():
    c = SwapInverseTrainConfig()
    assert (c.arch, c.encoder, c.content_layers, c.lr, c.steps, c.train_size) == ("swap-inverse", "vgg19", "relu3_1", 1e-3, 80000, 256)
    assert (c.patch_size, c.patch_stride, c.swap_fraction, c.style_weight) == (3, 1, 0.5, 0.0)
    for bad, param in ((dict(swap_fraction=1.5), "swap_fraction"), (dict(patch_size=2), "patch_size"), (dict(style_weight=10.0), "style_weight"),
                       (dict(content_layers="relu2_1,relu3_1"), "content_layers")):
        with pytest.raises(ConfigError) as info:
            SwapInverseTrainConfig(**bad)
        assert info.value.params == (param,)
    # the swapped steps: an exact, evenly spread share, a pure function of the step
    for f in (0.0, 0.25, 0.5, 0.3, 1.0):
        swapped = [swap_step(t, f) for t in range(1000)]
        assert sum(swapped) == round(1000 * f)
    assert [swap_step(t, 0.5) for t in range(4)] == [False, True, False, True]


def test_cli_trains_the_loss_goes_down_and_the_model_holds_the_decoder_only(tmp_path, data, capsys):
    run = tmp_path / "run"
    argv = ["train", "--arch", "swap-inverse", "--data", str(data["photos"]), "--style-data", str(data["paintings"]), "-o", str(run),
            "--steps", "30", "--log-every", "1", "--lr", "3e-3", "--lr-schedule", "constant", "--preview-every", "30", "--preview-count", "1", *FLAGS]
    assert main(argv) == 0
    log = _log(run)
    assert [r["step"] for r in log] == list(range(1, 31))
    assert all(abs(r["total"] - (r["content"] + 1e-3 * r["tv"])) <= 1e-4 * r["total"] for r in log)
    first, last = np.mean([r["total"] for r in log[:5]]), np.mean([r["total"] for r in log[-5:]])
    assert last < 0.7 * first, f"loss did not go down: {first:.3f} -> {last:.3f}"
    assert sorted(p.name for p in (run / "previews" / "step_000030").iterdir()) == ["00.png"]

    data_ = torch.load(run / "model.pt", weights_only=True)
    assert data_["arch"] == "swap-inverse" and data_["steps"] == 30
    assert data_["net_config"] == {"encoder": "tiny_vgg", "layer": "relu3_1", "weights": "random", "weights_id": "random:0", "pooling": "max",
                                   "preprocessing": "torchvision", "seed": 0, "patch_size": 3, "patch_stride": 1}
    assert data_["state_dict"] and all(k.startswith("decoder.") for k in data_["state_dict"])  # no encoder weights
    net = load_model(run).net
    assert isinstance(net, SwapInverseNet) and not net.training
    # other encoder weights than the decoder was trained against: refused in one line
    with pytest.raises(ModelFileError) as info:
        load_model(run, net_overrides={"seed": 1})
    assert "random:0" in str(info.value) and "random:1" in str(info.value) and "\n" not in str(info.value)
    assert info.value.params == ("encoder_weights",)

    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    helptext = capsys.readouterr().out
    assert "swap-inverse" in helptext and "--swap-fraction" in helptext


def test_swap_with_the_model_decodes_in_one_pass_closer_than_the_photo(tmp_path, data, trained, capsys):
    photo, painting = data["photos"] / "p0.png", data["paintings"] / "s2.png"  # the photo is 48x40 px
    out = tmp_path / "out.png"
    assert main(["-q", "swap", str(photo), str(painting), str(trained), "-o", str(out), "--edge", "48"]) == 0
    assert Image.open(out).size == Image.open(photo).size == (48, 40)
    manifest = json.loads(Path(f"{out}.json").read_text())
    assert manifest["inversion"] == "network" and manifest["model"]["weights_id"] == "random:0"
    ratios = []
    for c, s in (("p0", "s2"), ("p1", "s4"), ("p3", "s0")):
        events: list = []
        result = api.run("swap", content=data["photos"] / f"{c}.png", style=data["paintings"] / f"{s}.png", model=trained / "model.pt", edge=48, callback=events.append)
        assert not any(isinstance(e, StepEvent) for e in events)  # no optimisation steps: one pass
        photo_distance, network_distance = result.manifest["feature_distance"]
        assert network_distance < photo_distance, (c, s, photo_distance, network_distance)
        ratios.append(network_distance / photo_distance)
    assert np.mean(ratios) < 0.9, ratios
    # without a model, the manifest says the features were optimised into pixels
    plain = api.run("swap", content=photo, style=painting, encoder="tiny_vgg", weights="random", edge=48, iterations=0)
    assert plain.manifest["inversion"] == "optimisation" and "model" not in plain.manifest


def test_options_that_conflict_with_the_model_are_refused_in_one_line(tmp_path, data, trained, capsys):
    from impasto.features import random_init
    from impasto.features.registry import get_encoder_spec

    other = get_encoder_spec("tiny_vgg").build()
    random_init(other, seed=5)
    torch.save(other.state_dict(), tmp_path / "other.pth")
    base = ["-q", "swap", str(data["photos"] / "p0.png"), str(data["paintings"] / "s0.png"), str(trained), "-o", str(tmp_path / "x.png"), "--edge", "32"]
    for flags, option in ((["--encoder", "vgg16"], "--encoder"), (["--layer", "relu2_1"], "--layer"), (["--weights", str(tmp_path / "other.pth")], "--weights")):
        assert main([*base, *flags]) == 2, flags
        err = _error(capsys)
        assert err.startswith(f"impasto: error: {option}") or f" {option} " in err, err
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(SystemExit):
        main(["swap", "--help"])
    assert "content style [model]" in " ".join(capsys.readouterr().out.split())


def test_apply_paints_with_the_model_too(tmp_path, data, trained):
    written = api.apply(trained, [data["photos"] / "p1.png"], tmp_path, styles=[data["paintings"] / "s1.png"]).written
    assert len(written) == 1 and Image.open(written[0]).size == (48, 44)


def test_resume_after_a_kill_equals_the_uninterrupted_run(tmp_path, data):
    """Killed in step 4 of 5 with checkpoints every 3 steps: the resumed run repeats step 4 (a
    swapped step follows a plain one) from the checkpoint of step 3 and ends bit-identical."""
    config = SwapInverseTrainConfig(**{**TINY, "steps": 5, "checkpoint_every": 3, "log_every": 1, "lr": 1e-3})
    whole = train_swapinverse(config, data["photos"], data["paintings"], tmp_path / "whole")

    def kill_at_4(event):
        if isinstance(event, StepEvent) and event.step == 4:
            raise Crash

    with pytest.raises(Crash):
        train_swapinverse(config, data["photos"], data["paintings"], tmp_path / "killed", callback=kill_at_4)
    assert torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)["step"] == 3
    resumed = train_swapinverse(config, data["photos"], data["paintings"], tmp_path / "killed", resume=True)
    a, b = torch.load(whole, weights_only=True)["state_dict"], torch.load(resumed, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("elapsed_s", "images_per_s")} for r in rs]  # noqa: E731
    assert strip(_log(tmp_path / "killed")) == strip(_log(tmp_path / "whole"))
