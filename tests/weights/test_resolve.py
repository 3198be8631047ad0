"""``weights=`` resolution: auto, random, arch.source and files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from impasto.errors import ChecksumError, UsageError, WeightsError, WeightsUnavailableError
from impasto.weights import CAFFE, IMAGENET, INCEPTION, adapt_state_dict, resolve_weights, store


def test_random_is_random() -> None:
    r = resolve_weights("random", "vgg19")
    assert (r.kind, r.name, r.state_dict, r.sha256, r.warning) == ("random", "random", None, None, None)
    assert r.preprocessing == IMAGENET


def test_auto_without_a_checkpoint_for_the_arch_is_silently_random() -> None:
    r = resolve_weights("auto", "tiny_vgg")
    assert r.kind == "random" and r.warning is None


def test_auto_downloads_and_loads(tiny) -> None:
    seen: list[int] = []
    r = resolve_weights("auto", "tinyarch", progress=lambda done, total: seen.append(done))
    assert (r.kind, r.name, r.sha256) == ("pretrained", "tinyarch.test", tiny.spec.sha256)
    assert torch.equal(r.state_dict["features.0.weight"], tiny.state["features.0.weight"])
    assert r.warning is None and seen[-1] == len(tiny.body)


def test_auto_uses_the_cache_without_a_request(tiny) -> None:
    store.download(tiny.spec)
    tiny.server.requests.clear()
    assert resolve_weights("auto", "tinyarch").kind == "pretrained"
    assert tiny.server.requests == []


def test_auto_offline_falls_back_to_random_with_a_loud_warning(tiny, register, dead_url: str, impasto_home: Path) -> None:
    spec = register(tiny.body, (dead_url,), name="offarch.test")
    r = resolve_weights("auto", "offarch")
    assert r.kind == "random" and r.state_dict is None
    w = r.warning or ""
    assert "no pretrained offarch weights in" in w and str(impasto_home / "weights") in w
    assert "connection refused" in w and dead_url in w
    assert "results will be weaker" in w
    assert f"`impasto weights download {spec.name}`" in w and f"`impasto weights import {spec.filename}`" in w


def test_auto_with_downloads_disabled_falls_back_without_a_request(tiny) -> None:
    r = resolve_weights("auto", "tinyarch", download=False)
    assert r.kind == "random" and "downloads are disabled" in (r.warning or "")
    assert tiny.server.requests == []


def test_auto_does_not_hide_a_corrupt_cached_file(tiny) -> None:
    path = store.download(tiny.spec)
    path.write_bytes(bytes(len(tiny.body)))
    with pytest.raises(ChecksumError):
        resolve_weights("auto", "tinyarch")


def test_auto_does_not_hide_a_server_sending_the_wrong_file(tiny, register) -> None:
    register(tiny.body, tiny.spec.urls, name="evilarch.test", sha256="f" * 64)
    with pytest.raises(ChecksumError):
        resolve_weights("auto", "evilarch")


def test_explicit_name_downloads(tiny) -> None:
    assert resolve_weights("tinyarch.test", "tinyarch").kind == "pretrained"


def test_explicit_name_offline_is_unavailable(tiny, register, dead_url: str) -> None:
    spec = register(tiny.body, (dead_url,), name="offarch.test")
    with pytest.raises(WeightsUnavailableError) as err:
        resolve_weights("offarch.test", "offarch")
    msg = str(err.value)
    assert dead_url in msg and f"impasto weights import {spec.filename}" in msg


def test_explicit_name_without_downloads_names_both_commands(tiny) -> None:
    with pytest.raises(WeightsUnavailableError) as err:
        resolve_weights("tinyarch.test", "tinyarch", download=False)
    msg = str(err.value)
    assert "impasto weights download tinyarch.test" in msg and "impasto weights import" in msg
    assert tiny.server.requests == []


def test_explicit_name_for_another_arch_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="weights vgg16.torchvision are for vgg16, not vgg19"):
        resolve_weights("vgg16.torchvision", "vgg19")


def test_unknown_name_suggests() -> None:
    with pytest.raises(WeightsError, match="did you mean 'vgg19.torchvision'"):
        resolve_weights("vgg19.torchvison", "vgg19")


def test_missing_file_path() -> None:
    with pytest.raises(WeightsError, match="no such file"):
        resolve_weights("missing/weights.pth", "vgg19")


def test_a_file_is_loaded_and_hashed(tmp_path: Path, save_bytes) -> None:
    path = tmp_path / "mine.pth"
    path.write_bytes(save_bytes({"w": torch.ones(3)}))
    r = resolve_weights(str(path), "vgg19", preprocessing="torchvision")
    assert (r.kind, r.name, r.preprocessing) == ("file", str(path), IMAGENET)
    assert r.sha256 == store.sha256_file(path) and list(r.state_dict) == ["w"]


def test_an_unknown_file_without_preprocessing_is_refused(tmp_path: Path, save_bytes) -> None:
    """Never silently the ImageNet RGB convention: Caffe files have the same keys."""
    path = tmp_path / "mine.pth"
    path.write_bytes(save_bytes({"features.0.weight": torch.ones(3)}))
    with pytest.raises(WeightsError) as err:
        resolve_weights(str(path), "vgg19")
    msg = str(err.value)
    assert str(path) in msg and "preprocessing caffe" in msg and "preprocessing torchvision" in msg
    assert "--preprocessing caffe" in err.value.with_flags() and "its input convention" in err.value.with_flags()
    assert "\n" not in msg
    assert resolve_weights(str(path), "vgg19", preprocessing="caffe").preprocessing == CAFFE


def test_a_corrupt_unknown_file_says_corrupt_first(tmp_path: Path) -> None:
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        resolve_weights(str(path), "vgg19")


def test_unknown_preprocessing_name_is_a_usage_error(tmp_path: Path, save_bytes) -> None:
    with pytest.raises(UsageError, match="^preprocessing 'bgr': choose auto, caffe or torchvision"):
        resolve_weights("random", "vgg19", preprocessing="bgr")


def test_explicit_preprocessing_contradicting_a_record_is_refused(tiny, tmp_path: Path) -> None:
    path = tmp_path / "copy.pth"
    path.write_bytes(tiny.body)
    with pytest.raises(UsageError, match="tinyarch.test expects torchvision input, not preprocessing caffe; drop preprocessing"):
        resolve_weights(path, "tinyarch", preprocessing="caffe")
    assert resolve_weights(path, "tinyarch", preprocessing="torchvision").preprocessing == IMAGENET
    with pytest.raises(UsageError, match="^weights tinyarch.test: tinyarch.test expects torchvision"):
        resolve_weights("tinyarch.test", "tinyarch", preprocessing="caffe")


def test_keys_limit_what_is_loaded(tiny) -> None:
    r = resolve_weights("tinyarch.test", "tinyarch", keys={"features.0.weight", "bn.running_var", "bn.num_batches_tracked"})
    # num_batches_tracked is absent from the file (a pre-0.4.1 checkpoint) and filled in
    assert set(r.state_dict) == {"features.0.weight", "bn.running_var", "bn.num_batches_tracked"}


def test_a_file_that_is_a_registered_checkpoint_gets_its_preprocessing(tiny, tmp_path: Path, monkeypatch) -> None:
    from dataclasses import replace

    from impasto.weights import registry

    monkeypatch.setitem(registry.REGISTRY, tiny.spec.name, replace(tiny.spec, preprocessing=INCEPTION))
    path = tmp_path / "copy.pth"
    path.write_bytes(tiny.body)
    assert resolve_weights(path, "tinyarch").preprocessing == INCEPTION
    with pytest.raises(UsageError, match="for tinyarch, not vgg19"):
        resolve_weights(path, "vgg19")


def test_legacy_batchnorm_checkpoints_get_num_batches_tracked() -> None:
    legacy = {"bn.weight": torch.ones(2), "bn.running_var": torch.ones(2), "conv.weight": torch.ones(2, 1)}
    adapted = adapt_state_dict(legacy)
    assert set(adapted) == {*legacy, "bn.num_batches_tracked"}
    assert adapted["bn.num_batches_tracked"].dtype == torch.long and adapted["bn.num_batches_tracked"].item() == 0
    assert adapt_state_dict({"w": torch.ones(1)}).keys() == {"w"}
    with pytest.raises(WeightsError, match="unknown layer map"):
        adapt_state_dict(legacy, "caffe")
