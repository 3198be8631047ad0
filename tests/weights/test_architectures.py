"""ResNet-50 and Inception v3 written without torchvision: same keys and shapes, stages in order.

torchvision is not installable here, so its state-dict layout is pinned by counts and a few
key/shape pairs derived from torchvision's source (and the published parameter counts).
"""

from __future__ import annotations

import pytest
import torch

from impasto.features.inception import (
    INCEPTION_LAYER_PRESETS,
    INCEPTION_MIN_SIDE,
    build_inception_v3,
    inception_stages,
)
from impasto.features.resnet import RESNET_LAYER_PRESETS, RESNET_MIN_SIDE, build_resnet50, resnet_stages


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_resnet50().eval()


@pytest.fixture(scope="module")
def inception() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_inception_v3().eval()


def chain(stages: list[tuple[str, torch.nn.Module]], x: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {}
    for name, module in stages:
        x = module(x)
        out[name] = x
    return out


def output_of(model: torch.nn.Module, submodule: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    handle = submodule.register_forward_hook(lambda m, i, o: seen.append(o.clone()))
    try:
        model(x)
    finally:
        handle.remove()
    return seen[0]


# --- ResNet-50 --------------------------------------------------------------------------------


def test_resnet50_state_dict_matches_torchvision(resnet) -> None:
    sd = resnet.state_dict()
    # 53 convs + 53 BNs x 5 (weight, bias, running_mean, running_var, num_batches_tracked) + fc x 2
    assert len(sd) == 320
    expected = {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.running_var": (64,),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer2.0.conv2.weight": (128, 128, 3, 3),  # v1.5: stride on the 3x3
        "layer3.5.bn3.weight": (1024,),
        "layer4.2.conv3.weight": (2048, 512, 1, 1),
        "fc.weight": (1000, 2048),
        "fc.bias": (1000,),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert resnet.layer2[0].conv2.stride == (2, 2) and resnet.layer2[0].conv1.stride == (1, 1)
    assert sum(p.numel() for p in resnet.parameters()) == 25_557_032  # torchvision's published count


def test_resnet_stage_names(resnet) -> None:
    names = [n for n, _ in resnet_stages(resnet)]
    blocks = [f"layer{i}.{j}" for i, n in zip(range(1, 5), (3, 4, 6, 3)) for j in range(n)]
    assert names == ["conv1", "bn1", "relu", "maxpool", *blocks]
    for layer in (*RESNET_LAYER_PRESETS["content"], *RESNET_LAYER_PRESETS["style"]):
        assert layer in names


@torch.no_grad()
def test_resnet_stages_equal_the_forward_pass(resnet) -> None:
    x = torch.rand(1, 3, 64, 64)
    staged = chain(resnet_stages(resnet), x)
    assert torch.allclose(staged["layer4.2"], output_of(resnet, resnet.layer4, x), atol=1e-5)
    assert torch.allclose(staged["layer2.3"], output_of(resnet, resnet.layer2, x), atol=1e-5)
    assert torch.allclose(staged["layer4.2"], resnet.forward_features(x), atol=1e-5)
    assert staged["bn1"].min() < 0  # the "relu" stage did not modify bn1's output in place
    assert resnet(x).shape == (1, 1000)


@torch.no_grad()
def test_resnet_min_side(resnet) -> None:
    out = chain(resnet_stages(resnet), torch.rand(1, 3, RESNET_MIN_SIDE, RESNET_MIN_SIDE))
    assert out["layer4.2"].shape == (1, 2048, 1, 1)
    assert out["layer1.2"].shape[-1] == RESNET_MIN_SIDE // 4
    # padded everywhere: smaller inputs still run (the minimum is a quality policy)
    assert resnet.forward_features(torch.rand(1, 3, 8, 8)).shape == (1, 2048, 1, 1)


# --- Inception v3 -----------------------------------------------------------------------------


def test_inception_state_dict_matches_torchvision(inception) -> None:
    sd = inception.state_dict()
    # 96 BasicConv2d x 6 (conv.weight + 5 BN entries) + AuxLogits.fc x 2 + fc x 2
    assert len(sd) == 580
    expected = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_1a_3x3.bn.running_mean": (32,),
        "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
        "AuxLogits.conv0.conv.weight": (128, 768, 1, 1),
        "AuxLogits.conv1.conv.weight": (768, 128, 5, 5),
        "AuxLogits.fc.weight": (1000, 768),
        "fc.weight": (1000, 2048),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert not any(k.endswith(".conv.bias") for k in sd)  # BasicConv2d has no conv bias
    assert inception.Mixed_5b.branch1x1.bn.eps == 0.001
    assert sum(p.numel() for p in inception.parameters()) == 27_161_264  # torchvision's published count


def test_inception_stage_names(inception) -> None:
    names = [n for n, _ in inception_stages(inception)]
    assert names[:7] == ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2"]
    assert names[7:] == [f"Mixed_{b}" for b in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c")]
    for layer in (*INCEPTION_LAYER_PRESETS["content"], *INCEPTION_LAYER_PRESETS["style"]):
        assert layer in names


@torch.no_grad()
def test_inception_stages_equal_the_forward_pass(inception) -> None:
    x = torch.rand(1, 3, INCEPTION_MIN_SIDE, INCEPTION_MIN_SIDE)
    staged = chain(inception_stages(inception), x)
    assert torch.allclose(staged["Mixed_7c"], output_of(inception, inception.Mixed_7c, x), atol=1e-5)
    assert staged["Mixed_7c"].shape == (1, 2048, 1, 1)
    assert staged["Mixed_6e"].shape[1] == 768 and staged["Mixed_5d"].shape[1] == 288


@torch.no_grad()
def test_inception_min_side_is_75(inception) -> None:
    inception.forward_features(torch.rand(1, 3, INCEPTION_MIN_SIDE, INCEPTION_MIN_SIDE))
    with pytest.raises(RuntimeError):
        inception.forward_features(torch.rand(1, 3, INCEPTION_MIN_SIDE - 1, INCEPTION_MIN_SIDE - 1))


def test_inception_forward_does_not_transform_its_input(inception) -> None:
    assert not hasattr(inception, "transform_input") or not inception.transform_input


# --- both -------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["resnet50", "inception_v3"])
def test_construction_is_deterministic_given_the_seed(arch, request) -> None:
    model = request.getfixturevalue({"resnet50": "resnet", "inception_v3": "inception"}[arch])  # built after torch.manual_seed(0)
    torch.manual_seed(0)
    again = (build_resnet50 if arch == "resnet50" else build_inception_v3)().state_dict()
    assert all(torch.equal(t, again[k]) for k, t in model.state_dict().items())


@pytest.mark.parametrize("arch", ["resnet50", "inception_v3"])
def test_a_legacy_checkpoint_loads_strictly_after_adaptation(arch, request) -> None:
    """torchvision's ResNet-50 V1 and Inception v3 files predate num_batches_tracked."""
    from impasto.weights import adapt_state_dict

    model = request.getfixturevalue({"resnet50": "resnet", "inception_v3": "inception"}[arch])
    full = model.state_dict()
    legacy = {k: v for k, v in full.items() if not k.endswith("num_batches_tracked")}
    assert len(legacy) == {"resnet50": 267, "inception_v3": 484}[arch]  # 267: as published for resnet50-0676ba61.pth
    model.load_state_dict(adapt_state_dict(legacy), strict=True)
