"""AdaIN decoder training: the paper's defaults, the loss goes down on tiny folders of photos and
paintings (nested, mixed formats, a corrupt file skipped), the run folder and model file, and a
resumed run equals an uninterrupted one bit for bit."""

from __future__ import annotations

import json

import pytest
import torch

from impasto.errors import ConfigError
from impasto.methods.adain_train import AdaINTrainConfig, train_adain
from impasto.methods.ff_model import load_model
from impasto.methods.ff_train import TrainConfig
from impasto.nets.adain import AdaINNet
from impasto.progress import MessageEvent, SnapshotEvent, StepEvent

TINY = dict(encoder="tiny_vgg", weights="random", train_size=32, batch_size=2, workers=0, preview_every=0)


class Crash(Exception):
    """Stands in for the process being killed (no cleanup, no checkpoint)."""


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_defaults_follow_the_paper_and_bad_settings_are_refused():
    c = AdaINTrainConfig()
    assert isinstance(c, TrainConfig)
    assert (c.arch, c.encoder, c.content_layers, c.style_layers) == ("adain", "vgg19", "relu4_1", "relu1_1,relu2_1,relu3_1,relu4_1")
    assert (c.style_weight, c.content_weight, c.tv_weight, c.lr, c.batch_size, c.train_size, c.steps) == (10.0, 1.0, 0.0, 1e-4, 8, 256, 160000)
    help_of = {f.name: f.metadata.get("help", "") for f in AdaINTrainConfig.__dataclass_fields__.values()}
    assert all(help_of.values()) and "AdaIN layer" in help_of["content_layers"]
    with pytest.raises(ConfigError, match="exactly one layer") as info:
        AdaINTrainConfig(content_layers="relu3_1,relu4_1")
    assert info.value.params == ("content_layers",)
    with pytest.raises(ConfigError, match="style_loss"):
        AdaINTrainConfig(style_loss="gram")


def test_style_layers_deeper_than_the_adain_layer_are_refused(tmp_path, folders):
    photos, paintings = folders
    with pytest.raises(ConfigError, match="relu5_1") as info:
        train_adain(AdaINTrainConfig(**TINY, steps=1, style_layers="relu1_1,relu5_1"), photos, paintings, tmp_path / "run")
    assert info.value.params == ("style_layers",)


def test_a_few_steps_lower_the_loss_and_the_run_folder_describes_the_model(tmp_path, folders):
    photos, paintings = folders
    config = AdaINTrainConfig(**{**TINY, "steps": 24, "lr": 2e-3, "lr_schedule": "constant", "log_every": 1, "preview_every": 24, "preview_count": 2})
    events = []
    model_path = train_adain(config, photos, paintings, tmp_path / "run", callback=events.append)
    log = _log(tmp_path / "run")
    assert [r["step"] for r in log] == list(range(1, 25))
    assert all({"total", "content", "style"} <= set(r) for r in log)
    assert all(abs(r["total"] - (r["content"] + 10.0 * r["style"])) <= 1e-4 * r["total"] for r in log)
    first, last = sum(r["total"] for r in log[:4]) / 4, sum(r["total"] for r in log[-4:]) / 4
    assert last < 0.85 * first, f"loss did not go down: {first:.3f} -> {last:.3f}"

    warnings = [e.text for e in events if isinstance(e, MessageEvent) and e.level == "warning"]
    assert any("zz_broken.png" in w for w in warnings), warnings
    assert any(isinstance(e, SnapshotEvent) for e in events)
    assert sorted(p.name for p in (tmp_path / "run" / "previews" / "step_000024").iterdir()) == ["00.png", "01.png"]
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert resolved["net"]["config"]["weights_id"] == "random:0" and resolved["encoder"]["weights_id"] == "random:0"

    data = torch.load(model_path, weights_only=True)
    assert data["arch"] == "adain" and data["style_name"] == "arbitrary" and data["style_sha256"] is None
    assert data["net_config"] == {"encoder": "tiny_vgg", "layer": "relu4_1", "weights": "random", "weights_id": "random:0", "pooling": "max", "preprocessing": "torchvision", "seed": 0}
    assert all(k.startswith("decoder.") for k in data["state_dict"])
    model = load_model(model_path)
    assert isinstance(model.net, AdaINNet) and not model.net.training
    painting = torch.rand(1, 3, 40, 40)
    y = model.net.generate(torch.rand(1, 3, 30, 44), style=model.net.prepare_style([painting]))
    assert y.shape == (1, 3, 30, 44) and 0.0 <= float(y.min()) and float(y.max()) <= 1.0


def test_resume_after_a_kill_equals_the_uninterrupted_run(tmp_path, folders):
    """Killed after step 4 of 5 with checkpoints every 3 steps: the resumed run repeats step 4 from
    the checkpoint of step 3 and ends with exactly the uninterrupted run's decoder and log."""
    photos, paintings = folders
    config = AdaINTrainConfig(**{**TINY, "steps": 5, "checkpoint_every": 3, "log_every": 1, "lr": 1e-3})
    whole = train_adain(config, photos, paintings, tmp_path / "whole")

    def kill_at_4(event):
        if isinstance(event, StepEvent) and event.step == 4:
            raise Crash

    with pytest.raises(Crash):
        train_adain(config, photos, paintings, tmp_path / "killed", callback=kill_at_4)
    assert not (tmp_path / "killed" / "model.pt").exists()
    ckpt = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3 and all(k.startswith("decoder.") for k in ckpt["model"])
    resumed = train_adain(config, photos, paintings, tmp_path / "killed", resume=True)
    a, b = torch.load(whole, weights_only=True)["state_dict"], torch.load(resumed, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("elapsed_s", "images_per_s")} for r in rs]  # noqa: E731
    assert strip(_log(tmp_path / "killed")) == strip(_log(tmp_path / "whole"))
    with pytest.raises(ConfigError, match="cannot resume with different settings"):
        train_adain(AdaINTrainConfig(**{**TINY, "steps": 6, "checkpoint_every": 3, "lr": 5e-3}), photos, paintings, tmp_path / "killed", resume=True)


def test_cli_trains_resumes_and_applies_an_adain_model(tmp_path, folders, capsys):
    from impasto.cli.main import main

    photos, paintings = folders
    run = tmp_path / "run"
    common = ["--encoder", "tiny_vgg", "--weights", "random", "--train-size", "32", "--batch-size", "2", "--workers", "0", "--preview-every", "0", "-q"]
    assert main(["train", "--arch", "adain", "--data", str(photos), "--style-data", str(paintings), "-o", str(run), "--steps", "2", "--checkpoint-every", "1", *common]) == 0
    # --resume finds the photos and the paintings in the run folder
    assert main(["train", "--resume", "-o", str(run), "--steps", "3", "-q"]) == 0
    assert json.loads((run / "config.json").read_text())["step"] == 3
    meta = load_model(run / "model.pt").meta
    assert meta["arch"] == "adain" and meta["steps"] == 3 and meta["net_config"]["weights_id"] == "random:0"
    painting = next(paintings.rglob("*.jpg"))
    assert main(["apply", str(run), str(next(photos.rglob("*.png"))), "-o", str(tmp_path / "out"), "--style", str(painting), "--alpha", "0.6", "-q"]) == 0
    capsys.readouterr()
    for argv, message in (
        (["train", "--arch", "adain", "--data", str(photos), "--style", str(painting), "-o", str(tmp_path / "x")], "give --style-data PAINTINGS_DIR instead of --style"),
        (["train", "--arch", "adain", "--data", str(photos), "-o", str(tmp_path / "x")], "--arch adain needs --data PHOTOS_DIR and --style-data PAINTINGS_DIR"),
        (["train", "--style-data", str(paintings), "--style", str(painting), "--data", str(photos), "-o", str(tmp_path / "x")], "--style-data is for --arch adain"),
    ):
        assert main([*argv, *common]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
