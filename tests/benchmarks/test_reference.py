"""The benchmark's plain reference networks (benchmarks/reference.py) are the same architectures as
impasto's, so that bench_perf compares like with like: same parameter shapes, and with the same
weights the same function (up to impasto's output convention)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from impasto.features.vgg import build_vgg
from impasto.nets import build_net

_path = Path(__file__).resolve().parents[2] / "benchmarks" / "reference.py"
_spec = importlib.util.spec_from_file_location("bench_reference", _path)
assert _spec is not None and _spec.loader is not None
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _copy_in_order(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Copy ``src``'s parameters into ``dst``'s, matched by order (shapes must agree)."""
    pairs = list(zip(src.parameters(), dst.parameters(), strict=True))
    with torch.no_grad():
        for a, b in pairs:
            assert a.shape == b.shape
            b.copy_(a)


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_vgg_features_have_torchvision_keys_and_impasto_shapes(arch: str) -> None:
    with torch.device("meta"):
        mine = ref.VGG(ref.VGG_BLOCKS[arch]).features.state_dict()
        theirs = build_vgg(arch).features.state_dict()
    assert {k: tuple(v.shape) for k, v in mine.items()} == {k: tuple(v.shape) for k, v in theirs.items()}


def test_full_vgg19_checkpoint_layout() -> None:
    with torch.device("meta"):
        net = ref.VGG()
    keys = set(net.state_dict())
    assert {"features.0.weight", "features.34.bias", "classifier.0.weight", "classifier.6.bias"} <= keys
    assert _count(net) == 143_667_240  # torchvision's vgg19


def test_layer_indices_follow_torchvision() -> None:
    b19, b16 = ref.VGG_BLOCKS["vgg19"], ref.VGG_BLOCKS["vgg16"]
    assert [ref.vgg_layer_index(b19, n) for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")] == [1, 6, 11, 20, 22, 29]
    assert [ref.vgg_layer_index(b16, n) for n in ("relu1_2", "relu2_2", "relu3_3", "relu4_3")] == [3, 8, 15, 22]


def test_gatys_reference_loads_a_checkpoint_and_evaluates(tmp_path: Path) -> None:
    path = ref.write_random_vgg19(tmp_path / "vgg.pth", widths=ref.TINY_WIDTHS, hidden=16)
    model = ref.GatysReference(path, widths=ref.TINY_WIDTHS, hidden=16)
    assert len(model.features) == 30
    c, s = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    model.set_targets(c, s)
    x = c.clone().requires_grad_(True)
    loss = model.evaluate(x)
    assert loss.ndim == 0 and x.grad is not None and x.grad.shape == x.shape
    img, opt = model.lbfgs(torch.rand(1, 3, 32, 32))
    first = model.step(img, opt)
    assert model.step(img, opt) < first


def test_transformer_net_is_impassos_johnson() -> None:
    torch.manual_seed(0)
    mine, (theirs, _) = ref.TransformerNet(), build_net("johnson")
    assert _count(mine) == _count(theirs) == 1_679_235
    _copy_in_order(theirs, mine)
    x = torch.rand(1, 3, 32, 24)
    with torch.no_grad():
        y = mine(x)
        assert y.shape == x.shape
        torch.testing.assert_close(torch.sigmoid(y), theirs.eval()(x), atol=1e-4, rtol=0)


def test_cond_transformer_net_is_impassos_multistyle() -> None:
    torch.manual_seed(0)
    mine, (theirs, _) = ref.CondTransformerNet(3), build_net("multistyle", overrides={"n_styles": 3})
    assert _count(mine) == _count(theirs)
    conv_mine = [p for n, p in mine.named_parameters() if "gamma" not in n and "beta" not in n]
    conv_theirs = [p for n, p in theirs.named_parameters() if "gammas" not in n and "betas" not in n]
    norms_mine = [m for m in mine.modules() if isinstance(m, ref.CondInstanceNorm)]
    with torch.no_grad():
        for a, b in zip(conv_theirs, conv_mine, strict=True):
            b.copy_(a)
        for norm, cin in zip(theirs.norms, norms_mine, strict=True):
            cin.gamma.copy_(torch.stack(list(norm.gammas)) + torch.rand(3, 1))
            cin.beta.copy_(torch.stack(list(norm.betas)) + torch.rand(3, 1))
            for k in range(3):
                norm.gammas[k].copy_(cin.gamma[k])
                norm.betas[k].copy_(cin.beta[k])
    w = torch.tensor([[0.2, 0.0, 0.8]])
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(torch.sigmoid(mine(x, w)), theirs.eval().generate(x, style=w), atol=1e-4, rtol=0)


def test_adain_reference_is_impassos_adain() -> None:
    theirs, _ = build_net("adain", overrides={"weights": "random", "encoder": "tiny_vgg"})
    mine = ref.AdaINReference(widths=ref.TINY_WIDTHS)
    assert _count(mine.decoder) == _count(theirs.decoder)
    assert _count(mine.encoder) == _count(theirs.encoder.stages)
    _copy_in_order(theirs.encoder.stages, mine.encoder)
    _copy_in_order(theirs.decoder, mine.decoder)
    theirs.eval()
    c, s = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = mine(c, s)
        assert out.shape == c.shape
        # unbiased (reference) vs biased (impasto) variance: a relative 1/N in the std
        torch.testing.assert_close(out, theirs(c, theirs.prepare_style([s])), atol=2e-3, rtol=0)


def test_adain_decoder_matches_full_width() -> None:
    with torch.device("meta"):
        assert _count(ref.adain_decoder()) == 3_505_219  # naoto0804's decoder


def test_superres_reference_is_impassos_superres() -> None:
    torch.manual_seed(0)
    mine, (theirs, _) = ref.SuperResNet(4), build_net("superres")
    assert _count(mine) == _count(theirs)
    torch.nn.init.normal_(theirs.tail.conv.weight, std=0.01)  # impasto starts it at zero
    _copy_in_order(theirs, mine)
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        y = mine(x)
        assert y.shape == (1, 3, 48, 40)
        torch.testing.assert_close(y, theirs.eval()(x), atol=1e-5, rtol=0)


def test_johnson_trainer_step_runs_and_learns() -> None:
    style = torch.rand(1, 3, 24, 24) * 255
    trainer = ref.JohnsonTrainer(style, 1, vgg="vgg19", widths=ref.TINY_WIDTHS)
    x = torch.rand(1, 3, 24, 24) * 255
    first = trainer.step(x)
    for _ in range(3):
        last = trainer.step(x)
    assert last < first
