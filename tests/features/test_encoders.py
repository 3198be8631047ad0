"""Encoders: named layers, validation, determinism, presets, preprocessing."""

from __future__ import annotations

import pytest
import torch

from impasto.errors import DeviceError, LayerError, UsageError
from impasto.features import build_encoder, encoder_names, get_encoder_spec, resolve_device
from impasto.features.vgg import build_vgg, vgg_stages


def test_vgg19_layer_names_follow_the_paper():
    names = [n for n, _ in vgg_stages(build_vgg("vgg19"))]
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert "conv4_2" in names and "relu5_4" in names and names[-1] == "pool5"
    assert len([n for n in names if n.startswith("conv")]) == 16


def test_vgg16_has_13_convs_and_torchvision_keys():
    model = build_vgg("vgg16")
    names = [n for n, _ in vgg_stages(model)]
    assert len([n for n in names if n.startswith("conv")]) == 13
    keys = list(model.state_dict())
    assert keys[0] == "features.0.weight" and keys[-1] == "features.28.bias"


def test_unknown_layer_suggests_the_closest():
    with pytest.raises(LayerError, match=r"unknown layer 'rleu4_2' for encoder tiny_vgg; did you mean 'relu4_2'"):
        build_encoder("tiny_vgg", weights="random", layers=["rleu4_2"])


def test_unknown_encoder_suggests_the_closest():
    with pytest.raises(UsageError, match=r"unknown encoder 'vgg91' \(did you mean 'vgg19'\?\)"):
        build_encoder("vgg91", weights="random")


def test_returns_requested_layers_with_expected_shapes(tiny_encoder):
    feats = tiny_encoder(torch.rand(2, 3, 64, 48))
    assert set(feats) == set(tiny_encoder.layers)
    assert feats["relu1_1"].shape == (2, 8, 64, 48)
    assert feats["relu3_1"].shape == (2, 32, 16, 12)
    assert feats["relu5_1"].shape == (2, 64, 4, 3)
    assert all((f >= 0).all() for k, f in feats.items() if k.startswith("relu"))


def test_random_weights_are_deterministic_and_seeded():
    a = build_encoder("tiny_vgg", weights="random", layers=["relu3_1"], seed=0)
    b = build_encoder("tiny_vgg", weights="random", layers=["relu3_1"], seed=0)
    c = build_encoder("tiny_vgg", weights="random", layers=["relu3_1"], seed=1)
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(a(x)["relu3_1"], b(x)["relu3_1"])
    assert not torch.allclose(a(x)["relu3_1"], c(x)["relu3_1"])


def test_building_does_not_disturb_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_encoder("tiny_vgg", weights="random", layers=["relu1_1"])
    assert torch.equal(torch.rand(3), expected)


def test_encoder_is_frozen_and_passes_gradients_to_the_image(tiny_encoder):
    assert not any(p.requires_grad for p in tiny_encoder.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    tiny_encoder(x)["relu2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    tiny_encoder.train()
    assert not tiny_encoder.training


def test_avg_pooling_replaces_max_pooling():
    enc = build_encoder("tiny_vgg", weights="random", layers=["relu3_1"], pooling="avg")
    kinds = {type(m).__name__ for m in enc.stages}
    assert "AvgPool2d" in kinds and "MaxPool2d" not in kinds
    with pytest.raises(UsageError, match="^pooling 'median'") as info:
        build_encoder("tiny_vgg", weights="random", layers=["relu3_1"], pooling="median")
    assert info.value.with_flags().startswith("--pooling 'median'")


def test_runs_only_up_to_the_deepest_requested_layer():
    enc = build_encoder("tiny_vgg", weights="random", layers=["relu2_1"])
    assert len(enc.stages) == 7  # conv1_1 relu1_1 conv1_2 relu1_2 pool1 conv2_1 relu2_1


def test_every_registered_encoder_has_valid_presets():
    for name in encoder_names():
        spec = get_encoder_spec(name)
        model = spec.build()
        names = {n for n, _ in spec.stages(model)}
        aliases = {n.split(".")[0] for n in names if "." in n}
        for layer in (*spec.default_content_layers, *spec.default_style_layers):
            assert layer in names or layer in aliases, (name, layer)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")


def test_preprocessing_is_imagenet_normalisation(tiny_encoder):
    x = torch.full((1, 3, 4, 4), 0.485)
    out = tiny_encoder.preprocess(x)
    assert torch.allclose(out[:, 0], torch.zeros(1, 4, 4), atol=1e-6)


def test_fingerprint_names_what_the_encoder_computes(tiny_encoder):
    from impasto.features import DEFAULT_DEVICE, FeatureExtractor
    from impasto.features.padding import padding_mode
    from impasto.weights.registry import IMAGENET

    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
    same = build_encoder("tiny_vgg", weights="random", layers=layers)
    assert same is not tiny_encoder and same.fingerprint == tiny_encoder.fingerprint
    assert tiny_encoder.weights_id == "random:0"
    assert build_encoder("tiny_vgg", weights="random", layers=layers, seed=1).fingerprint != tiny_encoder.fingerprint
    assert build_encoder("tiny_vgg", weights="random", layers=layers, pooling="avg").fingerprint != tiny_encoder.fingerprint
    with padding_mode(tiny_encoder, "reflect"):
        assert tiny_encoder.fingerprint != same.fingerprint
    assert tiny_encoder.fingerprint == same.fingerprint
    # an extractor built around a model directly is identified by its tensors
    spec = get_encoder_spec("tiny_vgg")
    a, b = spec.build(), spec.build()
    with torch.no_grad():
        b.features[0].weight.add_(1.0)
    fa = FeatureExtractor(spec, a, ["relu1_1"], preprocessing=IMAGENET)
    assert fa.weights_id.startswith("tensors:") and fa.fingerprint == FeatureExtractor(spec, a, ["relu1_1"], preprocessing=IMAGENET).fingerprint
    assert fa.fingerprint != FeatureExtractor(spec, b, ["relu1_1"], preprocessing=IMAGENET).fingerprint
    assert DEFAULT_DEVICE == "auto"


def test_stage_hooks(tiny_encoder):
    assert tiny_encoder.depth(["relu1_1"]) == 1 and tiny_encoder.depth(["relu2_1", "relu1_1"]) == 6
    x = torch.rand(1, 3, 32, 32)
    stages = list(tiny_encoder.iter_stages(x, ["relu2_1"]))
    assert [n for n, _ in stages][:2] == ["conv1_1", "relu1_1"] and stages[-1][0] == "relu2_1" and len(stages) == 7
    assert torch.equal(stages[-1][1], tiny_encoder(x, layers=["relu2_1"])["relu2_1"])
    with pytest.raises(LayerError, match="did you mean 'relu2_1'"):
        tiny_encoder.depth(["relu2_l"])


def test_device_errors_name_the_parameter():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(DeviceError) as info:
        resolve_device("cuda")
    assert str(info.value).startswith("device cuda: CUDA is not available")
    assert info.value.with_flags() == "--device cuda: CUDA is not available on this machine (use --device cpu or auto)"
