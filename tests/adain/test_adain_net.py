"""The AdaIN network: the layer matches the style's statistics, alpha and mixing behave as the
paper says, masks give spatial control, tiles equal the whole image, the encoder weights are
checked, the state dict is the decoder's, and the exported graph matches PyTorch."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from impasto.errors import ConfigError, ModelFileError, UsageError
from impasto.methods.ff_tiling import TorchRunner, stylise_tensor
from impasto.nets import net_from_config
from impasto.nets.adain import AdaINNet, AdaINStyle, feature_stats
from impasto.nets.norm import moments
from impasto.nets.protocol import check_generator, pad_to
from impasto.nets.streaming import receptive_radius

from .conftest import picture


def test_protocol_registration_and_config(net):
    check_generator(net, "adain")
    assert net.takes == ("content", "style") and net.multiple == 8
    assert net.config == {"encoder": "tiny_vgg", "layer": "relu4_1", "weights": "random", "weights_id": None, "pooling": "max", "preprocessing": "auto", "seed": 0}
    twin = net_from_config("adain", dict(net.config))
    assert isinstance(twin, AdaINNet) and twin.padded_size((50, 70)) == (56, 72)
    with pytest.raises(ConfigError, match="VGG-type encoder") as info:
        AdaINNet(encoder="resnet50", layer="layer2.3", weights="random")
    assert info.value.params == ("encoder",)


def test_the_adain_layer_gives_the_style_statistics(net):
    content, painting = picture(64, 48, 0), picture(56, 64, 1)
    f_c = net.encode(content)
    style = net.prepare_style([painting])
    t = net.adain_features(f_c, style)
    f_s = net.encode(painting)
    mean_t, var_t = moments(t)
    mean_s, var_s = moments(f_s)
    var_c = moments(f_c)[1].flatten()
    # the content is normalised by sqrt(var + eps): a channel whose variance is not far above eps
    # keeps a little less than the style's std (and one the content never activates, none)
    strong = var_c > 0.05
    assert strong.sum() > 0.6 * strong.numel()
    assert torch.allclose(mean_t.flatten(), mean_s.flatten(), atol=1e-4, rtol=0)
    assert torch.allclose(var_t.sqrt().flatten()[strong], var_s.sqrt().flatten()[strong], atol=1e-4, rtol=0)
    expected = (var_s.flatten() + 1e-5).sqrt() * (var_c / (var_c + 1e-5)).sqrt()
    assert torch.allclose(var_t.sqrt().flatten(), expected, atol=1e-5, rtol=0)
    assert torch.allclose(style.mean[0], feature_stats(f_s)[0][0]) and torch.allclose(style.std[0], feature_stats(f_s)[1][0])


def test_alpha_zero_decodes_the_content_features_and_alpha_interpolates(net):
    content, painting = picture(40, 56, 2), picture(48, 48, 3)
    with torch.no_grad():
        zero = net.generate(content, style=net.prepare_style([painting], alpha=0.0))
        expected = net.decode(net.encode(pad_to(content, net.padded_size((40, 56)))))[..., :40, :56]
        assert torch.equal(zero, expected)
        full = net.prepare_style([painting])
        half = dataclasses.replace(full, alpha=0.5)
        f_c = net.encode(pad_to(content, (40, 56)))
        t, t_half = net.adain_features(f_c, full), net.adain_features(f_c, half)
        assert torch.allclose(t_half, 0.5 * t + 0.5 * f_c, atol=1e-6)
    with pytest.raises(ConfigError, match="alpha must be in") as info:
        net.prepare_style([painting], alpha=1.5)
    assert info.value.params == ("alpha",)


def test_style_weights_mix_the_statistics(net):
    a, b, content = picture(48, 48, 4), picture(64, 40, 5), picture(48, 64, 6)
    with torch.no_grad():
        alone = net.generate(content, style=net.prepare_style([a]))
        assert torch.equal(net.generate(content, style=net.prepare_style([a, b], [1.0, 0.0])), alone)
        mixed = net.prepare_style([a, b], [3.0, 1.0])
        sa, sb = net.prepare_style([a]), net.prepare_style([b])
        assert torch.allclose(mixed.weights, torch.tensor([0.75, 0.25]))
        f_c = net.encode(pad_to(content, (48, 64)))
        both = 0.75 * net.adain_features(f_c, sa) + 0.25 * net.adain_features(f_c, sb)  # interpolating the AdaIN outputs
        assert torch.allclose(net.adain_features(f_c, mixed), both, atol=1e-5)
    for weights, why in (([1.0], "has 1 entries for 2"), ([1.0, -1.0], "must be >= 0"), ([0.0, 0.0], "must not all be 0")):
        with pytest.raises(ConfigError, match=why) as info:
            net.prepare_style([a, b], weights)
        assert info.value.params == ("style_weights",)


def test_masks_give_spatial_control(net):
    a, b, content = picture(48, 48, 7), picture(48, 48, 8), picture(45, 60, 9)
    ones, zeros = torch.ones(1, 1, 45, 60), torch.zeros(1, 1, 45, 60)
    with torch.no_grad():
        alone_a = net.generate(content, style=net.prepare_style([a]))
        only_a = net.generate(content, style=net.prepare_style([a, b], masks=torch.cat([ones, zeros])))
        assert float((only_a - alone_a).abs().max()) <= 1e-5
        left = torch.zeros(1, 1, 45, 60)
        left[..., :32] = 1.0
        split = net.prepare_style([a, b], masks=torch.cat([left, 1 - left]))
        f_c = net.encode(pad_to(content, (48, 64)))
        t = net.adain_features(f_c, split)
        ta, tb = net.adain_features(f_c, net.prepare_style([a])), net.adain_features(f_c, net.prepare_style([b]))
        assert torch.allclose(t[..., :4], ta[..., :4], atol=1e-5) and torch.allclose(t[..., 4:], tb[..., 4:], atol=1e-5)
        uncovered = net.adain_features(f_c, net.prepare_style([a], masks=left))
        assert torch.allclose(uncovered[..., 4:], f_c[..., 4:]), "where no mask covers the image the content's features stay"
        with pytest.raises(UsageError, match="masks are 45x60 px") as info:
            net.generate(picture(50, 60, 1), style=split)
        assert info.value.params == ("masks",)
    for masks, why in ((torch.ones(3, 1, 45, 60), "3 mask"), (torch.ones(2, 45, 60), "Kx1xHxW"), (2 * torch.ones(2, 1, 45, 60), r"\[0, 1\]")):
        with pytest.raises(ConfigError, match=why) as info:
            net.prepare_style([a, b], masks=masks)
        assert info.value.params == ("masks",)


class _StyleRunner(TorchRunner):
    """TorchRunner that hands the prepared style to the network."""

    def __init__(self, net: AdaINNet, style: AdaINStyle) -> None:
        super().__init__(SimpleNamespace(net=net), SimpleNamespace(device="cpu", channels_last=False, seed=0))  # type: ignore[arg-type]
        self.adain_style = style
        self.calls = 0

    def __call__(self, image, size, origin=(0, 0)):
        self.calls += 1
        with torch.inference_mode():
            return self.net.generate(image, size=size, origin=origin, style=self.adain_style).float().contiguous()


def test_tiles_equal_the_whole_image_with_and_without_masks(net):
    content, a, b = picture(100, 220, 10), picture(64, 64, 11), picture(48, 72, 12)
    halo = receptive_radius(net)
    assert 24 <= halo <= 128
    masks = torch.zeros(2, 1, 100, 220)
    masks[0, :, :, :110] = 1.0
    masks[1, :, :, 100:] = 1.0  # an overlap (mixed there) and soft edges after pooling
    for style in (net.prepare_style([a], alpha=0.8), net.prepare_style([a, b], [1.0, 2.0], masks=masks)):
        runner = _StyleRunner(net, style)
        whole = stylise_tensor(runner, content, (100, 220), tile=0, overlap=0, cell=8)
        assert float(whole.std()) > 0.05 and float(whole.min()) < 0.4 and float(whole.max()) > 0.6
        tile = 2 * ((halo + 7) // 8 * 8) + 72
        assert tile < 220, "the image must be larger than a tile"
        runner.calls = 0
        tiled = stylise_tensor(runner, content, (100, 220), tile=tile, overlap=0, cell=8)
        assert runner.calls >= 8, "the image was not tiled"
        assert whole.shape == tiled.shape == (1, 3, 100, 220)
        assert float((whole - tiled).abs().max()) <= 1e-5


def test_a_missing_style_and_torch_only_styles_are_refused(net):
    content, a, b = picture(32, 32, 13), picture(32, 32, 14), picture(32, 32, 15)
    with pytest.raises(UsageError, match="needs a style image") as info:
        net.generate(content)
    assert info.value.params == ("style",)
    one = net.prepare_style([a], alpha=0.25)
    inputs = net.core_inputs(content, (30, 30), style=one)
    assert list(inputs) == ["image", "style", "style_alpha"] and inputs["image"].shape == (1, 3, 32, 32)
    assert torch.equal(inputs["style"], a) and torch.equal(inputs["style_alpha"], torch.tensor([0.25]))
    for style in (net.prepare_style([a, b]), net.prepare_style([a], masks=torch.ones(1, 1, 32, 32))):
        with pytest.raises(UsageError, match="need the torch runtime") as info:
            net.core_inputs(content, (32, 32), style=style)
        assert info.value.params == ("runtime",)


def test_encoder_weights_other_than_the_trained_ones_are_refused():
    net = AdaINNet(encoder="tiny_vgg", weights="random", seed=0)
    assert net.encoder.weights_id == "random:0"
    AdaINNet(encoder="tiny_vgg", weights="random", seed=0, weights_id="random:0")  # the matching weights are fine
    with pytest.raises(ModelFileError, match=r"trained against encoder weights random:0, but the given ones \(random\) are random:1") as info:
        AdaINNet(encoder="tiny_vgg", weights="random", seed=1, weights_id="random:0")
    assert info.value.params == ("encoder_weights",) and "\n" not in str(info.value)
    with pytest.raises(ModelFileError, match="trained against encoder weights sha256:"):  # through the registry, as a model file is loaded
        net_from_config("adain", {**net.config, "weights_id": "sha256:" + "ab" * 32})


def test_the_state_dict_is_the_decoder_only(net):
    state = net.state_dict()
    assert state and all(k.startswith("decoder.") for k in state)
    assert sum(v.numel() for v in state.values()) == sum(p.numel() for p in net.trainable_parameters())
    assert not any(p.requires_grad for p in net.encoder.parameters())
    torch.manual_seed(123)
    other = AdaINNet(encoder="tiny_vgg", weights="random")
    assert not all(torch.equal(state[k], other.state_dict()[k]) for k in state)
    result = other.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert all(torch.equal(state[k], other.state_dict()[k]) for k in state)
    with pytest.raises(RuntimeError, match="unexpected keys"):
        other.load_state_dict({**state, "encoder.stages.0.weight": torch.zeros(1)}, strict=True)
    with pytest.raises(RuntimeError, match="Missing key"):
        other.load_state_dict({k: v for k, v in state.items() if "convs.0." not in k}, strict=True)
    wrapped = torch.nn.Sequential(net)  # nested, as in an export wrapper
    assert set(wrapped.state_dict()) == {"0." + k for k in state}


def test_sub_pixel_decoder_equals_the_textbook_decoder(net):
    f = torch.rand(2, net.decoder.convs[0].in_channels, 5, 7)
    with torch.no_grad():
        assert torch.allclose(net.decoder(f), net.decoder.reference(f), atol=1e-5)


def test_onnx_export_matches_pytorch(net, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from impasto.methods.ff_export import dynamic_axes

    inputs = net.example_inputs()
    assert list(inputs) == ["image", "style", "style_alpha"] and inputs["image"].shape == (1, 3, 64, 48)
    path = tmp_path / "adain.onnx"
    torch.onnx.export(net.export_module(), tuple(inputs.values()), str(path), dynamo=False, opset_version=17, input_names=list(inputs), output_names=["stylised"], dynamic_axes=dynamic_axes(inputs))
    model = onnx.load(str(path))
    assert any(n.op_type == "InstanceNormalization" for n in model.graph.node)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    content, painting = picture(72, 88, 16), picture(56, 40, 17)
    feeds = net.core_inputs(content, (72, 88), style=net.prepare_style([painting], alpha=0.7))
    got = torch.from_numpy(session.run(None, {k: v.numpy() for k, v in feeds.items()})[0])
    with torch.no_grad():
        expected = net.generate(content, style=net.prepare_style([painting], alpha=0.7))
    assert got.shape == expected.shape and float((got - expected).abs().max()) <= 1e-3
