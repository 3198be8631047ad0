"""--precision auto|fp32|bf16: names, the auto policy, and the quality guards of bfloat16
(features and network outputs close to fp32; a Gatys run's loss close to fp32's)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from impasto import precision as P
from impasto.errors import ConfigError
from impasto.features.padding import padding_mode
from impasto.methods import gatys
from impasto.methods.gatys import GatysConfig
from impasto.methods.gatys_method import build_gatys_encoder
from impasto.nets.registry import get_arch, twin_net


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend the CPU computes bfloat16 natively (the suite otherwise runs with it off)."""
    monkeypatch.setenv("IMPASTO_CPU_BF16", "1")
    P.cpu_bf16.cache_clear()
    yield
    P.cpu_bf16.cache_clear()


def _smooth(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(1, 3, max(1, h // 8), max(1, w // 8), generator=g), size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def test_names_and_spellings() -> None:
    assert [P.normalise_precision(n) for n in ("auto", "FP32", "float32", "bf16", "bfloat16")] == ["auto", "fp32", "fp32", "bf16", "bf16"]
    assert not P.is_precision("half")
    with pytest.raises(ValueError, match=r"^precision 'half': choose from auto, fp32, bf16$"):
        P.normalise_precision("half")
    with pytest.raises(ConfigError, match=r"precision must be one of auto, fp32, bf16, got 'half'"):
        GatysConfig(precision="half")
    assert all(P.is_precision(c) for c in P.PRECISION_CHOICES) and {"float32", "bfloat16"} <= set(P.PRECISION_CHOICES)


def test_cli_takes_the_long_spellings(capsys) -> None:
    """``--precision bfloat16`` (the spelling earlier releases took) still parses, and means bf16."""
    from impasto.cli.main import main

    assert main(["apply", "missing-model", "photo.jpg", "--precision", "bfloat16", "--runtime", "onnx"]) == 2
    assert capsys.readouterr().err.strip() == "impasto: error: --precision bf16 needs --runtime torch"


def test_the_suite_runs_fp32_and_auto_follows_the_cpu(native_bf16, monkeypatch) -> None:
    cpu = torch.device("cpu")
    assert P.resolve_precision("auto", cpu, "adain") is torch.bfloat16  # native, and the guard holds
    assert P.resolve_precision("auto", cpu, "superres") is torch.bfloat16
    assert P.resolve_precision("auto", cpu, "johnson") is None  # 3e-2 from fp32: the guard fails
    assert P.resolve_precision("auto", cpu, "gatys") is None  # optimisation stays fp32
    assert P.resolve_precision("bf16", cpu, "gatys") is torch.bfloat16 and P.resolve_precision("fp32", cpu, "adain") is None
    assert P.resolve_precision("bf16", "meta") is None  # mps and other devices: float32
    monkeypatch.setenv("IMPASTO_CPU_BF16", "0")
    P.cpu_bf16.cache_clear()
    assert P.resolve_precision("auto", cpu, "adain") is None  # emulated bf16 is slower: never by default
    assert P.resolve_precision("bf16", cpu, "adain") is torch.bfloat16  # asked for: honoured


def test_every_key_of_the_auto_table_is_an_arch_or_a_training_recipe() -> None:
    from impasto.methods.adain_train import AdaINTrainConfig
    from impasto.methods.ff_train import TrainConfig
    from impasto.methods.stylepredict_train import StylePredictTrainConfig
    from impasto.methods.superres_train import SuperResTrainConfig

    recipes = [c.PRECISION_KEY for c in (TrainConfig, AdaINTrainConfig, StylePredictTrainConfig, SuperResTrainConfig)]
    assert len(set(recipes)) == len(recipes)
    for key in P.AUTO_BF16:
        if key not in recipes:
            get_arch(key)


def test_bf16_encoder_returns_close_float32_features(tiny_encoder) -> None:
    x = _smooth(48, 64, 1)
    full = tiny_encoder(x)
    with P.encoder_precision(tiny_encoder, torch.bfloat16):
        half = tiny_encoder(x)
        staged = dict(tiny_encoder.iter_stages(x, ["relu3_1"]))
    assert tiny_encoder.compute_dtype is None  # the shared encoder is left as it was
    for name, f in full.items():
        assert half[name].dtype == torch.float32
        assert float((half[name] - f).norm() / f.norm()) < 0.03, name
    assert float((staged["relu3_1"] - full["relu3_1"]).norm() / full["relu3_1"].norm()) < 0.03


@pytest.mark.parametrize("arch", ["johnson", "adain", "superres"])
def test_network_outputs_in_bf16(arch: str) -> None:
    """The guard: networks auto runs in bf16 stay within 1e-2 of fp32 (largest difference);
    the others exceed it (why auto keeps them fp32)."""
    spec = get_arch(arch)
    net = twin_net(arch, dict(spec.defaults))
    photo = _smooth(64, 64, 3)
    style = net.prepare_style([_smooth(64, 64, 4)]) if arch == "adain" else None
    with torch.inference_mode():
        full = net.generate(photo, size=(64, 64), style=style).float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = net.generate(photo, size=(64, 64), style=style).float()
    diff = float((half - full).abs().max())
    if P.AUTO_BF16.get(arch, False):
        assert diff <= 1e-2, diff
    else:
        assert diff > 1e-2, diff


@pytest.mark.parametrize("arch", ["johnson", "multistyle"])
def test_residual_blocks_in_bf16_keep_the_guard(arch: str) -> None:
    """auto's mixed mode for the Johnson family: the residual blocks' convolutions in bf16, their
    last norm and the skip connection in float32. Within 1e-2 of fp32 where the whole network in
    bf16 is not (the test above), and the output stays float32."""
    from impasto.nets.johnson import ResidualBlock

    net = twin_net(arch, dict(get_arch(arch).defaults)).eval()
    photo = _smooth(64, 64, 3)
    with torch.inference_mode():
        full = net.generate(photo, size=(64, 64))
        blocks = [m for m in net.modules() if isinstance(m, ResidualBlock)]
        for m in blocks:
            m.compute_dtype = torch.bfloat16
        mixed = net.generate(photo, size=(64, 64))
        with torch.autocast("cpu", dtype=torch.bfloat16):  # whole-network autocast wins over the blocks' own
            half = net.generate(photo, size=(64, 64)).float()
    assert blocks and mixed.dtype == torch.float32
    diff = float((mixed - full).abs().max())
    assert 0 < diff <= 1e-2, diff
    assert float((half - full).abs().max()) > diff


def test_auto_runs_the_residual_blocks_of_johnson_networks_in_bf16(native_bf16, monkeypatch, tmp_path) -> None:
    """Where bf16 is native, ``auto`` gives johnson and multistyle bf16 residual blocks (the
    runner sets them, the manifest says so, and ``runtime auto`` picks PyTorch for it)."""
    from impasto.methods.feedforward import ApplyConfig, ModelSession, TorchRunner, load_model
    from impasto.methods.ff_onnx import choose_runtime
    from impasto.nets.johnson import ResidualBlock
    from tests.feedforward_cli.conftest import build_model_file

    cpu = torch.device("cpu")
    assert P.residual_precision("auto", cpu, "johnson") is torch.bfloat16 and P.residual_precision("auto", cpu, "multistyle") is torch.bfloat16
    assert P.residual_precision("auto", cpu, "johnson-small") is None  # not in the table: fp32
    assert P.residual_precision("auto", cpu, "superres") is None  # the whole network is bf16 already
    assert P.residual_precision("fp32", cpu, "johnson") is None and P.residual_precision("bf16", cpu, "johnson") is None
    model = build_model_file(tmp_path / "j.pt", "johnson")
    runner = TorchRunner(load_model(model), ApplyConfig())
    assert runner.autocast is None and {m.compute_dtype for m in runner.net.modules() if isinstance(m, ResidualBlock)} == {torch.bfloat16}
    with ModelSession(model, ApplyConfig(runtime="torch")) as session:
        assert session.describe("apply", ApplyConfig(runtime="torch"))["precision"] == "bf16-residual"
    monkeypatch.setattr("impasto.methods.ff_onnx.onnx_available", lambda: True)
    runtime, reason = choose_runtime(model, "johnson", ApplyConfig(device="cpu"))
    assert runtime == "torch" and "residual blocks in bfloat16" in reason
    explicit = TorchRunner(load_model(model), ApplyConfig(precision="fp32"))
    assert {m.compute_dtype for m in explicit.net.modules() if isinstance(m, ResidualBlock)} == {None}
    monkeypatch.setenv("IMPASTO_CPU_BF16", "0")
    P.cpu_bf16.cache_clear()
    assert P.residual_precision("auto", cpu, "johnson") is None  # emulated bf16: fp32
    assert choose_runtime(model, "johnson", ApplyConfig(device="cpu"))[0] == "onnx"


def _run(cfg: GatysConfig, content, style, encoder):
    return gatys.run(cfg, content, [gatys.StyleInput(style)], encoder=encoder)


@pytest.fixture(scope="module")
def vgg19():
    return build_gatys_encoder(GatysConfig(encoder="vgg19", weights="random"))


def test_gatys_bf16_quality_guard(vgg19) -> None:
    """One evaluation in bf16: loss within 1 % of fp32 and the gradient pointing the same way
    (cosine 0.98 measured; a wrong cast or a float16 overflow falls far below 0.95); a short run's
    final loss (measured in fp32) within 2 %. The manifest says which ran."""
    content, style = _smooth(48, 64, 1), _smooth(64, 64, 2)
    cfg = GatysConfig(edge=64, scales="64", iterations=10, encoder="vgg19", weights="random", seed=0)
    loss = gatys.build_loss(cfg, vgg19)
    with padding_mode(vgg19, cfg.padding):
        loss.set_style([style])
        loss.set_content(content)
        x = content.clone().requires_grad_(True)
        l32 = loss(x)[0]
        (g32,) = torch.autograd.grad(l32, x)
        with P.encoder_precision(vgg19, torch.bfloat16):
            l16 = loss(x)[0]
            (g16,) = torch.autograd.grad(l16, x)
    assert abs(float(l16.detach() / l32.detach()) - 1) < 0.01
    assert float(F.cosine_similarity(g16.flatten(), g32.flatten(), dim=0)) > 0.95
    a = _run(cfg, content, style, vgg19)
    b = _run(GatysConfig(**{**cfg.__dict__, "precision": "bf16"}), content, style, vgg19)
    assert a.encoder_info["precision"] == "fp32" and b.encoder_info["precision"] == "bf16"
    with padding_mode(vgg19, cfg.padding), torch.no_grad():
        la, lb = float(loss(a.image)[0]), float(loss(b.image)[0])
    assert abs(lb / la - 1) < 0.02, (la, lb)


def test_gatys_auto_is_fp32_even_where_bf16_is_native(native_bf16, tiny_encoder) -> None:
    content, style = _smooth(32, 40, 1), _smooth(40, 40, 2)
    out = _run(GatysConfig(edge=40, scales="40", iterations=2, encoder="tiny_vgg", weights="random"), content, style, tiny_encoder)
    assert out.encoder_info["precision"] == "fp32"


def test_gatys_tips_bf16_only_where_auto_leaves_native_bf16_unused(native_bf16, monkeypatch, tmp_path, capsys) -> None:
    """``impasto gatys`` says once that --precision bf16 is faster on a CPU with native bf16 when
    ``auto`` keeps it in fp32; not for an explicit precision, not with --quiet, not where bf16
    is emulated, and not for methods without measured numbers."""
    from impasto.cli.main import main

    cpu = torch.device("cpu")
    assert P.precision_tip("auto", cpu, "gatys") == P.BF16_TIP["gatys"]
    assert P.precision_tip("fp32", cpu, "gatys") is None and P.precision_tip("bf16", cpu, "gatys") is None
    assert P.precision_tip("auto", cpu, "adain") is None  # auto already picks bf16 there
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    from PIL import Image

    Image.new("RGB", (40, 32), (200, 120, 40)).save(content)
    Image.new("RGB", (40, 40), (20, 60, 200)).save(style)
    run = ["gatys", str(content), str(style), "-o", str(tmp_path / "o.png"), "--edge", "40", "--scales", "40", "-n", "1",
           "--encoder", "tiny_vgg", "--weights", "random"]
    tips = []
    for extra in ([], ["--precision", "fp32"], ["--quiet"]):
        assert main([*run, *extra]) == 0
        tips.append([ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("tip: ")])
    assert tips == [[f"tip: {P.BF16_TIP['gatys']}"], [], []]
    monkeypatch.setenv("IMPASTO_CPU_BF16", "0")
    P.cpu_bf16.cache_clear()
    assert P.precision_tip("auto", cpu, "gatys") is None
