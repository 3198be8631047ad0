"""`impasto video`: both paths end to end on synthetic clips (frame count, frame rate and audio
survive), consistency lowers flicker, resume after kill -9 equals an uninterrupted run, and every
bad input gets its one-line error with nothing written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import require_module

require_module("av")
require_module("cv2")

from impasto.cli.main import main  # noqa: E402
from impasto.video.io import probe, read_frames  # noqa: E402
from impasto.video.render import work_folder  # noqa: E402
from tests.video.clips import make_audio, make_clip, make_frames_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PAINTING = ROOT / "examples" / "style" / "starry_night.jpg"
OPTIM = ["--encoder", "tiny_vgg", "--weights", "random", "--first-iterations", "12", "--iterations", "6"]


def model_file(path: Path, arch: str = "johnson-small", styles: int = 0) -> Path:
    from impasto.methods.ff_model import model_payload, save_model
    from impasto.methods.ff_train import TrainConfig
    from impasto.nets import build_net

    torch.manual_seed(0)
    net, config = build_net(arch, overrides={"n_styles": styles} if styles else None)
    extra = {"styles": [{"index": i, "name": f"s{i}", "sha256": f"{i}" * 64} for i in range(styles)]} if styles else {}
    save_model(path, model_payload(net, arch, config, TrainConfig(steps=1), {"name": "random", "sha256": "0" * 64}, 1, {}, **extra))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=12, size=(64, 48), fps=12)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return model_file(tmp_path_factory.mktemp("model") / "fast.pt")


def frames_of(path: Path) -> list[np.ndarray]:
    return list(read_frames(probe(path)))


def test_fast_path_keeps_frames_rate_and_audio_and_reports_flicker(tmp_path, clip, model, capsys):
    out = tmp_path / "styled.mp4"
    assert main(["-q", "video", str(clip), "-o", str(out), "--model", str(model)]) == 0
    src, got = probe(clip), probe(out)
    assert (got.frames, got.fps, got.width, got.height, got.audio_streams) == (12, src.fps, 64, 48, 1)
    assert abs(got.duration_s - src.duration_s) < 0.1
    manifest = json.loads((tmp_path / "styled.mp4.json").read_text())
    assert manifest["flicker"]["pairs"] == 11 and manifest["flicker"]["output"] > 0 and manifest["flicker"]["input"] > 0
    assert manifest["output"]["audio"] is True and manifest["path"] == "model" and manifest["video"]["consistency"] == "flow"
    assert "flicker" in capsys.readouterr().err
    assert not work_folder(out).exists()  # removed once the output is written
    assert not frames_of(out)[5].std() < 1  # not a blank frame


def test_consistency_lowers_flicker_on_the_fast_path(tmp_path, clip, model):
    flicker = {}
    for mode in ("flow", "none"):
        out = tmp_path / f"{mode}.mp4"
        assert main(["-q", "video", str(clip), "-o", str(out), "--model", str(model), "--consistency", mode]) == 0
        flicker[mode] = json.loads(Path(f"{out}.json").read_text())["flicker"]["output"]
    assert flicker["flow"] < 0.6 * flicker["none"], flicker


def test_optimisation_path_with_temporal_loss_flickers_less_than_per_frame(tmp_path, clip):
    flicker = {}
    for mode in ("flow", "none"):
        out = tmp_path / f"{mode}"
        args = ["-q", "video", str(clip), "-o", str(out), "--style", str(PAINTING), "--edge", "48", "--frames", "6", "--consistency", mode, *OPTIM]
        assert main(args) == 0
        assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(1, 7)]  # a folder of frames
        flicker[mode] = json.loads(Path(f"{out}.json").read_text())["flicker"]["output"]
    assert flicker["flow"] < 0.7 * flicker["none"], flicker
    # the fast path with consistency flickers less than independent per-frame optimisation too
    fast = tmp_path / "fast"
    assert main(["-q", "video", str(clip), "-o", str(fast), "--model", str(model_file(tmp_path / "m.pt")), "--edge", "48", "--frames", "6"]) == 0
    assert json.loads(Path(f"{fast}.json").read_text())["flicker"]["output"] < flicker["none"]


def test_a_rotated_clip_comes_out_upright_frame_for_frame(tmp_path, model):
    """A phone clip tagged 90 degrees: the output is upright, and (strength 0 passes the photo
    through) frame i of the output is frame i of the scene."""
    from tests.video.clips import scene

    rotated = make_clip(tmp_path / "phone.mp4", frames=6, size=(64, 48), fps=12, rotation=90)
    out = tmp_path / "upright.mp4"
    assert main(["-q", "video", str(rotated), "-o", str(out), "--model", str(model), "--strength", "0", "--consistency", "none", "--crf", "0"]) == 0
    got = probe(out)
    assert (got.width, got.height, got.rotation, got.frames) == (64, 48, 0, 6)
    for i, frame in enumerate(frames_of(out)):
        assert np.abs(frame.astype(int) - scene(i, (64, 48)).astype(int)).mean() < 6, i
    assert json.loads(Path(f"{out}.json").read_text())["input"]["rotation"] == 90


def test_frame_folders_in_and_out(tmp_path, model):
    frames = make_frames_folder(tmp_path / "in", frames=5, size=(40, 32))
    out = tmp_path / "out"
    assert main(["-q", "video", str(frames), "-o", str(out), "--model", str(model), "--fps", "8"]) == 0
    assert len(list(out.glob("*.png"))) == 5
    manifest = json.loads((tmp_path / "out.json").read_text())
    assert manifest["input"]["fps"] == "8" and manifest["output"]["frames"] == 5


def _run_cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    code = "import sys; from impasto.cli.main import entry; sys.argv[0] = 'impasto'; entry()"
    return subprocess.Popen([sys.executable, "-c", code, "-q", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("path", ["model", "optimisation"])
def test_resume_after_kill_9_equals_an_uninterrupted_run(tmp_path, clip, model, path):
    """kill -9 while frames are being made (at whatever point of a frame the signal lands), twice;
    the re-run continues from the last finished frame and gives the same frames."""
    common = ["--model", str(model)] if path == "model" else ["--style", str(PAINTING), "--edge", "48", *OPTIM]
    frames = "10" if path == "model" else "5"
    reference = tmp_path / "reference"  # uninterrupted, in a process like the killed ones (same threads)
    ref = _run_cli(["video", str(clip), "-o", str(reference), "--frames", frames, *common])
    assert ref.wait(300) == 0, ref.stderr.read().decode()
    out = tmp_path / "resumed"
    done = work_folder(out) / "frames"
    for kill_after in (2, 3):
        proc = _run_cli(["video", str(clip), "-o", str(out), "--frames", frames, *common])
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and len(list(done.glob("0*.png"))) < kill_after:
            time.sleep(0.005)
        assert proc.poll() is None, proc.stderr.read().decode()  # still running: killed mid-run
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not out.exists()  # nothing half-written
    finished_before = len(list(done.glob("0*.png")))
    assert 3 <= finished_before < int(frames)
    last = _run_cli(["video", str(clip), "-o", str(out), "--frames", frames, *common])
    assert last.wait(300) == 0, last.stderr.read().decode()
    manifest = json.loads(Path(f"{out}.json").read_text())
    assert manifest["resumed_from"] == finished_before
    names = sorted(p.name for p in reference.iterdir())
    assert names == sorted(p.name for p in out.iterdir()) and len(names) == int(frames)
    for name in names:
        a, b = np.asarray(Image.open(reference / name)), np.asarray(Image.open(out / name))
        assert np.array_equal(a, b), name


def test_interrupted_run_says_how_to_continue(tmp_path, clip, model, monkeypatch, capsys):
    from impasto.video import stylise

    calls = {"n": 0}
    original = stylise.FastPath.frame

    def flaky(self, frame):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, frame)

    monkeypatch.setattr(stylise.FastPath, "frame", flaky)
    out = tmp_path / "x.mp4"
    assert main(["-q", "video", str(clip), "-o", str(out), "--model", str(model)]) == 130
    assert "interrupted after 3 of 12 frames; run the same command again to continue" in capsys.readouterr().err
    assert not out.exists() and len(list((work_folder(out) / "frames").glob("*.png"))) == 3


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_inputs_get_one_line_and_nothing_written(tmp_path, clip, model, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n")
    audio = make_audio(tmp_path / "song.m4a")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out.mp4"
    cases = [
        ([str(text), "-o", str(out), "--model", str(model)], f"{text}: not a video"),
        ([str(audio), "-o", str(out), "--model", str(model)], f"{audio}: no video stream"),
        ([str(empty), "-o", str(out), "--model", str(model)], f"{empty}: no frames"),
        ([str(clip), "-o", str(out), "--model", str(model), "--max-pixels", "1000"], f"{clip}: 64x48 is an absurd resolution"),
        ([str(clip), "-o", str(tmp_path / "nowhere" / "x.mp4"), "--model", str(model)], "cannot write: folder"),
        ([str(clip), "-o", str(out)], "give --model MODEL (fast) or --style PAINTING (optimisation)"),
        ([str(clip), "-o", str(out), "--model", str(model), "--style-weight", "5"], "--style-weight is an optimisation option"),
        ([str(clip), "-o", str(out), "--model", str(model), "--blend", "2"], "--blend must be in [0, 0.95], got 2.0"),
    ]
    for args, message in cases:
        assert main(["-q", "video", *args]) == 2, args
        err = _error(capsys)
        assert message in err, (message, err)
        assert not out.exists() and not work_folder(out).exists()
    # a clip whose frames stop decoding half-way: the run fails naming the file and keeps the finished frames
    broken = tmp_path / "broken.mp4"
    data = clip.read_bytes()
    broken.write_bytes(data[: len(data) * 2 // 3])
    code = main(["-q", "video", str(broken), "-o", str(out), "--model", str(model)])
    assert code == 2 and str(broken) in _error(capsys) and not out.exists()


def test_webcam_from_a_file_switches_styles_and_records(tmp_path, clip):
    from impasto import api

    multi = model_file(tmp_path / "multi.pt", "multistyle-small", styles=3)
    out = tmp_path / "live.mp4"
    stats = api.run_webcam([multi], source=clip, output=out, window=False, keys={3: "n", 6: "2", 8: "c"},
                           config=api.webcam_config_class()(size="64x48"))
    assert stats.frames == 12 and stats.styles_seen == {0, 1, 2}
    assert probe(out).frames == 12
    # the CLI: a video as the camera, recorded, no window
    out2 = tmp_path / "cli.mp4"
    assert main(["-q", "webcam", "--model", str(multi), "--source", str(clip), "--output", str(out2), "--size", "64x48", "--max-frames", "7"]) == 0
    assert probe(out2).frames == 7


def test_webcam_soak_memory_stays_flat(tmp_path, model):
    """A few thousand frames from a synthetic camera: the RSS after warm-up does not grow."""
    from impasto import api

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)

    def camera(n):
        for i in range(n):
            yield np.roll(base, i % 32, axis=1)

    stats = api.run_webcam([model], source=camera(2000), window=False, config=api.webcam_config_class()(size="32x24"))
    assert stats.frames == 2000
    samples = dict(stats.rss_samples)
    warm, last = samples[512], samples[max(samples)]
    assert last - warm < 8 * 2**20, {k: v / 2**20 for k, v in samples.items()}
