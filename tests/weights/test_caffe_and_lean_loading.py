"""Caffe VGG checkpoints, files matching no record, and lean loading (only the layers used)."""

from __future__ import annotations

import gc
import hashlib
import weakref
from pathlib import Path

import pytest
import torch

from impasto.errors import WeightsError
from impasto.features import build_encoder
from impasto.features.vgg import build_vgg
from impasto.weights import CAFFE, IMAGENET, KnownFile, WeightSpec, registry, store

CAFFE_MEAN_BGR = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)


def caffe_layout_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """tiny_vgg weights with the keys of Johnson's Caffe conversion: torchvision's ``features.*``
    plus the classifier under the old layout (``classifier.1/.4/.6``, Dropout first)."""
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=gen) * 0.1 for k, v in build_vgg("tiny_vgg").state_dict().items()}
    for index, (rows, cols) in {1: (32, 64 * 7 * 7), 4: (32, 32), 6: (10, 32)}.items():
        state[f"classifier.{index}.weight"] = torch.randn(rows, cols, generator=gen)
        state[f"classifier.{index}.bias"] = torch.zeros(rows)
    return state


def save(path: Path, state: dict[str, torch.Tensor], *, legacy: bool = False) -> Path:
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


def register_caffe(monkeypatch: pytest.MonkeyPatch, path: Path, *, by: str) -> WeightSpec:
    """A ``tiny_vgg.caffe`` record for ``path``: by its 8-hex prefix (like vgg19.caffe's published
    file) or as a known variant (like neural-style-pt's re-saved file)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    size = path.stat().st_size
    if by == "prefix":
        spec = WeightSpec("tiny_vgg.caffe", "tiny_vgg", f"tiny_vgg-{digest[:8]}.pth", (f"https://e/tiny_vgg-{digest[:8]}.pth",),
                          digest[:8], None, "test", CAFFE, "test", check="prefix")
    else:
        other = "0" * 8
        spec = WeightSpec("tiny_vgg.caffe", "tiny_vgg", f"tiny_vgg-{other}.pth", (f"https://e/tiny_vgg-{other}.pth",),
                          other, None, "test", CAFFE, "test", check="prefix", variants=(KnownFile(digest, size, "test re-save"),))
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    return spec


@pytest.mark.parametrize("by", ["prefix", "variant"])
def test_a_caffe_layout_checkpoint_loads_with_caffe_preprocessing(tmp_path: Path, monkeypatch, by: str) -> None:
    state = caffe_layout_state()
    path = save(tmp_path / "vgg_caffe.pth", state)
    register_caffe(monkeypatch, path, by=by)
    enc = build_encoder("tiny_vgg", weights=str(path), layers=["relu1_1", "relu3_1"])
    assert enc.weights.preprocessing == CAFFE and enc.weights.spec_name == "tiny_vgg.caffe"
    # preprocess: RGB in [0, 1] -> BGR * 255 - BGR mean
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    expected = x.flip(1) * 255 - CAFFE_MEAN_BGR
    assert torch.allclose(enc.preprocess(x), expected)
    assert torch.allclose(enc.preprocess(x)[0, :, 0, 0], torch.tensor([255 - 103.939, 127.5 - 116.779, -123.68]))
    # the checkpoint's own conv weights are in use (the first conv is the first stage)
    assert torch.equal(enc.stages[0].weight, state["features.0.weight"])
    out = enc(torch.rand(1, 3, 32, 32))
    reference = torch.relu(torch.nn.functional.conv2d(enc.preprocess(torch.rand(1, 3, 32, 32)), state["features.0.weight"], state["features.0.bias"], padding=1))
    assert out["relu1_1"].shape == reference.shape


def test_an_unknown_file_is_refused_without_preprocessing_and_loads_with_it(tmp_path: Path) -> None:
    path = save(tmp_path / "mystery.pth", caffe_layout_state())
    with pytest.raises(WeightsError) as err:
        build_encoder("tiny_vgg", weights=str(path), layers=["relu1_1"])
    assert str(path) in str(err.value) and "pass preprocessing caffe" in str(err.value) and err.value.params == ("preprocessing",)
    caffe = build_encoder("tiny_vgg", weights=str(path), layers=["relu1_1"], preprocessing="caffe")
    torchvision = build_encoder("tiny_vgg", weights=str(path), layers=["relu1_1"], preprocessing="torchvision")
    assert caffe.weights.preprocessing == CAFFE and torchvision.weights.preprocessing == IMAGENET
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(caffe.preprocess(x), x.flip(1) * 255 - CAFFE_MEAN_BGR)
    assert not torch.allclose(caffe(x)["relu1_1"], torchvision(x)["relu1_1"])


def test_the_cli_names_the_file_and_the_flag(tmp_path: Path, examples: Path, capsys) -> None:
    from impasto.cli.main import main

    path = save(tmp_path / "mystery.pth", caffe_layout_state())
    code = main(["gatys", str(examples / "content" / "tubingen.jpg"), str(examples / "style" / "starry_night.jpg"),
                 "-o", str(tmp_path / "o.png"), "--encoder", "tiny_vgg", "--weights", str(path), "--edge", "48",
                 "--scales", "48", "-n", "1", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert str(path) in err and "--preprocessing" in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_gatys_has_a_preprocessing_option() -> None:
    from impasto.config import config_from_mapping
    from impasto.methods.gatys import GatysConfig

    assert GatysConfig().preprocessing == "auto"
    assert config_from_mapping(GatysConfig, {"preprocessing": "caffe"}).preprocessing == "caffe"


# --- lean loading ---------------------------------------------------------------------------


def test_the_encoder_holds_no_classifier_and_keeps_no_state_dict(tmp_path: Path, monkeypatch) -> None:
    state = caffe_layout_state()
    path = save(tmp_path / "full.pth", state)
    kept: list[weakref.ref] = []
    real_load = store.load_state_dict

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        loaded = real_load(*args, **kwargs)
        kept.extend(weakref.ref(t) for t in loaded.values())
        assert not any(k.startswith("classifier") for k in loaded)  # never even handed out
        return loaded

    monkeypatch.setattr(store, "load_state_dict", spy)
    enc = build_encoder("tiny_vgg", weights=str(path), layers=["relu2_1"], preprocessing="caffe")
    assert enc.weights.state_dict is None
    names = {n for n, _ in enc.named_parameters()}
    # conv1_1, conv1_2, conv2_1 (weight + bias each): nothing deeper, no classifier
    assert len(names) == 6
    assert sum(p.numel() for p in enc.parameters()) == sum(state[f"features.{i}.{w}"].numel() for i in (0, 2, 5) for w in ("weight", "bias"))
    gc.collect()
    assert kept and all(ref() is None for ref in kept)  # the loaded tensors were freed


def test_only_the_layers_used_must_be_in_the_file(tmp_path: Path) -> None:
    state = {k: v for k, v in caffe_layout_state().items() if k.startswith(("features.0.", "features.2.", "features.5."))}
    path = save(tmp_path / "shallow.pth", state)
    enc = build_encoder("tiny_vgg", weights=str(path), layers=["relu2_1"], preprocessing="torchvision")
    assert enc(torch.rand(1, 3, 16, 16))["relu2_1"].shape == (1, 16, 8, 8)
    with pytest.raises(WeightsError, match="does not fit encoder tiny_vgg"):
        build_encoder("tiny_vgg", weights=str(path), layers=["relu3_1"], preprocessing="torchvision")


@pytest.mark.parametrize("legacy", [False, True], ids=["zip-mmap", "legacy"])
def test_load_state_dict_keeps_only_the_keys_asked_for(tmp_path: Path, legacy: bool) -> None:
    state = caffe_layout_state()
    path = save(tmp_path / "f.pth", state, legacy=legacy)
    loaded = store.load_state_dict(path, keys={"features.0.weight", "features.0.bias", "not.there"})
    assert set(loaded) == {"features.0.weight", "features.0.bias"}
    assert torch.equal(loaded["features.0.weight"], state["features.0.weight"])


def test_random_weights_are_unchanged_by_lean_loading() -> None:
    """Random weights are still drawn for the whole network, so results do not depend on the layers asked for."""
    shallow = build_encoder("tiny_vgg", weights="random", layers=["relu1_1"], seed=3)
    deep = build_encoder("tiny_vgg", weights="random", layers=["relu5_1"], seed=3)
    assert torch.equal(shallow.stages[0].weight, deep.stages[0].weight)
