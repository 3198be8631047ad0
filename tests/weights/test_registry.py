"""The registry records: complete, self-consistent, and looked up with helpful errors."""

from __future__ import annotations

import re

import pytest

from impasto.errors import WeightsError
from impasto.weights import IMAGENET, INCEPTION, REGISTRY, Preprocessing, WeightSpec, default_spec, get_spec, list_specs


def test_the_torchvision_records_exist() -> None:
    assert {"vgg19.torchvision", "vgg16.torchvision", "resnet50.torchvision", "inception_v3.torchvision"} <= set(REGISTRY)


@pytest.mark.parametrize("spec", list_specs(), ids=lambda s: s.name)
def test_every_record_is_complete_and_consistent(spec: WeightSpec) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
    # torch.hub convention: the 8 hex digits in the file name start the file's SHA-256
    tag = re.search(r"-([0-9a-f]{8})\.pth$", spec.filename)
    assert tag and spec.sha256.startswith(tag.group(1))
    assert all(url.startswith("https://") and url.endswith("/" + spec.filename) for url in spec.urls)
    assert spec.size and spec.size > 1_000_000
    assert spec.licence and spec.description and spec.layer_map == "torchvision"
    assert spec.name == f"{spec.arch}.torchvision"


def test_known_sizes_and_hashes() -> None:
    """Pinned so an edit to a record is a visible, reviewed change."""
    assert get_spec("vgg19.torchvision").size == 574_673_361
    assert get_spec("vgg16.torchvision").size == 553_433_881
    assert get_spec("resnet50.torchvision").filename == "resnet50-0676ba61.pth"  # IMAGENET1K_V1
    assert get_spec("resnet50.torchvision").size == 102_530_333
    assert get_spec("inception_v3.torchvision").size == 108_949_747


def test_preprocessing() -> None:
    assert get_spec("vgg19.torchvision").preprocessing == IMAGENET
    # torchvision's transform_input=True is (x - 0.5) / 0.5 on 0-1 RGB
    assert get_spec("inception_v3.torchvision").preprocessing == INCEPTION == Preprocessing((0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ValueError):
        Preprocessing((0, 0, 0), (1, 1, 1), channel_order="RGBA")


def test_default_spec() -> None:
    assert default_spec("vgg19") is get_spec("vgg19.torchvision")
    assert default_spec("inception_v3") is get_spec("inception_v3.torchvision")
    assert default_spec("tiny_vgg") is None


def test_unknown_name_suggests_and_lists() -> None:
    with pytest.raises(WeightsError) as err:
        get_spec("vgg19.torchvison")
    assert "did you mean 'vgg19.torchvision'" in str(err.value)
    assert "resnet50.torchvision" in str(err.value)


def test_records_refuse_partial_hashes() -> None:
    with pytest.raises(ValueError, match="full 64"):
        WeightSpec("x.y", "x", "x-12345678.pth", ("https://e/x-12345678.pth",), "12345678", None, "", IMAGENET, "")
