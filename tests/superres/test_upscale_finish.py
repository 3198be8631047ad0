"""`--upscale MODEL` of gatys, apply and video: the result is finished at scale x its stylised size,
the manifest records the model and scale, and a bad model is a one-line error with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from impasto.cli.main import main
from impasto.image.io import read_metadata
from impasto.methods.ff_model import model_payload, save_model
from impasto.methods.ff_train import TrainConfig
from impasto.methods.superres_train import SuperResTrainConfig
from impasto.nets import build_net

GATYS = ["--encoder", "tiny_vgg", "--weights", "random", "--edge", "32", "--scales", "32", "-n", "3", "-q"]


def _model(path: Path, arch: str, **overrides) -> Path:
    torch.manual_seed(0)
    net, config = build_net(arch, overrides=overrides or None)
    train = SuperResTrainConfig(steps=1) if arch == "superres" else TrainConfig(steps=1)
    save_model(path, model_payload(net, arch, config, train, {"name": "random", "sha256": "0" * 64}, 1, {}))
    return path


@pytest.fixture
def sr2(tmp_path):
    return _model(tmp_path / "sr2.pt", "superres", scale=2, channels=8, n_res=1)


@pytest.fixture
def pair(write_image):
    return write_image("content.png", 24, 32, seed=1), write_image("style.png", 32, 32, seed=2)


def test_gatys_result_is_finished_by_a_superres_model(pair, sr2, tmp_path):
    content, style = pair
    small, big = tmp_path / "small.png", tmp_path / "big.png"
    assert main(["gatys", str(content), str(style), "-o", str(small), *GATYS]) == 0
    assert main(["gatys", str(content), str(style), "-o", str(big), *GATYS, "--upscale", str(sr2)]) == 0
    w, h = Image.open(small).size
    assert Image.open(big).size == (2 * w, 2 * h)
    manifest = json.loads(Path(str(big) + ".json").read_text())
    up = manifest["upscale"]
    assert up["scale"] == 2 and up["from_size"] == [w, h] and up["size"] == [2 * w, 2 * h]
    assert up["model"]["path"] == str(sr2.resolve()) and len(up["model"]["sha256"]) == 64
    assert read_metadata(big)["upscale"]["scale"] == 2


def test_gatys_baseline_with_scale(pair, tmp_path):
    content, style = pair
    out = tmp_path / "o.png"
    assert main(["gatys", str(content), str(style), "-o", str(out), *GATYS, "--upscale", "lanczos:8"]) == 0
    assert Image.open(out).size == (8 * 32, 8 * 24)
    assert json.loads(Path(str(out) + ".json").read_text())["upscale"]["model"]["name"] == "lanczos"


def test_apply_outputs_are_finished(pair, sr2, tmp_path):
    content, _ = pair
    model = _model(tmp_path / "j.pt", "johnson-small")
    assert main(["-q", "apply", str(model), str(content), "-o", str(tmp_path / "plain")]) == 0
    assert main(["-q", "apply", str(model), str(content), "-o", str(tmp_path / "big"), "--upscale", str(sr2)]) == 0
    [plain], [big] = list((tmp_path / "plain").iterdir()), list((tmp_path / "big").iterdir())
    w, h = Image.open(plain).size
    assert Image.open(big).size == (2 * w, 2 * h)
    meta = read_metadata(big)
    assert meta["upscale"]["scale"] == 2 and meta["upscale"]["model"]["sha256"] and meta["upscale"]["from_size"] == [w, h]
    assert meta.get("method") == read_metadata(plain).get("method")  # the apply metadata is kept


def test_video_frames_are_finished(tmp_path, sr2):
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    from impasto.video.io import probe
    from tests.video.clips import make_clip

    clip = make_clip(tmp_path / "clip.mp4", frames=4, size=(32, 24), fps=8)
    model = _model(tmp_path / "j.pt", "johnson-small")
    out = tmp_path / "styled.mp4"
    assert main(["-q", "video", str(clip), "-o", str(out), "--model", str(model), "--upscale", str(sr2)]) == 0
    got = probe(out)
    assert (got.frames, got.width, got.height) == (4, 64, 48)
    manifest = json.loads((tmp_path / "styled.mp4.json").read_text())
    assert manifest["output"]["size"] == [64, 48] and manifest["upscale"]["scale"] == 2 and manifest["upscale"]["from_size"] == [32, 24]


@pytest.mark.parametrize("case", ["missing", "not_superres", "junk", "bad_scale"])
@pytest.mark.parametrize("command", ["gatys", "apply", "video"])
def test_bad_upscale_model_is_a_one_line_error(pair, tmp_path, capsys, case, command):
    content, style = pair
    johnson = _model(tmp_path / "j.pt", "johnson-small")
    bad = {"missing": str(tmp_path / "nope.pt"), "not_superres": str(johnson), "junk": str(tmp_path / "junk.pt"), "bad_scale": "bicubic:3"}[case]
    (tmp_path / "junk.pt").write_bytes(b"junk")
    out = tmp_path / ("out.png" if command == "gatys" else "out" if command == "apply" else "out.mp4")
    args = {
        "gatys": ["gatys", str(content), str(style), "-o", str(out), *GATYS],
        "apply": ["-q", "apply", str(johnson), str(content), "-o", str(out)],
        "video": ["-q", "video", str(tmp_path / "frames"), "-o", str(out), "--model", str(johnson)],
    }[command]
    assert main([*args, "--upscale", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("impasto: error:") and "--upscale" in err[0], err
    assert not out.exists() and not Path(str(out) + ".json").exists()
