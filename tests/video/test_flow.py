"""impasto.video.flow: flow accuracy on known motion, warping, occlusion masks, the flicker
metric and the on-disk flow cache. Synthetic textures only (no files)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_module

require_module("cv2")

from impasto.errors import OutputError, UsageError  # noqa: E402
from impasto.video import flow as F  # noqa: E402

H, W = 96, 128
PAD = 16  # frames are crops of a (H + 2 PAD) x (W + 2 PAD) periodic texture: no wrap-around
INNER = (slice(12, H - 12), slice(12, W - 12))  # interior where flow is judged


def _field(h: int, w: int, seed: int, sigmas: tuple[float, ...] = (1.5, 4.0)) -> np.ndarray:
    """Periodic smooth random texture (gaussian-filtered noise, two scales), unit variance."""
    rng = np.random.default_rng(seed)
    spec = np.fft.fft2(rng.standard_normal((h, w, 3)), axes=(0, 1))
    f2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2
    spec *= sum(s * np.exp(-2 * np.pi**2 * s**2 * f2) for s in sigmas)[..., None]
    out = np.real(np.fft.ifft2(spec, axes=(0, 1)))
    return out / out.std()


def _shift(field: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The texture moved by (dx, dy) px, exactly (Fourier phase shift): out(x) = field(x - d)."""
    h, w = field.shape[:2]
    phase = np.exp(-2j * np.pi * (np.fft.fftfreq(w)[None, :] * dx + np.fft.fftfreq(h)[:, None] * dy))
    return np.real(np.fft.ifft2(np.fft.fft2(field, axes=(0, 1)) * phase[..., None], axes=(0, 1)))


def _u8(field: np.ndarray) -> np.ndarray:
    return np.clip(field * 45 + 128, 0, 255).astype(np.uint8)


def _pair(dx: float, dy: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(a, b): b is a with its content moved by (dx, dy) px."""
    big = _field(H + 2 * PAD, W + 2 * PAD, seed)
    crop = (slice(PAD, PAD + H), slice(PAD, PAD + W))
    return _u8(big[crop]), _u8(_shift(big, dx, dy)[crop])


def _epe(flow: np.ndarray, dx: float, dy: float) -> np.ndarray:
    return np.hypot(flow[..., 0] - dx, flow[..., 1] - dy)[INNER]


@pytest.mark.parametrize("method", F.FLOW_METHODS)
def test_known_translation_is_recovered(method: str) -> None:
    a, b = _pair(3, -2)
    flow = F.compute_flow(a, b, method)
    assert flow.shape == (H, W, 2) and flow.dtype == np.float32
    assert np.median(_epe(flow, 3, -2)) < 0.25
    back = F.compute_flow(b, a, method)  # the other direction is the opposite motion
    assert np.median(_epe(back, -3, 2)) < 0.25


@pytest.mark.parametrize("method", F.FLOW_METHODS)
def test_subpixel_translation_is_recovered(method: str) -> None:
    a, b = _pair(1.5, 0.5, seed=3)
    assert np.median(_epe(F.compute_flow(a, b, method), 1.5, 0.5)) < 0.3


def test_flow_is_deterministic_and_accepts_float_and_gray() -> None:
    a, b = _pair(2, 1)
    first = F.compute_flow(a, b)
    assert np.array_equal(first, F.compute_flow(a, b))
    as_float = F.compute_flow(a.astype(np.float32) / 255, b.astype(np.float32) / 255)
    assert np.array_equal(first, as_float)
    gray = F.compute_flow(a.mean(axis=2).astype(np.uint8), b.mean(axis=2).astype(np.uint8))
    assert np.median(_epe(gray, 2, 1)) < 0.25


def test_warp_with_flow_reconstructs_the_other_frame() -> None:
    a, b = _pair(3, -2)
    flow = F.compute_flow(b, a)  # on b's grid: b(x) ~ a(x + flow)
    rebuilt = F.warp(a, flow)
    assert rebuilt.dtype == np.uint8 and rebuilt.shape == a.shape
    err = np.abs(rebuilt.astype(np.float32) - b)[INNER].mean()
    assert err < 2.0, err  # grey levels out of 255
    assert np.abs(a.astype(np.float32) - b)[INNER].mean() > 10 * err  # the frames really differ


def test_warp_exact_on_integer_flow_and_keeps_dtype_and_shape() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((20, 30, 5), dtype=np.float32)  # more channels than cv2.remap takes
    flow = np.zeros((20, 30, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2, -1
    out = F.warp(image, flow)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_array_equal(out[1:, :-2], image[:-1, 2:])  # out(x, y) = image(x + 2, y - 1)
    gray = (image[..., 0] * 255).astype(np.uint8)
    assert F.warp(gray, flow).shape == gray.shape and F.warp(gray, flow).dtype == np.uint8
    assert F.warp(image[..., :1], flow).shape == (20, 30, 1)
    with pytest.raises(ValueError):
        F.warp(image, flow[:10])


def test_occlusion_mask_flags_disoccluded_band_and_keeps_static_background() -> None:
    bg, square = _u8(_field(H, W, 1)), _u8(_field(40, 40, 2, (1.0, 3.0)))

    def frame(x: int) -> np.ndarray:
        image = bg.copy()
        image[28:68, x : x + 40] = square
        return image

    prev, cur = frame(40), frame(46)  # the textured square moves 6 px right over a static background
    flow, mask = F.pair_flow(cur, prev)
    assert mask.shape == (H, W) and mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}
    uncovered = mask[28:68, 40:46]  # background in cur that the square hid in prev
    assert (uncovered == 0).mean() >= 0.8
    far = np.ones((H, W), bool)
    far[28 - 12 : 68 + 12, 40 - 12 : 86 + 12] = False
    assert (mask[far] == 1).mean() >= 0.95
    assert np.median(flow[36:60, 56:76, 0]) == pytest.approx(-6, abs=0.3)  # square interior: cur -> prev


def test_occlusion_mask_zero_where_target_leaves_the_image() -> None:
    fwd = np.zeros((H, W, 2), np.float32)
    fwd[..., 0] = 3
    mask = F.occlusion_mask(fwd, -fwd)
    assert (mask[:, : W - 3] == 1).all()
    assert (mask[:, W - 3 :] == 0).all()
    # an inconsistent backward flow is flagged everywhere
    assert (F.occlusion_mask(fwd, np.zeros_like(fwd)) == 0).all()


def test_warping_error() -> None:
    rng = np.random.default_rng(0)
    prev = rng.integers(0, 240, (H, W, 3), dtype=np.uint8)
    zero = np.zeros((H, W, 2), np.float32)
    ones = np.ones((H, W), np.float32)
    assert F.warping_error(prev, prev, zero, ones) == 0.0
    assert F.warping_error(prev, prev + 10, zero, ones) == pytest.approx(10 / 255, abs=1e-6)
    as_float = prev.astype(np.float32) / 255
    assert F.warping_error(as_float, as_float + 0.04, zero, ones) == pytest.approx(0.04, abs=1e-6)
    # masked-out pixels do not count, however wrong they are
    cur = prev.copy()
    cur[:, : W // 2] = 255 - cur[:, : W // 2]
    mask = ones.copy()
    mask[:, : W // 2] = 0
    assert F.warping_error(prev, cur, zero, mask) == 0.0
    assert F.warping_error(prev, cur, zero, np.zeros_like(mask)) == 0.0
    # a correct flow removes the error of a translation
    a, b = _pair(3, -2)
    mask = np.zeros((H, W), np.float32)
    mask[INNER] = 1
    flow = F.compute_flow(b, a)
    assert F.warping_error(a, b, flow, mask) < 0.2 * F.warping_error(a, b, zero, mask)


def test_flow_cache_stores_once_and_reads_back_bit_identical(tmp_path, monkeypatch) -> None:
    prev, cur = _pair(3, -2)
    folder = tmp_path / "flows"
    cache = F.FlowCache(folder)
    assert not cache.has(1)
    flow, mask = cache.get(1, cur, prev)
    cache.flush()
    assert [p.name for p in folder.iterdir()] == ["1.npz"] and cache.has(1)
    raw_flow, raw_mask = F.pair_flow(cur, prev)
    assert np.abs(flow - raw_flow).max() <= 1 / 32 + 1e-6  # quantised to 1/16 px
    np.testing.assert_array_equal(mask, raw_mask)
    assert flow.dtype == mask.dtype == np.float32

    def boom(*args, **kwargs):
        raise AssertionError("recomputed a cached flow")

    monkeypatch.setattr(F, "compute_flow", boom)
    again = F.FlowCache(folder).get(1, cur, prev)
    np.testing.assert_array_equal(again[0], flow)
    np.testing.assert_array_equal(again[1], mask)
    monkeypatch.undo()

    # no folder: nothing written, the same quantised values
    nodisk = F.FlowCache(None).get(1, cur, prev)
    np.testing.assert_array_equal(nodisk[0], flow)
    np.testing.assert_array_equal(nodisk[1], mask)


def test_flow_cache_recomputes_damaged_or_stale_entries(tmp_path, monkeypatch) -> None:
    prev, cur = _pair(3, -2)
    cache = F.FlowCache(tmp_path)
    flow, mask = cache.get(2, cur, prev)
    cache.flush()
    path = tmp_path / "2.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert not cache.has(2)
    calls = []
    real = F.compute_flow
    monkeypatch.setattr(F, "compute_flow", lambda *a, **k: calls.append(1) or real(*a, **k))
    fresh = F.FlowCache(tmp_path)
    again = fresh.get(2, cur, prev)
    fresh.flush()
    assert calls and cache.has(2)
    np.testing.assert_array_equal(again[0], flow)
    np.testing.assert_array_equal(again[1], mask)
    calls.clear()
    fresh = F.FlowCache(tmp_path)
    other = fresh.get(2, prev, cur)  # other frames under the same index
    fresh.flush()
    assert calls and np.median(other[0][INNER][..., 0]) == pytest.approx(3, abs=0.25)
    calls.clear()
    fresh = F.FlowCache(tmp_path, "farneback")
    fresh.get(2, prev, cur)  # another method
    fresh.close()
    assert calls
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    with pytest.raises(UsageError):
        cache.get(0, cur, prev)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(F.os, "replace", disk_full)
    with pytest.raises(OutputError, match="^cannot write flow cache .*3.npz: No space left on device$"):
        cache.get(3, cur, prev)
        cache.flush()  # entries are written in the background; a write error surfaces here
    monkeypatch.undo()
    assert not (tmp_path / "3.npz").exists() and not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OutputError):
        F.FlowCache(tmp_path / "a_file")


def test_unknown_method_and_bad_shapes() -> None:
    a, b = _pair(1, 1)
    with pytest.raises(UsageError) as info:
        F.compute_flow(a, b, method="x")
    assert str(info.value) == "flow must be dis, dis-fast or farneback, got 'x'"
    assert info.value.params == ("flow",)
    assert info.value.with_flags() == "--flow must be dis, dis-fast or farneback, got 'x'"
    with pytest.raises(UsageError, match="^flow must be dis, dis-fast or farneback, got 'deepflow'$"):
        F.FlowCache(None, method="deepflow")
    with pytest.raises(ValueError):
        F.compute_flow(a, b[:, :-1])
    with pytest.raises(ValueError):
        F.compute_flow(a[:8, :8], b[:8, :8])


def test_flow_to_rgb() -> None:
    flow = np.zeros((H, W, 2), np.float32)
    flow[:, W // 2 :, 0] = 4
    rgb = F.flow_to_rgb(flow)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    assert (rgb[:, : W // 2] == 0).all() and rgb[:, W // 2 :].max() == 255
    assert (F.flow_to_rgb(np.zeros_like(flow)) == 0).all()


def test_dis_object_is_reused_per_thread() -> None:
    import threading

    import cv2

    a, b = _pair(1, 1)
    F.compute_flow(a, b)
    mine = F._dis(cv2)
    assert F._dis(cv2) is mine
    seen: list[object] = []
    results: list[np.ndarray] = []

    def worker() -> None:
        results.append(F.compute_flow(a, b))
        seen.append(F._dis(cv2))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen and seen[0] is not mine
    np.testing.assert_array_equal(results[0], F.compute_flow(a, b))


def test_flow_does_not_depend_on_earlier_images() -> None:
    # OpenCV's DIS keeps a finest scale it lowered for a small image; impasto resets it each call
    a, b = _pair(1, 1)
    before = {m: F.compute_flow(a, b, m) for m in ("dis", "dis-fast")}
    tiny = np.random.default_rng(0).integers(0, 255, (13, 13), dtype=np.uint8)
    for method in ("dis", "dis-fast"):
        F.compute_flow(tiny, np.roll(tiny, 1, axis=1), method)
        np.testing.assert_array_equal(F.compute_flow(a, b, method), before[method])
