"""The tensor convention: PIL / numpy <-> 1x3xHxW float32 in [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from impasto.errors import UsageError
from impasto.image.convert import as_batch, numpy_to_tensor, pil_to_tensor, tensor_to_numpy, tensor_to_pil, validate_image


def test_pil_round_trip_is_exact():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    t = pil_to_tensor(Image.fromarray(arr))
    assert t.shape == (1, 3, 5, 7) and t.dtype == torch.float32
    assert t[0, :, 2, 3].tolist() == pytest.approx((arr[2, 3] / 255).tolist(), abs=1e-7)
    assert np.array_equal(np.asarray(tensor_to_pil(t)), arr)


def test_tensor_to_pil_rounds_not_truncates():
    t = torch.tensor([10.4, 10.6, 200.7]).div(255).view(1, 3, 1, 1)
    assert np.asarray(tensor_to_pil(t))[0, 0].tolist() == [10, 11, 201]  # truncation gives 10, 10, 200


def test_tensor_to_pil_accepts_3d_and_clamps():
    t = torch.tensor([-0.5, 0.5, 1.5]).view(3, 1, 1)
    assert np.asarray(tensor_to_pil(t))[0, 0].tolist() == [0, 128, 255]


def test_tensor_to_numpy_dtypes():
    t = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)
    assert tensor_to_numpy(t, np.uint8)[0, 0].tolist() == [0, 128, 255]
    assert tensor_to_numpy(t, np.uint16)[0, 0].tolist() == [0, 32768, 65535]
    f = tensor_to_numpy(t, np.float32)
    assert f.dtype == np.float32 and f.shape == (1, 1, 3) and f[0, 0].tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(UsageError, match="dtype"):
        tensor_to_numpy(t, np.int32)


def test_tensor_to_numpy_refuses_batches():
    with pytest.raises(UsageError, match="single image"):
        tensor_to_numpy(torch.rand(2, 3, 4, 4))


def test_numpy_to_tensor_scales_by_dtype():
    assert numpy_to_tensor(np.full((2, 2, 3), 255, np.uint8)).eq(1).all()
    u16 = numpy_to_tensor(np.full((2, 2, 3), 65535 // 5, np.uint16))
    assert torch.allclose(u16, torch.tensor(13107 / 65535))
    f = numpy_to_tensor(np.full((2, 2, 3), 1.7, np.float64))
    assert f.dtype == torch.float32 and f.eq(1).all()  # floats are clamped to [0, 1]


def test_numpy_to_tensor_grey_inputs_become_rgb():
    g = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for arr in (g, g[:, :, None]):
        t = numpy_to_tensor(arr)
        assert t.shape == (1, 3, 2, 3)
        assert torch.equal(t[0, 0], t[0, 2]) and float(t[0, 1, 1, 2]) == pytest.approx(5 / 255)


def test_numpy_to_tensor_does_not_touch_the_callers_array():
    arr = np.full((2, 2, 3), 3.0, np.float32)
    t = numpy_to_tensor(arr)
    assert (arr == 3.0).all() and t.eq(1).all()


@pytest.mark.parametrize(
    "arr,match",
    [
        (np.zeros((4, 4, 4), np.uint8), "alpha"),
        (np.zeros((4,), np.uint8), "HxWx3"),
        (np.zeros((4, 4, 3), np.int32), "dtype"),
        (np.full((2, 2, 3), np.nan, np.float32), "NaN"),
        ([[1, 2]], "numpy array"),
    ],
)
def test_numpy_to_tensor_errors(arr, match):
    with pytest.raises(UsageError, match=match):
        numpy_to_tensor(arr)


def test_pil_to_tensor_16bit_grey_keeps_precision():
    arr = np.array([[0, 1, 65534, 65535]], np.uint16)
    im = Image.fromarray(arr)
    assert im.mode == "I;16"
    t = pil_to_tensor(im)
    assert torch.round(t[0, 0].double() * 65535).long().tolist() == [[0, 1, 65534, 65535]]


def test_pil_to_tensor_other_modes():
    rgba = Image.new("RGBA", (2, 2), (10, 20, 30, 0))
    assert torch.allclose(pil_to_tensor(rgba)[0, :, 0, 0], torch.tensor([10, 20, 30]) / 255)
    with pytest.raises(UsageError, match="PIL image"):
        pil_to_tensor(np.zeros((2, 2, 3)))


@pytest.mark.parametrize(
    "bad,match",
    [
        ("x", "torch.Tensor"),
        (torch.rand(3, 4, 4), r"Bx3xHxW tensor, got shape 3x4x4"),
        (torch.rand(1, 4, 4, 4), "expected 3 channel"),
        (torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "floating-point"),
        (torch.rand(1, 3, 0, 4), "empty"),
    ],
)
def test_validate_image_errors_name_the_problem(bad, match):
    with pytest.raises(UsageError, match=match):
        validate_image(bad, "content")


def test_as_batch():
    assert as_batch(torch.rand(3, 2, 2)).shape == (1, 3, 2, 2)
    with pytest.raises(UsageError, match="batch of 1"):
        as_batch(torch.rand(2, 3, 2, 2))
