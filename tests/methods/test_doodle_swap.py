"""`impasto doodle` (semantic maps, Champandard 2016) and `impasto swap` (Chen & Schmidt 2016):
regions take their colours from the matching region of the painting, maps are handled robustly,
and style swap replaces every patch by a style patch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from impasto import api
from impasto.cli.main import main

TINY = {"encoder": "tiny_vgg", "weights": "random"}


def save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def texture(h: int, w: int, colour: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 25, (h, w, 1))
    return np.clip(np.array(colour)[None, None, :] + noise, 0, 255)


@pytest.fixture()
def painting(tmp_path):
    """A painting: reddish texture on the left, bluish on the right; its map: green | black."""
    h, w = 48, 64
    img = np.concatenate([texture(h, w // 2, (200, 60, 50), 1), texture(h, w // 2, (40, 70, 210), 2)], axis=1)
    sem = np.zeros((h, w, 3))
    sem[:, : w // 2] = (0, 255, 0)  # green region = red texture; black (0, 0, 0) = blue texture
    return save(tmp_path / "painting.png", img), save(tmp_path / "painting_sem.png", sem)


def target_map(tmp_path: Path, name: str = "sketch.png", extra: tuple[int, int, int] | None = None) -> Path:
    """Top half black (-> blue texture), bottom half green (-> red), the other way round from the painting."""
    sem = np.zeros((40, 56, 3))
    sem[20:] = (0, 255, 0)
    if extra is not None:
        sem[:6, :6] = extra
    return save(tmp_path / name, sem)


def test_doodle_regions_take_colours_from_the_matching_region(tmp_path, painting):
    style, _ = painting  # painting_sem.png is found beside it
    # (random VGG19 features: the tiny test encoder is too poor a judge of colour for this)
    result = api.run("doodle", style=style, map=target_map(tmp_path), edge=56, scales="56", iterations=30, encoder="vgg19", weights="random")
    img = result.image[0]
    top, bottom = img[:, 3:17].mean((1, 2)), img[:, 23:37].mean((1, 2))  # away from the boundary
    assert top[2] > top[0] + 0.15, top  # blue texture up top
    assert bottom[0] > bottom[2] + 0.15, bottom  # red texture below
    assert result.manifest["palette"] == ["#000000", "#00ff00"]


def test_doodle_over_a_photo_keeps_it_and_pairs_its_map(tmp_path, painting):
    style, _ = painting
    photo = save(tmp_path / "photo.png", np.tile(np.linspace(60, 200, 56)[None, :, None], (40, 1, 3)))
    target_map(tmp_path, "photo_sem.png")
    out = tmp_path / "out.png"
    assert main(["-q", "doodle", str(photo), "--style", str(style), "-o", str(out), "--edge", "56", "--scales", "56", "-n", "15",
                 "--encoder", "tiny_vgg", "--weights", "random"]) == 0
    manifest = json.loads(Path(f"{out}.json").read_text())
    assert manifest["map"].endswith("photo_sem.png") and manifest["style_map"].endswith("painting_sem.png")
    assert Image.open(out).size == (56, 40)


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_every_bad_map_gets_its_error(tmp_path, painting, capsys):
    style, style_map = painting
    out = tmp_path / "out.png"
    common = ["--edge", "32", "-n", "2", "--encoder", "tiny_vgg", "--weights", "random", "-o", str(out)]
    missing = target_map(tmp_path, "odd.png", extra=(255, 255, 0))
    lonely = save(tmp_path / "lonely.png", texture(40, 56, (90, 90, 90), 3))
    wrong = save(tmp_path / "wide_sem.png", np.zeros((10, 60, 3)))
    cases = [
        (["--style", str(style), "--map", str(missing)], f"{missing}: colour #ffff00 has no region in {style_map}"),
        (["--style", str(lonely), "--map", str(target_map(tmp_path))], "style map: no map given and no lonely_sem.png beside"),
        (["--style", str(style)], "--map: required unless the photo has a PHOTO_sem.png beside it"),
        ([str(lonely), "--style", str(style), "--map", str(wrong)], "a map must have its image's aspect ratio"),
        (["--style", str(style), "--map", str(tmp_path / "nope.png")], "nope.png"),
    ]
    for args, message in cases:
        assert main(["-q", "doodle", *args, *common]) == 2, args
        err = _error(capsys)
        assert message.replace("style map: ", "") in err, (message, err)
        assert not out.exists()


def test_style_swap_of_an_image_with_itself_is_itself():
    from impasto.methods.swap import style_swap

    torch.manual_seed(0)
    f = torch.rand(1, 8, 12, 14)
    swapped, idx = style_swap(f, f)
    # away from the border (whose padded patches are not in the style) every patch matches itself
    assert torch.allclose(swapped[..., 2:-2, 2:-2], f[..., 2:-2, 2:-2], atol=1e-6)
    assert idx.numel() == 12 * 14


def test_swap_paints_with_the_style_patches(tmp_path, capsys):
    content = save(tmp_path / "c.png", np.tile(np.linspace(40, 220, 48)[None, :, None], (40, 1, 3)))
    style = save(tmp_path / "s.png", texture(48, 48, (210, 60, 40), 5))
    out = tmp_path / "swapped.png"
    assert main(["-q", "swap", str(content), str(style), "-o", str(out), "--edge", "48", "-n", "40", "--encoder", "vgg19", "--weights", "random"]) == 0
    img = np.asarray(Image.open(out)).astype(float)
    r, g, b = img[..., 0].mean(), img[..., 1].mean(), img[..., 2].mean()
    assert r > g + 20 and r > b + 20, (r, g, b)  # the grey photo took the painting's red (random features: a weak pull)
    manifest = json.loads(Path(f"{out}.json").read_text())
    assert manifest["patches"] > 0 and 0 < manifest["distinct_style_patches"] <= manifest["patches"]
    assert manifest["feature_distance"][1] < 0.5 * manifest["feature_distance"][0]  # the inversion converged
