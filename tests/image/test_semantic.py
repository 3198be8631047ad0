"""Semantic maps for neural doodles: robust reading, resizing, pairing and colour matching."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from impasto.errors import ImageError, UsageError
from impasto.image.semantic import SemanticMap, check_colours, load_map, pair_map, shared_palette

RED, BLUE, GREEN, WHITE, BLACK, GREY = (200, 30, 30), (20, 40, 220), (0, 200, 0), (255, 255, 255), (0, 0, 0), (128, 128, 128)


def _paint(labels: np.ndarray, colours) -> np.ndarray:
    """HxW labels -> HxWx3 uint8 map painted with ``colours[label]``."""
    return np.asarray(colours, dtype=np.uint8)[labels]


def _blocks(h: int = 40, w: int = 60) -> np.ndarray:
    """Labels 0/1/2 on an HxW map: background 0, a rectangle 1, a disc 2."""
    lab = np.zeros((h, w), dtype=np.int64)
    lab[h // 10 : h // 2, w // 8 : w // 2] = 1
    yy, xx = np.mgrid[:h, :w]
    lab[((yy - 0.7 * h) / h) ** 2 + ((xx - 0.73 * w) / h) ** 2 < 0.04] = 2
    return lab


def _save(img: Image.Image, path, **kw) -> str:
    img.save(path, **kw)
    return str(path)


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg and msg.strip() == msg
    return msg


# --------------------------------------------------------------------------------------------
# anti-aliased edges


@pytest.mark.parametrize(("size", "blur", "fmt"), [(64, 1.0, "PNG"), (48, 3.0, "PNG"), (96, 1.5, "JPEG")])
def test_antialiased_two_colour_map_snaps_edges_to_the_nearer_colour(tmp_path, size, blur, fmt):
    # a diagonal edge drawn at 8x and shrunk (anti-aliasing), then blurred
    big = size * 8
    yy, xx = np.mgrid[:big, :big]
    hard = _paint((xx + 0.6 * yy > 0.8 * big).astype(np.int64), [RED, BLUE])
    img = Image.fromarray(hard).resize((size, size), Image.Resampling.BOX).filter(ImageFilter.GaussianBlur(blur))
    path = _save(img, tmp_path / ("doodle.png" if fmt == "PNG" else "doodle.jpg"), format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    m = load_map(path)

    assert len(m.palette) == 2
    for found, true in zip(sorted(m.palette), sorted([RED, BLUE])):
        assert max(abs(a - b) for a, b in zip(found, true)) <= 3
    px = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
    assert ((px != RED).any(axis=2) & (px != BLUE).any(axis=2)).sum() > size  # there are edge pixels
    # threshold at the midpoint between the two palette colours, along the line joining them
    a, b = (np.asarray(c, dtype=np.float64) for c in m.palette)
    t = ((px - a) @ (b - a)) / ((b - a) @ (b - a))  # 0 at palette[0], 1 at palette[1]
    expected = (t > 0.5).astype(np.int32)
    clear = np.abs(t - 0.5) > 0.02
    assert m.labels.dtype == np.int32 and m.labels.shape == (size, size)
    np.testing.assert_array_equal(m.labels[clear], expected[clear])


def test_edge_mix_of_three_colours_is_not_a_region(tmp_path):
    lab = _blocks(120, 180)
    img = Image.fromarray(_paint(lab, [WHITE, GREY, BLACK])).filter(ImageFilter.GaussianBlur(2))
    m = load_map(_save(img, tmp_path / "m.png"))
    assert m.palette == (BLACK, GREY, WHITE)  # the grey region stays; the grey edges join a region
    sharp = load_map(Image.fromarray(_paint(lab, [WHITE, GREY, BLACK])))
    assert (m.labels == sharp.labels).mean() > 0.97


# --------------------------------------------------------------------------------------------
# every image mode gives the same map


def _variants_bw(rgb: np.ndarray, tmp_path) -> dict[str, str]:
    base = Image.fromarray(rgb)
    grey = base.convert("L")
    alpha = Image.fromarray(((np.arange(rgb.shape[1])[None, :] * 37 + np.arange(rgb.shape[0])[:, None] * 11) % 256).astype(np.uint8))
    rgba = base.copy()
    rgba.putalpha(alpha)  # some pixels fully transparent: the alpha channel is ignored
    la = grey.copy()
    la.putalpha(alpha)
    g16 = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    assert g16.mode.startswith("I;16")
    return {
        "RGB": _save(base, tmp_path / "rgb.png"),
        "RGBA": _save(rgba, tmp_path / "rgba.png"),
        "L": _save(grey, tmp_path / "l.png"),
        "LA": _save(la, tmp_path / "la.png"),
        "I;16": _save(g16, tmp_path / "g16.png"),
        "P": _save(base.quantize(colors=4, dither=Image.Dither.NONE), tmp_path / "p.png"),
        "1": _save(grey.convert("1", dither=Image.Dither.NONE), tmp_path / "bit.png"),
        "BMP": _save(base, tmp_path / "rgb.bmp"),
    }


def test_rgb_rgba_grey_16bit_palette_and_1bit_maps_give_the_same_labels(tmp_path):
    lab = (_blocks() > 0).astype(np.int64)
    rgb = _paint(lab, [WHITE, BLACK])
    files = _variants_bw(rgb, tmp_path)
    assert Image.open(files["1"]).mode == "1" and Image.open(files["P"]).mode == "P"
    assert Image.open(files["I;16"]).mode.startswith("I;16") and Image.open(files["RGBA"]).mode == "RGBA"
    maps = {mode: load_map(path) for mode, path in files.items()}
    for mode, m in maps.items():
        assert m.palette == (BLACK, WHITE), mode
        np.testing.assert_array_equal(m.labels, 1 - lab, err_msg=mode)  # black sorts first
        assert m.path == files[mode]
    # in memory: a PIL image and an array read the same
    np.testing.assert_array_equal(load_map(Image.open(files["I;16"])).labels, 1 - lab)
    np.testing.assert_array_equal(load_map(rgb).labels, 1 - lab)
    assert load_map(rgb).path is None


@pytest.mark.parametrize("colours", [[WHITE, GREY, BLACK], [GREEN, RED, BLACK], [BLACK, (255, 255, 0), (0, 0, 255)]])
def test_three_colour_maps_read_the_same_in_every_mode(tmp_path, colours):
    lab = _blocks()
    rgb = _paint(lab, colours)
    base = Image.fromarray(rgb)
    rgba = base.copy()
    rgba.putalpha(Image.fromarray((np.arange(rgb.size // 3).reshape(lab.shape) % 256).astype(np.uint8)))
    files = [_save(base, tmp_path / "a.png"), _save(rgba, tmp_path / "b.png"), _save(base.quantize(colors=3, dither=Image.Dither.NONE), tmp_path / "c.png")]
    if all(c[0] == c[1] == c[2] for c in colours):
        files += [_save(base.convert("L"), tmp_path / "d.png"), _save(Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), tmp_path / "e.png")]
    palette = tuple(sorted(colours))
    for f in files:
        m = load_map(f)
        assert m.palette == palette, f
        np.testing.assert_array_equal(m.labels, np.asarray([palette.index(colours[k]) for k in range(3)])[lab], err_msg=f)


def test_black_is_a_region_like_any_other(tmp_path):
    lab = np.zeros((50, 50), dtype=np.int64)
    lab[10:18, 10:18] = 1  # a small black patch (2.6%) on red
    m = load_map(_save(Image.fromarray(_paint(lab, [RED, BLACK])), tmp_path / "m.png"))
    assert m.palette == (BLACK, RED)
    ch = m.channels()
    np.testing.assert_array_equal(ch[0, 0].numpy(), (lab == 1).astype(np.float32))
    only_black = load_map(np.zeros((8, 8, 3), np.uint8))
    assert only_black.palette == (BLACK,) and (only_black.labels == 0).all()


def test_a_uniform_map_is_one_region(tmp_path):
    m = load_map(_save(Image.new("RGB", (30, 20), GREEN), tmp_path / "u.jpg", quality=90), size=(40, 60))
    assert len(m.palette) == 1 and m.labels.shape == (40, 60) and (m.labels == 0).all()
    assert torch.equal(m.channels(), torch.ones(1, 1, 40, 60))


# --------------------------------------------------------------------------------------------
# sizes and channels


def test_resizing_to_the_image_keeps_the_labels(tmp_path):
    lab = np.zeros((20, 30), dtype=np.int64)
    lab[4:12, 8:20] = 1
    lab[12:20, 0:8] = 2
    path = _save(Image.fromarray(_paint(lab, [RED, GREEN, BLUE])), tmp_path / "m.png")
    palette = tuple(sorted([RED, GREEN, BLUE]))
    want = np.asarray([palette.index(c) for c in (RED, GREEN, BLUE)])[lab]

    np.testing.assert_array_equal(load_map(path, size=(60, 90)).labels, np.kron(want, np.ones((3, 3), dtype=want.dtype)))
    np.testing.assert_array_equal(load_map(path, size=(10, 15)).labels, want[1::2, 1::2])
    odd = load_map(path, size=(33, 50))  # not a whole factor: nearest, never a new value
    assert odd.labels.shape == (33, 50) and set(np.unique(odd.labels)) == {0, 1, 2}
    assert load_map(path, size=(20, 30)).labels.shape == (20, 30)
    with pytest.raises(UsageError):
        load_map(path, size=(20, 30.5))
    assert load_map(path, size=(100, 149)).labels.shape == (100, 149)  # 0.7% off: fine


def test_channels_are_one_hot_in_the_requested_palette_order(tmp_path):
    lab = _blocks()
    m = load_map(Image.fromarray(_paint(lab, [RED, GREEN, BLUE])))
    ch = m.channels()
    assert ch.shape == (1, 3, 40, 60) and ch.dtype == torch.float32
    assert torch.equal(ch.sum(dim=1), torch.ones(1, 40, 60)) and set(ch.unique().tolist()) == {0.0, 1.0}
    for k, colour in enumerate(m.palette):
        np.testing.assert_array_equal(ch[0, k].numpy() == 1, m.labels == k)

    order = [BLUE, (1, 2, 3), RED, GREEN]  # a palette with an extra colour: its channel is empty
    ch2 = m.channels(order, size=(20, 30))
    assert ch2.shape == (1, 4, 20, 30) and torch.equal(ch2.sum(dim=1), torch.ones(1, 20, 30))
    assert ch2[0, 1].sum() == 0
    small = np.asarray([order.index(c) for c in m.palette])[m.labels[1::2, 1::2]]
    np.testing.assert_array_equal(ch2[0].argmax(dim=0).numpy(), small)

    with pytest.raises(UsageError) as e:
        m.channels([RED, GREEN])
    assert _one_line(e) == "map: colour #1428dc is not in the given palette (#c81e1e, #00c800)"


def test_target_and_style_channels_line_up_through_the_shared_palette(tmp_path):
    lab_t = _blocks()
    target = load_map(_save(Image.fromarray(_paint(lab_t, [(250, 252, 255), (4, 196, 6), BLACK])), tmp_path / "target_sem.png"))
    lab_s = np.zeros((30, 30), dtype=np.int64)
    lab_s[:10] = 1
    lab_s[10:20] = 2
    lab_s[20:, :15] = 3
    style = load_map(_save(Image.fromarray(_paint(lab_s, [WHITE, GREEN, BLACK, BLUE])), tmp_path / "painting_sem.png"))
    palette = shared_palette(target, style)
    assert palette == style.palette == (BLACK, GREEN, BLUE, WHITE)
    assert check_colours(target, style) == {0: 0, 1: 1, 2: 3}  # target sorted: black, green-ish, white-ish
    t, s = target.channels(palette), style.channels(palette)
    assert t.shape[1] == s.shape[1] == 4
    assert torch.equal(t.sum(dim=1), torch.ones(1, 40, 60))
    assert t[0, 2].sum() == 0  # the style's blue region has no target pixels
    np.testing.assert_array_equal(t[0, 1].numpy() == 1, lab_t == 1)  # target green -> style green
    np.testing.assert_array_equal(s[0, 1].numpy() == 1, lab_s == 1)


# --------------------------------------------------------------------------------------------
# pairing


def test_pair_map_finds_the_sem_file_next_to_the_image(tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (8, 8)).save(photo)
    assert pair_map(photo) is None
    assert pair_map(str(photo)) is None
    (tmp_path / "photo_sem.jpg").write_bytes(b"x")
    assert pair_map(photo) == tmp_path / "photo_sem.jpg"
    (tmp_path / "photo_sem.png").write_bytes(b"x")
    assert pair_map(str(photo)) == tmp_path / "photo_sem.png"  # .png first
    assert pair_map(photo, suffix="_map") is None
    (tmp_path / "photo_map.WEBP").write_bytes(b"x")
    assert pair_map(photo, suffix="_map") == tmp_path / "photo_map.WEBP"
    (tmp_path / "other_sem.png").mkdir()  # a folder is not a map
    assert pair_map(tmp_path / "other.png") is None
    assert pair_map(tmp_path / "missing" / "x.jpg") is None
    with pytest.raises(UsageError):
        pair_map(photo, suffix="")


# --------------------------------------------------------------------------------------------
# matching colours


def _map(colours, path: str | None = None) -> SemanticMap:
    labels = np.arange(len(colours), dtype=np.int32).reshape(1, -1)
    return SemanticMap(labels=labels, palette=tuple(sorted(colours)), path=path)


def test_check_colours_pairs_near_equal_colours():
    target = _map([(0, 200, 0), (255, 255, 255), (10, 10, 10)], "target_sem.png")
    style = _map([(5, 180, 12), (0, 0, 0), (240, 250, 255), (0, 0, 255)], "painting_sem.png")
    pairs = check_colours(target, style)
    assert {target.palette[i]: style.palette[j] for i, j in pairs.items()} == {
        (0, 200, 0): (5, 180, 12),
        (10, 10, 10): (0, 0, 0),
        (255, 255, 255): (240, 250, 255),
    }
    assert shared_palette(target, style) == style.palette
    assert check_colours(_map([(0, 200, 0)]), _map([(0, 170, 0), (0, 210, 0)])) == {0: 1}  # the closest


def test_a_target_colour_missing_from_the_style_map_names_the_file_and_the_colour(tmp_path):
    target = _map([(255, 0, 0), (0, 200, 0)], "doodles/target_sem.png")
    style = _map([(0, 200, 0), (0, 0, 255)], "doodles/painting_sem.png")
    with pytest.raises(UsageError) as e:
        check_colours(target, style)
    assert _one_line(e) == (
        "doodles/target_sem.png: colour #ff0000 has no region in doodles/painting_sem.png (paint it in the style map too, or change it)"
    )
    with pytest.raises(UsageError) as e2:
        shared_palette(target, style)
    assert str(e2.value) == str(e.value)
    off = _map([(0, 230, 0)], "t.png")
    with pytest.raises(UsageError, match=r"^t.png: colour #00e600 has no region in s.png "):
        check_colours(off, _map([(0, 200, 0)], "s.png"))  # 30 levels apart
    assert check_colours(off, _map([(0, 200, 0)], "s.png"), tolerance=30) == {0: 0}


# --------------------------------------------------------------------------------------------
# bad maps


def test_unreadable_maps_get_the_image_loaders_messages(tmp_path):
    missing = tmp_path / "nope_sem.png"
    with pytest.raises(ImageError) as e:
        load_map(missing)
    assert _one_line(e) == f"{missing}: no such file"

    garbage = tmp_path / "garbage_sem.png"
    garbage.write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(ImageError) as e:
        load_map(garbage)
    assert _one_line(e) == f"{garbage}: not an image (cannot identify the format)"

    buf = io.BytesIO()
    Image.fromarray(_paint(_blocks(), [RED, GREEN, BLUE])).save(buf, format="PNG")
    truncated = tmp_path / "cut_sem.png"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError) as e:
        load_map(truncated)
    assert _one_line(e).startswith(f"{truncated}: truncated or corrupt image (")

    empty = tmp_path / "empty_sem.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError) as e:
        load_map(empty)
    assert _one_line(e) == f"{empty}: empty file (0 bytes)"


def test_a_photo_is_not_a_map(tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    path = _save(Image.fromarray(noise), tmp_path / "photo.png")
    n = len(np.unique(noise.reshape(-1, 3), axis=0))
    with pytest.raises(ImageError) as e:
        load_map(path)
    assert _one_line(e) == f"{path}: {n} colours; a semantic map has at most 16 flat colours (is it a photo?)"

    # photo-like: smooth shapes with grain (few bins dominate, but nothing is flat)
    coarse = torch.rand(1, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    field = torch.nn.functional.interpolate(coarse, size=(120, 160), mode="bicubic", align_corners=False).clamp(0, 1)
    grain = rng.normal(0, 6, (120, 160, 3))
    photo = np.clip(field[0].permute(1, 2, 0).numpy() * 255 + grain, 0, 255).astype(np.uint8)
    path3 = _save(Image.fromarray(photo), tmp_path / "photo.jpg", quality=90)
    with pytest.raises(ImageError, match=r"^.*photo.jpg: \d+ colours; a semantic map has at most 16 flat colours \(is it a photo\?\)$"):
        load_map(path3)

    ramp = np.linspace(0, 255, 80)
    smooth = np.stack([np.tile(ramp, (60, 1)), np.tile(ramp[:60, None], (1, 80)), np.full((60, 80), 90.0)], axis=2).astype(np.uint8)
    path2 = _save(Image.fromarray(smooth), tmp_path / "smooth.png")
    with pytest.raises(ImageError, match=r"colours; a semantic map has at most 16 flat colours \(is it a photo\?\)$"):
        load_map(path2)


def test_too_many_flat_colours(tmp_path):
    stripes = np.zeros((40, 200, 3), np.uint8)
    for k in range(20):
        stripes[:, k * 10 : (k + 1) * 10] = (k * 12, 255 - k * 12, (k * 97) % 256)
    path = _save(Image.fromarray(stripes), tmp_path / "stripes_sem.png")
    with pytest.raises(ImageError) as e:
        load_map(path)
    assert _one_line(e) == f"{path}: 20 colours; a semantic map has at most 16 flat colours (is it a photo?)"
    assert len(load_map(path, max_colours=20).palette) == 20
    three = _save(Image.fromarray(_paint(_blocks(), [RED, GREEN, BLUE])), tmp_path / "three.png")
    with pytest.raises(ImageError) as e:
        load_map(three, max_colours=2)
    assert _one_line(e) == f"{three}: 3 colours; a semantic map has at most 2 flat colours (is it a photo?)"
    with pytest.raises(UsageError):
        load_map(three, max_colours=0)


def test_a_map_of_another_aspect_ratio_is_refused(tmp_path):
    path = _save(Image.fromarray(_paint(_blocks(40, 60), [RED, GREEN, BLUE])), tmp_path / "wide_sem.png")
    with pytest.raises(ImageError) as e:
        load_map(path, size=(40, 40))
    assert _one_line(e) == f"{path}: map is 60x40 but its image is 40x40; a map must have its image's aspect ratio"
    with pytest.raises(ImageError) as e:
        load_map(path, size=(200, 290), what="style map")  # 3.4% off
    assert _one_line(e) == f"{path}: style map is 60x40 but its image is 290x200; a map must have its image's aspect ratio"
    with pytest.raises(UsageError):
        load_map(path, size=(0, 10))
