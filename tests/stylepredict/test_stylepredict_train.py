"""Style-prediction training: the paper's defaults, the loss goes down on tiny folders of photos and
paintings (nested, mixed formats, a corrupt file skipped), the run folder and model file, one
encoder for the loss and the predictor (or two when they differ), the api dispatches to the
recipe, and a resumed run equals an uninterrupted one bit for bit."""

from __future__ import annotations

import json

import pytest
import torch

from impasto.errors import ConfigError
from impasto.methods.ff_model import load_model
from impasto.methods.ff_train import TrainConfig
from impasto.methods.stylepredict_train import PerSampleGramTerm, StylePredictTrainConfig, train_stylepredict
from impasto.nets.stylepredict import StylePredictNet
from impasto.progress import MessageEvent, SnapshotEvent, StepEvent

TINY = dict(encoder="tiny_vgg", predictor_encoder="", predictor_layer="relu4_3", weights="random", train_size=32, batch_size=2, workers=0, preview_every=0)


class Crash(Exception):
    """Stands in for the process being killed (no cleanup, no checkpoint)."""


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_defaults_follow_the_paper_and_bad_settings_are_refused():
    c = StylePredictTrainConfig()
    assert isinstance(c, TrainConfig)
    assert (c.arch, c.encoder, c.predictor_encoder, c.predictor_layer, c.predictor_weights) == ("stylepredict", "vgg16", "inception_v3", "Mixed_6e", "")
    assert (c.content_layers, c.style_layers, c.style_loss) == ("relu3_3", "relu1_2,relu2_2,relu3_3,relu4_3", "gram")
    assert (c.content_weight, c.style_weight, c.tv_weight, c.lr, c.batch_size, c.train_size, c.steps) == (1.0, 10.0, 1.0, 1e-3, 8, 256, 160000)
    help_of = {f.name: f.metadata.get("help", "") for f in StylePredictTrainConfig.__dataclass_fields__.values()}
    assert all(help_of.values()) and "share the loss network" in help_of["predictor_encoder"]
    for bad, param in (({"style_loss": "mean_std"}, "style_loss"), ({"predictor_layer": "relu3_3,relu4_3"}, "predictor_layer"), ({"predictor_layer": " "}, "predictor_layer")):
        with pytest.raises(ConfigError) as info:
            StylePredictTrainConfig(**bad)
        assert info.value.params == (param,)


def test_paintings_smaller_than_the_predictor_accepts_are_refused(tmp_path, folders):
    photos, paintings = folders
    with pytest.raises(ConfigError, match="train_size must be at least 75 px for predictor_encoder inception_v3") as info:
        train_stylepredict(StylePredictTrainConfig(weights="random", train_size=64), photos, paintings, tmp_path / "run")
    assert info.value.params == ("train_size", "predictor_encoder")


def test_the_style_term_compares_each_sample_with_its_own_painting():
    term = PerSampleGramTerm(1.0, {"a": 1.0, "b": 3.0})
    assert term.layer_weights == {"a": 0.25, "b": 0.75}
    f = {"a": torch.rand(2, 4, 5, 5), "b": torch.rand(2, 6, 3, 3)}
    term.set_targets(f)
    from impasto.losses.terms import TermInputs

    same = term.value(TermInputs(image=torch.zeros(2, 3, 8, 8), encoder=None, features=f))
    swapped = term.value(TermInputs(image=torch.zeros(2, 3, 8, 8), encoder=None, features={k: v.flip(0) for k, v in f.items()}))
    assert float(same) == 0.0 and float(swapped) > 0.01


def test_a_few_steps_lower_the_loss_and_the_run_folder_describes_the_model(tmp_path, folders, tiny_arch):
    photos, paintings = folders
    config = StylePredictTrainConfig(**{**TINY, "arch": tiny_arch, "steps": 24, "lr": 2e-3, "lr_schedule": "constant", "log_every": 1, "preview_every": 24, "preview_count": 2})
    events = []
    model_path = train_stylepredict(config, photos, paintings, tmp_path / "run", callback=events.append)
    log = _log(tmp_path / "run")
    assert [r["step"] for r in log] == list(range(1, 25))
    assert all({"total", "content", "style", "tv"} <= set(r) for r in log)
    assert all(abs(r["total"] - (r["content"] + 10.0 * r["style"] + r["tv"])) <= 1e-4 * r["total"] for r in log)
    first, last = sum(r["total"] for r in log[:4]) / 4, sum(r["total"] for r in log[-4:]) / 4
    assert last < 0.7 * first, f"loss did not go down: {first:.3f} -> {last:.3f}"

    warnings = [e.text for e in events if isinstance(e, MessageEvent) and e.level == "warning"]
    assert any("zz_broken.png" in w for w in warnings), warnings
    assert any(isinstance(e, SnapshotEvent) for e in events)
    assert sorted(p.name for p in (tmp_path / "run" / "previews" / "step_000024").iterdir()) == ["00.png", "01.png"]
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert resolved["data"] == str(photos.resolve()) and resolved["style_data"] == str(paintings.resolve())
    assert resolved["net"]["config"]["weights_id"] == "random:0" and resolved["encoder"]["predictor"]["shared"] is True

    data = torch.load(model_path, weights_only=True)
    assert data["arch"] == tiny_arch and data["style_name"] == "arbitrary" and data["style_sha256"] is None
    assert {k: data["net_config"][k] for k in ("encoder", "layer", "weights", "weights_id", "preprocessing", "embedding", "channels")} == {
        "encoder": "tiny_vgg", "layer": "relu4_3", "weights": "random", "weights_id": "random:0", "preprocessing": "torchvision", "embedding": 100, "channels": [8, 16, 16],
    }
    assert data["state_dict"] and not any(k.startswith("encoder.") for k in data["state_dict"])
    model = load_model(model_path)
    assert isinstance(model.net, StylePredictNet) and not model.net.training
    y = model.net.generate(torch.rand(1, 3, 30, 44), style=model.net.prepare_style([torch.rand(1, 3, 40, 40)]))
    assert y.shape == (1, 3, 30, 44) and 0.0 <= float(y.min()) and float(y.max()) <= 1.0


def test_a_predictor_encoder_other_than_the_loss_network_and_the_api(tmp_path, folders, tiny_arch):
    import impasto

    photos, paintings = folders
    model_path = impasto.train(
        None, None, photos, tmp_path / "run", style_data=paintings,
        **{**TINY, "arch": tiny_arch, "steps": 2, "predictor_encoder": "vgg16", "predictor_layer": "relu2_2", "predictor_weights": "random"},
    )
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert resolved["encoder"]["name"] == "tiny_vgg" and resolved["encoder"]["predictor"]["name"] == "vgg16" and resolved["encoder"]["predictor"]["shared"] is False
    model = load_model(model_path)
    assert model.meta["net_config"]["encoder"] == "vgg16" and model.meta["net_config"]["layer"] == "relu2_2"
    assert model.net.bottleneck.in_features == 128  # vgg16's relu2_2, not tiny_vgg's


def test_resume_after_a_kill_equals_the_uninterrupted_run(tmp_path, folders, tiny_arch):
    """Killed after step 4 of 5 with checkpoints every 3 steps: the resumed run repeats step 4 from
    the checkpoint of step 3 and ends with exactly the uninterrupted run's weights and log."""
    photos, paintings = folders
    config = StylePredictTrainConfig(**{**TINY, "arch": tiny_arch, "steps": 5, "checkpoint_every": 3, "log_every": 1, "lr": 1e-3})
    whole = train_stylepredict(config, photos, paintings, tmp_path / "whole")

    def kill_at_4(event):
        if isinstance(event, StepEvent) and event.step == 4:
            raise Crash

    with pytest.raises(Crash):
        train_stylepredict(config, photos, paintings, tmp_path / "killed", callback=kill_at_4)
    assert not (tmp_path / "killed" / "model.pt").exists()
    ckpt = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3 and not any(k.startswith("encoder.") for k in ckpt["model"])
    resumed = train_stylepredict(config, photos, paintings, tmp_path / "killed", resume=True)
    a, b = torch.load(whole, weights_only=True)["state_dict"], torch.load(resumed, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("elapsed_s", "images_per_s")} for r in rs]  # noqa: E731
    assert strip(_log(tmp_path / "killed")) == strip(_log(tmp_path / "whole"))
    with pytest.raises(ConfigError, match="cannot resume with different settings"):
        train_stylepredict(StylePredictTrainConfig(**{**TINY, "arch": tiny_arch, "steps": 6, "checkpoint_every": 3, "lr": 5e-3}), photos, paintings, tmp_path / "killed", resume=True)
