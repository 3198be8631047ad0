"""The registry records: complete, self-consistent, and looked up with helpful errors."""

from __future__ import annotations

import re

import pytest

from impasto.errors import WeightsError
from impasto.weights import CAFFE, IMAGENET, INCEPTION, REGISTRY, KnownFile, Preprocessing, WeightSpec, default_spec, get_spec, list_specs, preprocessing_named


def test_the_torchvision_records_exist() -> None:
    assert {"vgg19.torchvision", "vgg16.torchvision", "resnet50.torchvision", "inception_v3.torchvision"} <= set(REGISTRY)


@pytest.mark.parametrize("spec", list_specs(), ids=lambda s: s.name)
def test_every_record_is_complete_and_consistent(spec: WeightSpec) -> None:
    # torch.hub convention: the 8 hex digits in the file name start the file's SHA-256
    tag = re.search(r"-([0-9a-f]{8})\.pth$", spec.filename)
    assert tag and spec.sha256.startswith(tag.group(1))
    if spec.check == "sha256":
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
        assert spec.size and spec.size > 1_000_000
    else:  # only the prefix is published: the record says so and is exactly that prefix
        assert spec.check == "prefix" and spec.sha256 == tag.group(1) and spec.size is None
    assert all(url.startswith("https://") and url.endswith("/" + spec.filename) for url in spec.urls)
    assert spec.licence and spec.description and spec.layer_map == "torchvision"
    assert spec.name in (f"{spec.arch}.torchvision", f"{spec.arch}.caffe")
    for variant in spec.variants:
        assert re.fullmatch(r"[0-9a-f]{64}", variant.sha256) and variant.size > 1_000_000 and variant.source


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
    # a prefix record must say so, and the prefix must be the file name's
    with pytest.raises(ValueError, match="8 hex digits of the file name"):
        WeightSpec("x.y", "x", "x-12345678.pth", ("https://e/x-12345678.pth",), "87654321", None, "", IMAGENET, "", check="prefix")
    with pytest.raises(ValueError, match="full 64"):
        KnownFile("12345678", 10, "somewhere")


def test_the_caffe_records() -> None:
    """Johnson's conversions of the Caffe VGG models, as neural-style(-pt) use them."""
    for name, filename, variant in (
        ("vgg19.caffe", "vgg19-d01eb7cb.pth", ("dd893d447ece014ad32d71b8d32b1e0b5c09b912a2866990c286fdeebd368d74", 574_679_411)),
        ("vgg16.caffe", "vgg16-00b39a1b.pth", ("2007cdad2519a9bbecdf5cd3c54145237502349a194e0d0a41a826e5a277c187", 553_438_853)),
    ):
        spec = get_spec(name)
        assert spec.filename == filename and spec.preprocessing == CAFFE and spec.check == "prefix"
        assert spec.urls[0] == f"https://web.eecs.umich.edu/~justincj/models/{filename}"
        assert [(v.sha256, v.size) for v in spec.variants] == [variant]
        assert "CC BY 4.0" in spec.licence
        # the published file: any size, SHA-256 starting with the prefix; the variant: exactly
        assert spec.accepts(123, spec.sha256 + "0" * 56) and not spec.accepts(123, "f" * 64)
        assert spec.accepts(variant[1], variant[0]) and not spec.accepts(variant[1] + 1, "e" * 64)
    # the default for vgg19/vgg16 stays torchvision's
    assert default_spec("vgg19").name == "vgg19.torchvision" and default_spec("vgg16").name == "vgg16.torchvision"


def test_caffe_preprocessing_and_names() -> None:
    assert CAFFE == Preprocessing((103.939, 116.779, 123.68), (1.0, 1.0, 1.0), channel_order="BGR", scale=255.0)
    assert preprocessing_named("caffe", "vgg19") is CAFFE
    assert preprocessing_named("torchvision", "vgg19") is IMAGENET
    assert preprocessing_named("torchvision", "inception_v3") is INCEPTION
    with pytest.raises(ValueError, match="caffe, torchvision"):
        preprocessing_named("bgr", "vgg19")
