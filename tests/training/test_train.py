"""Feed-forward training: the loss goes down, a resumed run equals an uninterrupted one, the
model file describes itself, and the run folder holds what the monitor and --resume need."""

from __future__ import annotations

import json

import pytest
import torch

from impasto.errors import ConfigError, Interrupted, ModelFileError, UsageError
from impasto.methods.feedforward import MODEL_FORMAT, TrainConfig, load_model, train
from impasto.progress import MessageEvent, SnapshotEvent, StepEvent


class Crash(Exception):
    """Stands in for the process being killed (no cleanup, no checkpoint)."""


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _state(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_a_few_steps_lower_the_loss(tmp_path, photo_folder, style_file, tiny):
    config = TrainConfig(**{**tiny, "arch": "johnson-small", "steps": 24, "lr": 5e-3, "lr_schedule": "constant", "log_every": 1, "tv_weight": 0.0})
    train(config, style_file, photo_folder, tmp_path / "run")
    totals = [r["total"] for r in _log(tmp_path / "run")]
    assert len(totals) == 24
    first, last = sum(totals[:4]) / 4, sum(totals[-4:]) / 4
    assert last < 0.8 * first, f"loss did not go down: {first:.3f} -> {last:.3f}"


def test_resume_after_a_kill_equals_the_uninterrupted_run(tmp_path, photo_folder, style_file, tiny):
    """Bit-identical on the CPU with workers=0 (same thread count); the data order, crops, Adam
    state, schedule and RNG states all come back from the checkpoint."""
    config = TrainConfig(**{**tiny, "arch": "johnson-small", "steps": 6, "checkpoint_every": 2, "log_every": 1})
    whole = train(config, style_file, photo_folder, tmp_path / "whole")

    def kill_at_5(event):
        if isinstance(event, StepEvent) and event.step == 5:
            raise Crash
    with pytest.raises(Crash):
        train(config, style_file, photo_folder, tmp_path / "killed", callback=kill_at_5)
    assert not (tmp_path / "killed" / "model.pt").exists()
    assert torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)["step"] == 4
    resumed = train(config, style_file, photo_folder, tmp_path / "killed", resume=True)

    a, b = _state(whole), _state(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("elapsed_s", "images_per_s")} for r in rs]  # noqa: E731
    assert strip(_log(tmp_path / "killed")) == strip(_log(tmp_path / "whole")), "the log is not duplicated on resume"


def test_a_bf16_run_resumed_after_a_kill_equals_the_uninterrupted_bf16_run(tmp_path, photo_folder, style_file, tiny):
    """The kill lands between checkpoints; precision may change on resume (another machine), so
    resuming in bf16 must be asked for again, and then it is exact."""
    config = TrainConfig(**{**tiny, "arch": "johnson-small", "steps": 5, "checkpoint_every": 2, "log_every": 1, "precision": "bf16"})
    whole = train(config, style_file, photo_folder, tmp_path / "whole")

    def kill_at_4(event):
        if isinstance(event, StepEvent) and event.step == 4:
            raise Crash
    with pytest.raises(Crash):
        train(config, style_file, photo_folder, tmp_path / "killed", callback=kill_at_4)
    resumed = train(config, style_file, photo_folder, tmp_path / "killed", resume=True)
    a, b = _state(whole), _state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    in_fp32 = train(TrainConfig(**{**tiny, "arch": "johnson-small", "steps": 6, "checkpoint_every": 2, "log_every": 1, "precision": "fp32"}), style_file, photo_folder, tmp_path / "killed", resume=True)
    assert torch.load(in_fp32, weights_only=True)["steps"] == 6
    assert json.loads((tmp_path / "killed" / "config.json").read_text())["amp"] is None


def test_ctrl_c_saves_the_last_step_and_resume_continues(tmp_path, photo_folder, style_file, tiny):
    config = TrainConfig(**{**tiny, "arch": "texture", "steps": 4, "checkpoint_every": 0, "log_every": 1})
    whole = train(config, style_file, photo_folder, tmp_path / "whole")

    def ctrl_c_at_3(event):
        if isinstance(event, StepEvent) and event.step == 3:
            raise KeyboardInterrupt
    with pytest.raises(Interrupted, match="step 3"):
        train(config, style_file, photo_folder, tmp_path / "stopped", callback=ctrl_c_at_3)
    resumed = train(config, style_file, photo_folder, tmp_path / "stopped", resume=True)
    a, b = _state(whole), _state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_run_folder_contents_and_self_describing_model(tmp_path, photo_folder, style_file, tiny):
    config = TrainConfig(**{**tiny, "arch": "johnson-small", "steps": 2, "preview_every": 1, "preview_count": 2, "log_every": 1, "licence": "CC-BY 4.0, painter X"})
    events = []
    model_path = train(config, style_file, photo_folder, tmp_path / "run", callback=events.append)
    run = tmp_path / "run"
    assert model_path == run / "model.pt"
    assert sorted(p.name for p in (run / "previews" / "step_000002").iterdir()) == ["00.png", "01.png"]
    assert (run / "previews" / "step_000001").is_dir()
    resolved = json.loads((run / "config.json").read_text())
    assert resolved["config"]["arch"] == "johnson-small" and resolved["style"]["name"] == "style.png"
    assert resolved["step"] == 2
    assert any(isinstance(e, SnapshotEvent) for e in events)
    warnings = [e.text for e in events if isinstance(e, MessageEvent) and e.level == "warning"]
    assert any("skipped 1 unreadable" in w for w in warnings), warnings
    assert _log(run)[-1]["skipped"] >= 1

    raw = torch.load(model_path, weights_only=True)
    for key in ("format", "version", "arch", "net_config", "train_config", "style_name", "style_sha256", "steps", "licence", "notice", "state_dict"):
        assert key in raw, key
    assert raw["format"] == MODEL_FORMAT and raw["steps"] == 2 and raw["licence"] == "CC-BY 4.0, painter X"
    assert len(raw["style_sha256"]) == 64
    model = load_model(model_path)
    assert model.arch == "johnson-small" and not model.net.training
    with torch.no_grad():
        assert model.net(torch.rand(1, 3, 20, 28)).shape == (1, 3, 20, 28)


def test_texture_mode_trains_without_photos(tmp_path, style_file, tiny):
    config = TrainConfig(**{**tiny, "arch": "texture", "texture": True, "steps": 2, "preview_every": 2, "preview_count": 1})
    model_path = train(config, style_file, None, tmp_path / "tex")
    model = load_model(model_path)
    assert model.texture
    assert (tmp_path / "tex" / "previews" / "step_000002" / "00.png").is_file()
    with pytest.raises(ConfigError, match="needs arch texture") as info:
        TrainConfig(arch="johnson", texture=True)
    assert info.value.params == ("arch",) and "--arch texture" in info.value.with_flags()


def test_bad_model_files_raise_model_file_error(tmp_path, photo_folder, style_file, tiny):
    config = TrainConfig(**{**tiny, "arch": "johnson-small", "steps": 1})
    model_path = train(config, style_file, photo_folder, tmp_path / "run")
    data = model_path.read_bytes()
    cases = {
        "truncated.pt": data[: len(data) // 2],
        "text.pt": b"hello, not a model",
        "empty.pt": b"",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    torch.save({"some": torch.zeros(2)}, tmp_path / "other.pt")
    raw = torch.load(model_path, weights_only=True)
    raw["state_dict"] = {k: v[..., :1] for k, v in raw["state_dict"].items()}
    torch.save(raw, tmp_path / "wrong_shapes.pt")
    for name in [*cases, "other.pt", "wrong_shapes.pt", "missing.pt"]:
        with pytest.raises(ModelFileError) as info:
            load_model(tmp_path / name)
        message = str(info.value)
        assert name in message and "\n" not in message, message
    with pytest.raises(ModelFileError, match="checkpoint"):
        load_model(tmp_path / "run" / "checkpoint.pt")


def test_resume_rules(tmp_path, photo_folder, style_file, tiny):
    config = TrainConfig(**{**tiny, "arch": "johnson-small", "steps": 2, "checkpoint_every": 1})
    train(config, style_file, photo_folder, tmp_path / "run")
    with pytest.raises(UsageError, match="continue it with resume") as info:
        train(config, style_file, photo_folder, tmp_path / "run")
    assert "with --resume" in info.value.with_flags()
    with pytest.raises(ConfigError, match="lr"):
        train(TrainConfig(**{**tiny, "arch": "johnson-small", "steps": 3, "lr": 0.5}), style_file, photo_folder, tmp_path / "run", resume=True)
    with pytest.raises(UsageError, match="nothing to resume"):
        train(config, style_file, photo_folder, tmp_path / "fresh", resume=True)
    # more steps than planned: continues from the final checkpoint
    longer = train(TrainConfig(**{**tiny, "arch": "johnson-small", "steps": 3, "checkpoint_every": 1}), style_file, photo_folder, tmp_path / "run", resume=True)
    assert torch.load(longer, weights_only=True)["steps"] == 3


def test_amp_on_a_cpu_trains_in_bfloat16_and_channels_last_stays_cuda_only(tmp_path, photo_folder, style_file, tiny):
    config = TrainConfig(**{**tiny, "arch": "johnson-small", "steps": 1, "amp": True, "channels_last": True, "device": "cpu"})
    events = []
    train(config, style_file, photo_folder, tmp_path / "run", callback=events.append)
    texts = [e.text for e in events if isinstance(e, MessageEvent)]
    assert not any("--amp" in t for t in texts) and any("--channels-last is for CUDA" in t for t in texts)
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (info["amp"], info["loss_network_precision"]) == ("bfloat16", "bf16")  # the whole step under autocast


def test_bf16_training_follows_the_fp32_run_closely_but_not_exactly(tmp_path, photo_folder, style_file, tiny):
    """Same seed, same batches: the loss network in bfloat16 changes the numbers (so it ran); the loss falls
    as in float32, each step within 10 % of float32's (the tiny net at a high rate amplifies
    rounding), the last steps' mean within 5 %."""
    base = {**tiny, "arch": "johnson-small", "steps": 8, "lr": 5e-3, "lr_schedule": "constant", "log_every": 1}
    train(TrainConfig(**base), style_file, photo_folder, tmp_path / "fp32")
    train(TrainConfig(**base, precision="bfloat16"), style_file, photo_folder, tmp_path / "bf16")
    info = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert info["config"]["precision"] == "bf16"  # bfloat16 is an accepted spelling
    assert (info["amp"], info["loss_network_precision"]) == (None, "bf16")  # the loss network only
    assert json.loads((tmp_path / "fp32" / "config.json").read_text())["loss_network_precision"] == "fp32"  # auto: the suite's CPU has no native bf16
    a, b = [r["total"] for r in _log(tmp_path / "fp32")], [r["total"] for r in _log(tmp_path / "bf16")]
    assert a != b
    assert all(abs(x - y) <= 0.1 * x for x, y in zip(a, b)), list(zip(a, b))
    tail_a, tail_b = sum(a[-4:]) / 4, sum(b[-4:]) / 4
    assert tail_b < 0.6 * b[0] and abs(tail_b - tail_a) <= 0.05 * tail_a, (a, b)
    fa, fb = _state(tmp_path / "fp32" / "model.pt"), _state(tmp_path / "bf16" / "model.pt")
    assert all(fb[k].dtype == fa[k].dtype for k in fa), "weights stay float32"


def test_precision_auto_picks_bf16_only_for_recipes_measured_to_train_as_well(monkeypatch):
    from impasto import precision as p
    from impasto.methods.adain_train import AdaINTrainConfig
    from impasto.optim.train_loop import resolve_precision

    cpu = torch.device("cpu")
    monkeypatch.setattr(p, "cpu_bf16", lambda: True)
    assert resolve_precision(cpu, precision="auto", method=TrainConfig.PRECISION_KEY).encoder_dtype is (torch.bfloat16 if p.AUTO_BF16.get("train") else None)
    assert resolve_precision(cpu, precision="auto", method=AdaINTrainConfig.PRECISION_KEY).encoder_dtype is (torch.bfloat16 if p.AUTO_BF16.get("train-adain") else None)
    assert resolve_precision(cpu, precision="fp32", method="train").encoder_dtype is None
    monkeypatch.setattr(p, "cpu_bf16", lambda: False)
    assert resolve_precision(cpu, precision="auto", method="train").encoder_dtype is None  # emulated bf16 is slower: never auto
    both = resolve_precision(cpu, precision="bf16", method="train")  # asked for: honoured, for the loss network only
    assert (both.encoder_dtype, both.amp_dtype, both.loss_network) == (torch.bfloat16, None, "bf16")
    step = resolve_precision(cpu, amp=True, precision="bf16")  # amp: the whole step, so the encoder needs no dtype of its own
    assert (step.encoder_dtype, step.amp_dtype, step.loss_network) == (None, torch.bfloat16, "bf16")
    assert resolve_precision(torch.device("mps"), amp=True).amp_ignored


def test_a_bf16_loss_network_runs_channels_last_and_hands_back_float32_features():
    from impasto.features import build_encoder
    from impasto.optim.train_loop import resolve_precision

    encoder = build_encoder("tiny_vgg", weights="random", layers=["relu1_1", "relu2_1"])
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    full = encoder(x)
    resolve_precision(torch.device("cpu"), precision="fp32").prepare_encoder(encoder)
    assert encoder.compute_dtype is None and encoder.channels_last is None
    resolve_precision(torch.device("cpu"), precision="bf16").prepare_encoder(encoder)
    assert encoder.compute_dtype is torch.bfloat16 and encoder.channels_last is True
    half = encoder(x)
    for name, f in full.items():
        assert half[name].dtype == torch.float32 and half[name].is_contiguous(memory_format=torch.channels_last)
        assert 0 < float((half[name] - f).norm() / f.norm()) < 0.03, name


def test_amp_with_precision_fp32_is_refused(tiny):
    with pytest.raises(ConfigError, match="^amp and precision fp32 contradict each other: give one of them$"):
        TrainConfig(**{**tiny, "amp": True, "precision": "fp32"})
    with pytest.raises(ConfigError, match="^precision 'half': choose from auto, fp32, bf16$"):
        TrainConfig(**{**tiny, "precision": "half"})


