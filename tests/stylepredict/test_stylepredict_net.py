"""The style-prediction network: registration and protocol, style weights and interpolation in
the embedding space, the predicted norm is instance norm with the predicted γ/β, alpha mixes with
the photo's own embedding, tiles equal the whole image, the encoder weights are checked and not
stored, and the exported graph matches PyTorch."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from impasto.errors import ConfigError, ModelFileError, UsageError
from impasto.methods.ff_tiling import TorchRunner, stylise_tensor
from impasto.nets import ARCHS, TransformerNet, get_arch, net_from_config
from impasto.nets.protocol import check_generator
from impasto.nets.streaming import receptive_radius
from impasto.nets.stylepredict import PredictedInstanceNorm, StyleEmbedding, StylePredictNet
from tests.conftest import require_module

from .conftest import SMALL, picture, small_net


def test_protocol_registration_and_config(net):
    check_generator(net, "stylepredict")
    assert net.takes == ("content", "style") and net.multiple == 4
    assert "stylepredict" in ARCHS
    spec = get_arch("stylepredict")
    assert (spec.defaults["encoder"], spec.defaults["layer"], spec.defaults["embedding"], spec.defaults["channels"]) == ("inception_v3", "Mixed_6e", 100, [32, 64, 128])
    assert spec.recipe == "impasto.methods.stylepredict_train:StylePredictTrainConfig:train_stylepredict"
    assert net.config == {
        "encoder": "tiny_vgg", "layer": "relu4_3", "weights": "random", "weights_id": None, "pooling": "max", "preprocessing": "auto", "seed": 0,
        "embedding": 100, "channels": [8, 16, 16], "n_res": 1, "upsample": "nearest", "separable": False, "outer_kernel": 9, "output": "sigmoid",
    }
    twin = net_from_config("stylepredict", dict(net.config))
    assert isinstance(twin, StylePredictNet) and twin.padded_size((50, 70)) == (52, 72)
    assert len(net.norms) == len(net.gamma_heads) == len(net.beta_heads) == 3 + 2 + 2
    assert all(isinstance(m, PredictedInstanceNorm) and not m.affine for m in net.norms)
    assert net.embed(torch.cat([picture(32, 32, 0), picture(32, 32, 1)])).shape == (2, 100)
    with pytest.raises(ConfigError, match="embedding must be") as info:
        small_net(embedding=0)
    assert info.value.params == ("embedding",)


def test_style_weights_and_embedding_interpolation(net):
    a, b, content = picture(48, 48, 4), picture(64, 40, 5), picture(48, 64, 6)
    with torch.no_grad():
        sa, sb = net.prepare_style([a]), net.prepare_style([b])
        alone = net.generate(content, style=sa)
        assert float((alone - net.generate(content, style=net.prepare_style([b]))).abs().max()) > 0.05, "the painting must matter"
        one_zero = net.prepare_style([a, b], [1.0, 0.0])
        assert torch.equal(one_zero.embedding, sa.embedding) and torch.equal(net.generate(content, style=one_zero), alone)
        mixed = net.prepare_style([a, b], [3.0, 1.0])
        assert torch.allclose(mixed.embedding, 0.75 * sa.embedding + 0.25 * sb.embedding, atol=1e-6)
        assert mixed.image is None and torch.equal(sa.image, a)
        for t, expected in ((1.0, alone), (0.0, net.generate(content, style=sb))):  # the ends of a path through the style space
            point = StyleEmbedding(t * net.embed(a) + (1 - t) * net.embed(b))
            assert float((net.generate(content, style=point) - expected).abs().max()) <= 1e-6
    for weights, why in (([1.0], "has 1 entries for 2"), ([1.0, -1.0], "must be >= 0"), ([0.0, 0.0], "must not all be 0")):
        with pytest.raises(ConfigError, match=why) as info:
            net.prepare_style([a, b], weights)
        assert info.value.params == ("style_weights",)


def test_alpha_mixes_with_the_photos_own_embedding(net):
    painting, content = picture(48, 48, 7), picture(40, 56, 8)
    with torch.no_grad():
        full = net.prepare_style([painting])
        own = net.embed(content)
        zero = net.prepare_style([painting], alpha=0.0, content=content)
        assert torch.allclose(zero.embedding, own, atol=1e-6) and torch.equal(zero.content, content)
        half = net.prepare_style([painting], alpha=0.25, content=content)
        assert torch.allclose(half.embedding, 0.25 * full.embedding + 0.75 * own, atol=1e-6)
        assert net.prepare_style([painting], content=content).content is None, "alpha 1 does not keep the photo"
        big = picture(600, 300, 9)
        assert net.prepare_style([painting], alpha=0.5, content=big).content.shape[-2:] == (512, 256)
    with pytest.raises(UsageError, match="pass the whole photo as content") as info:
        net.prepare_style([painting], alpha=0.5)
    assert info.value.params == ("alpha",)
    with pytest.raises(ConfigError, match="alpha must be in") as info:
        net.prepare_style([painting], alpha=1.5)
    assert info.value.params == ("alpha",)
    with pytest.raises(UsageError, match="need an AdaIN model") as info:
        net.prepare_style([painting], masks=torch.ones(1, 1, 40, 56))
    assert info.value.params == ("style_mask",)


def test_fixed_heads_give_plain_instance_norm_with_those_parameters(net):
    """With every head's weights zero and its bias fixed, any painting gives the same γ/β, and the
    network is the Johnson network whose (affine) instance norms hold them."""
    fixed = small_net(init=3)
    fixed.load_state_dict(net.state_dict())
    plain = TransformerNet(channels=SMALL["channels"], n_res=SMALL["n_res"]).eval()
    state = {k: v for k, v in net.state_dict().items() if not k.startswith(("bottleneck.", "gamma_heads.", "beta_heads."))}
    plain_norms = [m for m in plain.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(plain_norms) == len(fixed.norms)
    with torch.no_grad():
        for k, (g, b, m) in enumerate(zip(fixed.gamma_heads, fixed.beta_heads, plain_norms)):
            gamma, beta = 0.5 + torch.rand(g.out_features), torch.randn(b.out_features) * 0.3
            g.weight.zero_(), b.weight.zero_()
            g.bias.copy_(gamma), b.bias.copy_(beta)
            m.weight.copy_(gamma), m.bias.copy_(beta)
    missing, unexpected = plain.load_state_dict(state, strict=False)
    assert not unexpected and all(".norm." in k for k in missing)
    content = picture(44, 60, 10)
    with torch.no_grad():
        expected = plain(content)
        for painting in (picture(32, 32, 11), picture(48, 40, 12)):
            assert float((fixed.generate(content, style=fixed.prepare_style([painting])) - expected).abs().max()) <= 1e-5
        one = fixed.norms[0]
        x = torch.randn(2, one.num_features, 9, 7)
        one.params = fixed.norm_params(fixed.embed(torch.cat([picture(32, 32, 13), picture(32, 32, 14)])))[0]
        reference = torch.nn.functional.instance_norm(x, weight=plain_norms[0].weight, bias=plain_norms[0].bias, eps=one.eps)
        assert torch.allclose(one(x), torch.relu(reference) if one.relu else reference, atol=1e-5)
        one.params = None


class _StyleRunner(TorchRunner):
    """TorchRunner that hands the prepared style to the network."""

    def __init__(self, net: StylePredictNet, style: StyleEmbedding) -> None:
        super().__init__(SimpleNamespace(net=net), SimpleNamespace(device="cpu", channels_last=False, seed=0))  # type: ignore[arg-type]
        self.style = style
        self.calls = 0

    def __call__(self, image, size, origin=(0, 0)):
        self.calls += 1
        return super().__call__(image, size, origin)


def test_tiles_equal_the_whole_image(net):
    content, a, b = picture(100, 220, 15), picture(64, 64, 16), picture(48, 72, 17)
    halo = receptive_radius(net)
    assert 16 <= halo <= 128
    tile = 2 * ((halo + 3) // 4 * 4) + 40
    assert tile < 220, "the image must be larger than a tile"
    for style in (net.prepare_style([a], alpha=0.7, content=content), net.prepare_style([a, b], [1.0, 2.0])):
        runner = _StyleRunner(net, style)
        whole = stylise_tensor(runner, content, (100, 220), tile=0, overlap=0, cell=4)
        assert float(whole.std()) > 0.05
        runner.calls = 0
        tiled = stylise_tensor(runner, content, (100, 220), tile=tile, overlap=0, cell=4)
        assert runner.calls >= 8, "the image was not tiled"
        assert whole.shape == tiled.shape == (1, 3, 100, 220)
        assert float((whole - tiled).abs().max()) <= 1e-5


def test_a_missing_style_and_torch_only_styles_are_refused(net):
    content, a, b = picture(32, 32, 18), picture(32, 32, 19), picture(32, 32, 20)
    with pytest.raises(UsageError, match="needs a style") as info:
        net.generate(content)
    assert info.value.params == ("style",)
    with pytest.raises(UsageError, match="2 embeddings for a batch of 3") as info:
        net.generate(torch.rand(3, 3, 32, 32), style=StyleEmbedding(torch.zeros(2, 100)))
    assert info.value.params == ("style",)
    one = net.prepare_style([a], alpha=0.25, content=content)
    inputs = net.core_inputs(content, (30, 30), style=one)
    assert list(inputs) == ["image", "style", "style_alpha", "style_content"] and inputs["image"].shape == (1, 3, 32, 32)
    assert torch.equal(inputs["style"], a) and torch.equal(inputs["style_alpha"], torch.tensor([0.25])) and torch.equal(inputs["style_content"], content)
    blank = net.core_inputs(content, (32, 32), style=net.prepare_style([a]))["style_content"]
    assert blank.shape == (1, 3, 16, 16) and not blank.any()
    for style in (net.prepare_style([a, b]), StyleEmbedding(net.embed(a))):
        with pytest.raises(UsageError, match="need the torch runtime") as info:
            net.core_inputs(content, (32, 32), style=style)
        assert info.value.params == ("runtime",)


def test_encoder_weights_other_than_the_trained_ones_are_refused():
    net = small_net()
    assert net.encoder.weights_id == "random:0"
    small_net(weights_id="random:0")  # the matching weights are fine
    with pytest.raises(ModelFileError, match=r"trained against encoder weights random:0, but the given ones \(random\) are random:1") as info:
        small_net(seed=1, weights_id="random:0")
    assert info.value.params == ("encoder_weights",) and "\n" not in str(info.value)
    with pytest.raises(ModelFileError, match="trained against encoder weights sha256:"):  # through the registry, as a model file is loaded
        net_from_config("stylepredict", {**net.config, "weights_id": "sha256:" + "ab" * 32})


def test_the_state_dict_holds_no_encoder_tensors(net):
    state = net.state_dict()
    assert state and not any(k.startswith("encoder.") for k in state)
    assert {k.split(".")[0] for k in state} == {"down", "res", "up", "out", "bottleneck", "gamma_heads", "beta_heads"}
    assert sum(v.numel() for v in state.values()) == sum(p.numel() for p in net.trainable_parameters())
    assert not any(p.requires_grad for p in net.encoder.parameters())
    other = small_net(init=123)
    result = other.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert all(torch.equal(state[k], other.state_dict()[k]) for k in state)
    with pytest.raises(RuntimeError, match="unexpected keys"):
        other.load_state_dict({**state, "encoder.stages.0.weight": torch.zeros(1)}, strict=True)
    with pytest.raises(RuntimeError, match="Missing key"):
        other.load_state_dict({k: v for k, v in state.items() if not k.startswith("bottleneck.")}, strict=True)
    wrapped = torch.nn.Sequential(net)  # nested, as in an export wrapper
    assert set(wrapped.state_dict()) == {"0." + k for k in state}


def test_onnx_export_matches_pytorch(net, tmp_path):
    onnx = require_module("onnx")
    ort = require_module("onnxruntime")
    from impasto.methods.ff_export import dynamic_axes

    inputs = net.example_inputs()
    assert list(inputs) == ["image", "style", "style_alpha", "style_content"] and inputs["image"].shape == (1, 3, 64, 48)
    path = tmp_path / "stylepredict.onnx"
    torch.onnx.export(net.export_module(), tuple(inputs.values()), str(path), dynamo=False, opset_version=17, input_names=list(inputs), output_names=["stylised"], dynamic_axes=dynamic_axes(inputs))
    model = onnx.load(str(path))
    assert sum(n.op_type == "InstanceNormalization" for n in model.graph.node) == len(net.norms)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    content, painting = picture(72, 88, 21), picture(56, 40, 22)
    for style in (net.prepare_style([painting]), net.prepare_style([painting], alpha=0.6, content=content)):
        feeds = net.core_inputs(content, (72, 88), style=style)
        got = torch.from_numpy(session.run(None, {k: v.numpy() for k, v in feeds.items()})[0])
        with torch.no_grad():
            expected = net.generate(content, style=style)
        assert got.shape == expected.shape and float((got - expected).abs().max()) <= 1e-3
