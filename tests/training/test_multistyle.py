"""Multi-style networks (conditional instance norm): one-hot CIN is plain instance norm, mixing
interpolates γ/β and its endpoints are the single styles, an added style leaves every other
parameter bit-identical, training and resuming work, export takes the style vector, and bad
style choices get one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.api import load_input_image
from impasto.errors import ConfigError, UsageError
from impasto.methods.feedforward import TrainConfig, load_model, train
from impasto.nets import MultiStyleNet, TransformerNet, style_vector
from impasto.nets.multistyle import ConditionalInstanceNorm
from impasto.nets.norm import InstanceNorm
from impasto.progress import StepEvent

TINY = dict(encoder="tiny_vgg", weights="random", train_size=32, batch_size=2, workers=0, preview_every=0)


def make_photo_folder(root, n=5):
    """Photos of mixed sizes and formats in nested folders (the training conftest's, minus broken files)."""
    names = ["p0.png", "p1.jpg", "sub/p2.webp", "sub/p3.png", "sub/deeper/p4.png"]
    for i, name in enumerate(names[:n]):
        g = torch.Generator().manual_seed(i)
        low = torch.rand(1, 3, 5, 6, generator=g)
        img = torch.nn.functional.interpolate(low, size=(36 + 4 * i, 44 + 2 * i), mode="bilinear", align_corners=False)[0]
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(root / name)
    return root


class Crash(Exception):
    """Stands in for the process being killed."""


def _style(path, seed, channel):
    g = torch.Generator().manual_seed(seed)
    img = torch.zeros(3, 48, 48)
    img[channel, :, :: 4 + seed] = 1.0
    img = (img + 0.25 * torch.rand(3, 48, 48, generator=g)).clamp(0, 1)
    Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("multistyle")
    photos = make_photo_folder(root / "photos")
    styles = root / "styles"
    styles.mkdir()
    paths = [_style(styles / f"s{i}.png", i, i) for i in range(3)]
    config = TrainConfig(**{**TINY, "arch": "multistyle-small", "steps": 4, "log_every": 1})
    model = train(config, paths[:2], photos, root / "two")
    return {"root": root, "photos": photos, "styles": paths, "model": model, "config": config}


def _randomised(net: MultiStyleNet, seed: int = 0) -> MultiStyleNet:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.norms:
            for offset, params in ((1.0, m.gammas), (0.0, m.betas)):
                for p in params:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.5 + offset)
    return net.eval()


def test_one_hot_cin_is_instance_norm_with_that_styles_gamma_beta():
    x = torch.randn(2, 8, 9, 11)
    cin = ConditionalInstanceNorm(8, 3, relu=True)
    for k in range(3):
        torch.nn.init.normal_(cin.gammas[k])
        torch.nn.init.normal_(cin.betas[k])
    plain = InstanceNorm(8, relu=True)
    with torch.no_grad():
        plain.weight.copy_(cin.gammas[1])
        plain.bias.copy_(cin.betas[1])
    cin.style = style_vector(3, 1).expand(2, -1)
    assert torch.equal(cin(x), plain(x))
    # a mix is the norm with interpolated γ/β
    cin.style = style_vector(3, mix={0: 0.25, 2: 0.75})
    with torch.no_grad():
        plain.weight.copy_(0.25 * cin.gammas[0] + 0.75 * cin.gammas[2])
        plain.bias.copy_(0.25 * cin.betas[0] + 0.75 * cin.betas[2])
    torch.testing.assert_close(cin(x), plain(x), rtol=1e-5, atol=1e-6)


def test_whole_network_with_one_hot_equals_johnson_with_that_style():
    net = _randomised(MultiStyleNet(3, channels=(8, 16, 16), n_res=1))
    x = torch.rand(1, 3, 37, 50)
    state = {}
    for name, value in net.state_dict().items():
        if ".gammas." in name or ".betas." in name:
            if name.endswith(".2"):
                state[name.replace(".gammas.2", ".weight").replace(".betas.2", ".bias")] = value
        else:
            state[name] = value
    johnson = TransformerNet((8, 16, 16), 1)
    johnson.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(net.generate(x, style=style_vector(3, 2)), johnson.eval()(x))


def test_mix_endpoints_equal_the_single_styles(world):
    photo = world["photos"] / "p0.png"
    for k in (0, 1):
        alone = impasto.run("apply", model=world["model"], image=photo, style_index=k).image
        assert torch.equal(impasto.run("apply", model=world["model"], image=photo, style_mix=f"{k}:1").image, alone)
        assert torch.equal(impasto.run("apply", model=world["model"], image=photo, style_mix=f"{k}:1,{1 - k}:0").image, alone)
    # by name, and a real mix lies between (differs from both)
    by_name = impasto.run("apply", model=world["model"], image=photo, style_mix="s0.png:0.5,s1.png:0.5")
    by_index = impasto.run("apply", model=world["model"], image=photo, style_mix="0:1,1:1")
    assert torch.equal(by_name.image, by_index.image)
    assert by_name.manifest["style_weights"] == {"0:s0.png": 0.5, "1:s1.png": 0.5}


def test_model_file_lists_its_styles_and_training_lowered_the_loss(world, tmp_path):
    meta = load_model(world["model"]).meta
    assert [(s["index"], s["name"]) for s in meta["styles"]] == [(0, "s0.png"), (1, "s1.png")]
    assert all(len(s["sha256"]) == 64 for s in meta["styles"])
    assert meta["net_config"]["n_styles"] == 2 and meta["arch"] == "multistyle-small"
    config = TrainConfig(**{**TINY, "arch": "multistyle-small", "steps": 24, "lr": 5e-3, "lr_schedule": "constant", "log_every": 1, "tv_weight": 0.0})
    train(config, world["styles"][:2], world["photos"], tmp_path / "run")
    totals = [json.loads(line)["total"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    first, last = sum(totals[:6]) / 6, sum(totals[-6:]) / 6
    assert last < 0.8 * first, f"loss did not go down: {first:.3f} -> {last:.3f}"


def test_add_style_trains_only_the_new_gamma_beta(world, tmp_path):
    added = train(None, world["styles"][2], world["photos"], tmp_path / "three", add_style_from=world["model"], steps=3, workers=0, preview_every=0)
    old, new = load_model(world["model"]), load_model(added)
    a, b = old.net.state_dict(), new.net.state_dict()
    fresh = [k for k in b if k not in a]
    assert fresh and all(k.endswith(".2") for k in fresh)
    assert all(torch.equal(a[k], b[k]) for k in a), "a parameter of the old model changed"
    assert any(not torch.equal(b[k], b[k[:-1] + "0"]) for k in fresh if ".gammas." in k), "the new style was not trained"
    assert [s["name"] for s in new.meta["styles"]] == ["s0.png", "s1.png", "s2.png"]
    assert new.meta["added_from"]["steps"] == 4 and new.meta["train_config"]["encoder"] == "tiny_vgg"
    photo = world["photos"] / "p1.jpg"
    for k in (0, 1):
        assert torch.equal(impasto.run("apply", model=world["model"], image=photo, style_index=k).image, impasto.run("apply", model=added, image=photo, style_index=k).image)


def test_resume_after_a_kill_equals_the_uninterrupted_run(world, tmp_path):
    """Killed mid-run (after a checkpoint, between two): the style draws, data order and Adam
    state come back, for a fresh multi-style run and for an added style."""
    config = TrainConfig(**{**TINY, "arch": "multistyle-small", "steps": 5, "checkpoint_every": 2, "log_every": 1})

    def kill_at(n):
        def cb(event):
            if isinstance(event, StepEvent) and event.step == n:
                raise Crash
        return cb

    for name, kwargs in (("fresh", {"config": config, "style_path": world["styles"][:2]}), ("added", {"config": None, "style_path": world["styles"][2], "add_style_from": world["model"], "steps": 5, "checkpoint_every": 2, "workers": 0, "preview_every": 0})):
        whole = train(data_dir=world["photos"], out_dir=tmp_path / f"{name}-whole", **kwargs)
        with pytest.raises(Crash):
            train(data_dir=world["photos"], out_dir=tmp_path / f"{name}-killed", callback=kill_at(3), **kwargs)
        resumed = train(data_dir=world["photos"], out_dir=tmp_path / f"{name}-killed", resume=True, **kwargs)
        a, b = load_model(whole).net.state_dict(), load_model(resumed).net.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_tiled_and_onnx_with_the_style_vector_input(world, tmp_path):
    pytest.importorskip("onnxruntime")
    photo = world["photos"] / "sub" / "p2.webp"
    whole = impasto.run("apply", model=world["model"], image=photo, style_mix="0:0.3,1:0.7").image
    tiled = impasto.run("apply", model=world["model"], image=photo, style_mix="0:0.3,1:0.7", tile=32, overlap=8).image
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)
    onnx = impasto.export(world["model"], tmp_path / "m.onnx")
    import onnx as onnx_lib

    assert [i.name for i in onnx_lib.load(str(onnx)).graph.input] == ["image", "style"]
    for extra in ({}, {"tile": 32, "overlap": 8}):
        got = impasto.run("apply", model=str(onnx), image=photo, style_mix="0:0.3,1:0.7", **extra).image
        assert (got - whole).abs().max() < 1e-3


def test_contact_sheet_holds_every_style(world, tmp_path):
    result = impasto.apply(world["model"], [world["photos"] / "p0.png"], tmp_path, sheet=True)
    (sheet,) = result.written
    assert sheet.name == "p0_sheet.png"
    meta = json.loads(Image.open(sheet).info["impasto"]) if "impasto" in Image.open(sheet).info else None
    img = np.asarray(Image.open(sheet).convert("RGB")).astype(np.float32) / 255
    photo = load_input_image(world["photos"] / "p0.png")[0]
    h, w = photo.shape[-2:]
    cells = [(0, 0), (0, 1), (1, 0)]  # 3 cells in a 2x2 grid: the photo, style 0, style 1
    for k, (r, c) in enumerate(cells):
        y0, x0 = 8 + r * (h + max(10, min(32, w // 16)) + 8 + 8), 8 + c * (w + 8)
        cell = torch.from_numpy(img[y0 : y0 + h, x0 : x0 + w]).permute(2, 0, 1)
        want = photo[0] if k == 0 else impasto.run("apply", model=world["model"], image=photo, style_index=k - 1).image[0]
        assert (cell - want).abs().max() <= 1 / 255 + 1e-6, f"cell {k}"
    if meta is not None:
        assert meta["sheet"] == ["photo", "0: s0.png", "1: s1.png"]


def test_bad_style_choices_are_one_line_errors(world, tmp_path, style_file):
    photo = world["photos"] / "p0.png"
    cases = [
        ({"style_index": 2}, "style_index 2 is out of range: the model holds styles 0..1"),
        ({"style_mix": "0:0.5,7:0.5"}, "style_mix names style 7, but the model holds styles 0..1"),
        ({"style_mix": "0:0.5,starry:0.5"}, "style_mix names style 'starry', which the model does not hold (styles: 0:s0.png, 1:s1.png)"),
        ({"style_mix": "0-0.5"}, "style_mix '0-0.5': expected INDEX:WEIGHT,... e.g. 0:0.3,2:0.7"),
        ({"style_mix": "0:0,1:0"}, "style_mix '0:0,1:0': the weights must not all be 0"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigError) as err:
            impasto.run("apply", model=world["model"], image=photo, **options)
        assert str(err.value) == message
    single = train(TrainConfig(**{**TINY, "arch": "johnson-small", "steps": 1}), style_file, world["photos"], tmp_path / "single")
    with pytest.raises(ConfigError, match="holds one style"):
        impasto.run("apply", model=single, image=photo, style_index=1)
    with pytest.raises(ConfigError, match="a contact sheet needs a multi-style model"):
        impasto.apply(single, [photo], tmp_path / "o", sheet=True)
    with pytest.raises(UsageError, match="are for arbitrary-style"):
        impasto.run("apply", model=world["model"], image=photo, style=style_file)
    with pytest.raises(UsageError, match="needs arch multistyle"):
        train(TrainConfig(**{**TINY, "arch": "johnson-small", "steps": 1}), world["styles"][:2], world["photos"], tmp_path / "x")
    with pytest.raises(UsageError, match="adding a style needs a model trained with arch multistyle"):
        train(None, world["styles"][2], world["photos"], tmp_path / "y", add_style_from=single)


def test_cli_train_add_style_apply_and_bad_choices(world, tmp_path, capsys):
    from impasto.cli.main import main

    photos, (s0, s1, s2) = world["photos"], world["styles"]
    common = ["--encoder", "tiny_vgg", "--weights", "random", "--train-size", "32", "--batch-size", "2", "--workers", "0", "--preview-every", "0", "-q"]
    assert main(["train", "--arch", "multistyle-small", "--style", str(s0), "--style", str(s1), "--data", str(photos), "-o", str(tmp_path / "run"), "--steps", "2", *common]) == 0
    # --from a training folder: its photos are found in its config.json; settings are --from's
    assert main(["train", "--arch", "multistyle-small", "--add-style", str(s2), "--from", str(tmp_path / "run"), "-o", str(tmp_path / "more"), "--steps", "1", "--workers", "0", "-q"]) == 0
    capsys.readouterr()
    assert main(["apply", str(tmp_path / "more"), "--list-styles"]) == 0
    assert [line.split()[:2] for line in capsys.readouterr().out.splitlines()] == [["0", "s0.png"], ["1", "s1.png"], ["2", "s2.png"]]
    photo = str(photos / "p0.png")
    assert main(["apply", str(tmp_path / "more"), photo, "-o", str(tmp_path / "out"), "--style-mix", "0:0.3,2:0.7", "-q"]) == 0
    capsys.readouterr()
    for flags, message in (
        (["--style-index", "3"], "impasto: error: --style-index 3 is out of range: the model holds styles 0..2"),
        (["--style-mix", "0:1,9:1"], "impasto: error: --style-mix names style 9, but the model holds styles 0..2"),
        (["--style", str(s0)], "--style paintings are for arbitrary-style (AdaIN) models; this multistyle-small model has its styles built in"),
    ):
        assert main(["apply", str(tmp_path / "more"), photo, "-o", str(tmp_path / "out"), "-q", *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert main(["train", "--style", str(s0), "--style", str(s1), "--data", str(photos), "-o", str(tmp_path / "no"), *common]) == 2
    assert "one network for several styles needs --arch multistyle" in capsys.readouterr().err
    assert main(["train", "--add-style", str(s2), "-o", str(tmp_path / "no2"), *common]) == 2
    assert "--add-style needs --from RUN" in capsys.readouterr().err


def test_bfloat16_precision_stays_close_to_float32(world):
    photo = world["photos"] / "p0.png"
    full = impasto.run("apply", model=world["model"], image=photo, style_index=1).image
    half = impasto.run("apply", model=world["model"], image=photo, style_index=1, precision="bfloat16")
    assert half.image.dtype == torch.float32 and (half.image - full).abs().mean() < 0.01
    assert half.manifest["config"]["precision"] == "bf16" and half.manifest["precision"] == "bf16"  # bfloat16 is an accepted spelling
    with pytest.raises(ConfigError, match="^precision bf16 needs runtime torch$"):
        impasto.run("apply", model=world["model"], image=photo, precision="bfloat16", runtime="onnx")
