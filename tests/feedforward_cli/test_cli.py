"""The train/apply/export/monitor sub-commands, run in-process through a local argparse parser."""

from __future__ import annotations

import argparse
import json
import os
import socket

import pytest

from impasto.cli import apply as apply_cli
from impasto.cli import export as export_cli
from impasto.cli import monitor as monitor_cli
from impasto.cli import train as train_cli
from impasto.errors import ConfigError, ModelFileError, UsageError
from impasto.image.io import load_image


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="impasto")
    sub = p.add_subparsers()
    for module in (train_cli, apply_cli, export_cli, monitor_cli):
        module.register(sub)
    return p


def run(*argv: str) -> int:
    args = _parser().parse_args([str(a) for a in argv])
    args.quiet = True
    args.tune_allocator = False  # a process-wide malloc setting: not inside the test runner
    return args.handler(args)


@pytest.mark.parametrize("command", ["train", "apply", "export", "monitor"])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as info:
        _parser().parse_args([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"impasto {command}" in text
    if command == "apply":  # an option decided at run time says so, not "(default: None)"
        assert "(default: auto)" in " ".join(text[text.index("--channels-last, --no-channels-last"):].split()[:60])


def test_train_options_come_from_the_config():
    args = _parser().parse_args(["train", "--style", "s.png", "--data", "d", "-o", "o", "--arch", "johnson-small", "--steps", "7", "--style-layers", "relu1_2:0.5,relu2_2"])
    assert args.arch == "johnson-small" and args.steps == 7
    assert not hasattr(args, "lr"), "unset flags keep the config's defaults"


def test_train_resume_apply_export_round_trip(tmp_path, photo, capsys):
    photos = tmp_path / "photos"
    for i in range(3):
        photo(f"photos/p{i}.png", 36, 44, seed=i)
    style = photo("style.png", 48, 48, seed=7)
    run_dir = tmp_path / "run"
    common = ["--encoder", "tiny_vgg", "--weights", "random", "--arch", "johnson-small", "--train-size", "32", "--batch-size", "2", "--workers", "0", "--preview-every", "0"]
    assert run("train", "--style", style, "--data", photos, "-o", run_dir, "--steps", "2", "--checkpoint-every", "1", *common) == 0
    assert (run_dir / "model.pt").is_file()
    # resume reads style, data and settings from the run folder; only --steps is given
    assert run("train", "--resume", "-o", run_dir, "--steps", "3") == 0
    assert json.loads((run_dir / "config.json").read_text())["step"] == 3
    with pytest.raises(UsageError) as info:
        run("train", "--style", style, "--data", photos, "-o", run_dir, "--steps", "2", *common)
    assert "--resume" in info.value.with_flags()  # what the CLI prints (library messages name parameters)
    with pytest.raises(ConfigError, match="lr"):
        run("train", "--resume", "-o", run_dir, "--steps", "4", "--lr", "0.1")
    with pytest.raises(UsageError, match="--data"):
        run("train", "--style", style, "-o", tmp_path / "other")

    out = tmp_path / "styled"
    assert run("apply", run_dir, photos, "-o", out, "--edge", "40") == 0
    assert sorted(p.name for p in out.iterdir()) == ["p0.png", "p1.png", "p2.png"]
    assert max(load_image(out / "p0.png").size) == 40

    assert run("export", run_dir / "model.pt") == 0
    assert (run_dir / "model.onnx").is_file()
    assert run("apply", run_dir / "model.onnx", photos / "p0.png", "-o", tmp_path / "onnx") == 0
    assert "wrote 1 image(s)" in capsys.readouterr().err


def test_apply_batch_with_a_bad_file_exits_2(tmp_path, models, photo, capsys):
    good = photo("good.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert run("apply", models["johnson-small"], good, bad, "-o", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "bad.png" in err and "1 input(s) could not be read" in err
    assert (tmp_path / "out" / "good.png").is_file()


def test_apply_errors_are_impasto_errors(tmp_path, photo):
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(ModelFileError, match="bad.pt"):
        run("apply", tmp_path / "bad.pt", photo(), "-o", tmp_path / "o")
    with pytest.raises(ConfigError, match="strength") as info:
        run("apply", tmp_path / "bad.pt", photo(), "-o", tmp_path / "o", "--strength", "2")
    assert info.value.with_flags() == "--strength must be in [0, 1], got 2.0"
    with pytest.raises(ModelFileError):
        run("export", tmp_path / "bad.pt")


def test_monitor_refuses_a_busy_port_and_a_file(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(UsageError, match="in use"):
            run("monitor", tmp_path, "--port", port)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a training folder"):
        run("monitor", tmp_path / "file")
    assert monitor_cli.HOST == "127.0.0.1"


def test_tune_allocator_in_a_subprocess():
    """The allocator setting is process-wide, so it is checked in a child process."""
    import subprocess
    import sys

    code = "from impasto.cli.apply import tune_allocator; import sys; sys.exit(0 if tune_allocator() else 3)"
    env = {k: v for k, v in os.environ.items() if k != "IMPASTO_ALLOCATOR"}  # the suite's own setting off
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode in (0, 3), result.stderr  # 3: not glibc (then it is a no-op)
    if sys.platform.startswith("linux"):
        assert result.returncode == 0


def test_library_messages_name_parameters_and_the_cli_shows_flags(tmp_path, models, photo, capsys):
    from impasto.cli.main import main
    from impasto.methods.feedforward import ApplyConfig, TrainConfig, export_model

    with pytest.raises(ConfigError) as info:
        ApplyConfig(overlap=800)
    assert str(info.value) == "overlap (800) must be smaller than max_tile (768)" and info.value.params == ("overlap", "max_tile")
    with pytest.raises(ConfigError, match="^train_size must be >= 16 px, got 8$"):
        TrainConfig(train_size=8)
    with pytest.raises(ConfigError, match="^opset must be >= 17, got 11$"):
        export_model(models["johnson-small"], tmp_path / "m.onnx", opset=11)
    assert main(["apply", str(models["johnson-small"]), str(photo()), "-o", str(tmp_path / "o"), "--overlap", "800"]) == 2
    assert "--overlap (800) must be smaller than --max-tile (768)" in capsys.readouterr().err
    assert main(["export", str(models["johnson-small"]), "--opset", "11"]) == 2
    assert "--opset must be >= 17, got 11" in capsys.readouterr().err
