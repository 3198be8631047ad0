"""``runtime="auto"``: when it picks ONNX Runtime (:func:`choose_runtime`), that the result equals
PyTorch's, and the verified cache of exports (reused, re-exported when damaged or when the model
changed, never a stale file; pruned to IMPASTO_ONNX_CACHE_MAX, least recently used first, never
an entry in use); a sibling model.onnx used only when it was exported from this model file. The
cache lives in the test's own IMPASTO_HOME (tests/conftest.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from impasto import precision as P
from impasto.errors import ConfigError
from impasto.image.io import read_metadata
from impasto.methods import ff_onnx, onnx_cache
from impasto.methods.ff_apply import ApplyConfig, ApplyMethod, ModelSession, apply_model
from impasto.methods.ff_onnx import AUTO_ONNX, choose_runtime, onnx_cache_dir
from impasto.nets.registry import get_arch
from impasto.provenance import sha256_file
from tests.conftest import require_module
from tests.feedforward_cli.conftest import build_model_file, save_photo

PHOTO = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))


@pytest.fixture
def exports(monkeypatch):
    """Count the exports ff_onnx makes (``fail=True`` makes further exports raise)."""
    require_module("onnxruntime")
    real = ff_onnx.export_model
    state = {"count": 0, "fail": False}

    def counting(*args, **kwargs):
        if state["fail"]:
            raise RuntimeError("export should not run")
        state["count"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(ff_onnx, "export_model", counting)
    return state


def _run(model: Path, **options) -> tuple[torch.Tensor, dict]:
    result = ApplyMethod().run(ApplyConfig(**options), {"model": model, "image": PHOTO})
    return result.image, result.manifest


def _cached_files() -> list[Path]:
    return sorted(onnx_cache_dir().glob("*.onnx"))


def test_auto_runs_onnx_for_johnson_with_the_same_output_and_records_it(models, exports, _isolated_cache, tmp_path):
    auto, manifest = _run(models["johnson"])
    torch_out, torch_manifest = _run(models["johnson"], runtime="torch")
    assert manifest["runtime"] == "onnx" and torch_manifest["runtime"] == "torch" and manifest["precision"] == "fp32"
    assert manifest["runtime_reason"].startswith("ONNX Runtime on the CPU") and torch_manifest["runtime_reason"] == "runtime torch was asked for"
    assert float((auto - torch_out).abs().max()) < 1e-4
    assert exports["count"] == 1
    files = _cached_files()
    assert len(files) == 1 and files[0].parent == _isolated_cache / "cache" / "onnx"  # IMPASTO_HOME's cache, not ~/.cache
    assert not models["johnson"].with_suffix(".onnx").exists()
    # the files apply_model writes record it too
    written = apply_model(models["johnson"], [save_photo(tmp_path / "photo.png", 64, 64)], tmp_path / "out").written[0]
    assert read_metadata(written)["runtime"] == "onnx" and exports["count"] == 1


def test_second_session_reuses_the_cached_export(models, exports):
    first, _ = _run(models["johnson-small"])
    (path,) = _cached_files()
    before = path.stat()
    exports["fail"] = True  # a second export would raise (and auto would then fall back to torch)
    events = []
    with ModelSession(models["johnson-small"], ApplyConfig(), callback=events.append) as session:
        assert session.runtime == "onnx" and session.runner.path == path
    again, manifest = _run(models["johnson-small"])
    after = path.stat()
    assert manifest["runtime"] == "onnx" and torch.equal(first, again)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns) and exports["count"] == 1
    assert not any("export" in getattr(e, "text", "") for e in events)


def test_a_damaged_cached_export_is_exported_again(models, exports):
    first, _ = _run(models["johnson-small"])
    (path,) = _cached_files()
    data = path.read_bytes()
    k = len(data) // 2
    damages = {
        "truncated": lambda: path.write_bytes(data[:k]),
        "one byte amid the weights changed (ONNX would load it)": lambda: path.write_bytes(data[:k] + bytes([data[k] ^ 0xFF]) + data[k + 1 :]),
        "record unreadable": lambda: path.with_suffix(".json").write_text("{not json"),
        "file missing": path.unlink,
    }
    for n, (damage, do) in enumerate(damages.items(), 2):
        do()
        events = []
        result = ApplyMethod().run(ApplyConfig(), {"model": models["johnson-small"], "image": PHOTO}, callback=events.append)
        assert result.manifest["runtime"] == "onnx" and torch.equal(result.image, first), damage
        assert exports["count"] == n and path.read_bytes() == data, damage
        assert not [e for e in events if getattr(e, "level", "") == "warning"], damage


def test_a_changed_model_file_gets_a_new_export(tmp_path, exports):
    model = build_model_file(tmp_path / "m.pt", "johnson-small", seed=1)
    first, _ = _run(model)
    build_model_file(model, "johnson-small", seed=2)  # other weights, same path
    os.utime(model, ns=(1, 1))  # even with an older time stamp: the content decides
    second, manifest = _run(model)
    reference, _ = _run(model, runtime="torch")
    assert manifest["runtime"] == "onnx" and exports["count"] == 2 and len(_cached_files()) == 2
    assert float((second - first).abs().max()) > 1e-2 and float((second - reference).abs().max()) < 1e-4


def test_a_sibling_export_is_used_and_a_broken_one_ignored(tmp_path, exports):
    from impasto.methods.ff_export import export_model

    model = build_model_file(tmp_path / "m.pt", "johnson-small")
    sibling = export_model(model)  # what `impasto export m.pt` writes: m.onnx
    with ModelSession(model, ApplyConfig()) as session:
        assert session.runner.path == sibling and not _cached_files()
    sibling.write_bytes(b"garbage")
    events = []
    with ModelSession(model, ApplyConfig(), callback=events.append) as session:
        assert session.runtime == "onnx" and session.runner.path.parent == onnx_cache_dir()
    assert any(e.level == "warning" and "m.onnx" in e.text for e in events)


def test_a_failed_export_falls_back_to_torch_under_auto_only(models, exports, monkeypatch):
    exports["fail"] = True
    events = []
    result = ApplyMethod().run(ApplyConfig(), {"model": models["johnson-small"], "image": PHOTO}, callback=events.append)
    reference, _ = _run(models["johnson-small"], runtime="torch")
    assert result.manifest["runtime"] == "torch" and torch.equal(result.image, reference)
    assert [e.text for e in events if getattr(e, "level", "") == "warning"] == [f"{models['johnson-small']}: ONNX Runtime could not be used (export should not run); running with PyTorch"]
    with pytest.raises(RuntimeError, match="export should not run"):
        _run(models["johnson-small"], runtime="onnx")
    assert not _cached_files()


def test_choose_runtime(monkeypatch, tmp_path):
    model = tmp_path / "m.pt"
    monkeypatch.setattr(ff_onnx, "onnx_available", lambda: True)
    cfg = ApplyConfig(device="cpu")
    assert choose_runtime(model, "johnson", cfg)[0] == "onnx"
    assert choose_runtime(model, "johnson-small", cfg)[0] == "onnx"
    assert choose_runtime(tmp_path / "m.onnx", None, cfg) == ("onnx", "an exported ONNX file")
    assert choose_runtime(model, "johnson", ApplyConfig(runtime="torch")) == ("torch", "runtime torch was asked for")
    assert choose_runtime(model, "adain", ApplyConfig(runtime="onnx"))[0] == "onnx"
    # PyTorch where ONNX Runtime cannot do the same job faster
    for arch in ("swap-inverse", "adain", "stylepredict", "texture", "multistyle", "superres", None):
        assert choose_runtime(model, arch, cfg)[0] == "torch", arch
    for options in ({"stats_edge": 64}, {"channels_last": True}, {"precision": "bf16"}):
        runtime, reason = choose_runtime(model, "johnson", ApplyConfig(device="cpu", **options))
        assert runtime == "torch", options
    assert choose_runtime(model, "johnson", ApplyConfig(device="cpu", stats_edge=64))[1] == "stats_edge needs runtime torch"
    assert choose_runtime(model, "johnson", ApplyConfig(device="cpu", encoder_weights="x.pth"))[0] == "torch"
    with monkeypatch.context() as m:
        m.setattr("impasto.features.resolve_device", lambda device: torch.device("cuda"))
        assert choose_runtime(model, "johnson", ApplyConfig(device="cuda"))[0] == "torch"
    with monkeypatch.context() as m:  # impasto apply tunes the allocator: PyTorch is the faster one then
        m.setattr("impasto.allocator._MODE", "tuned")
        runtime, reason = choose_runtime(model, "johnson", cfg)
        assert runtime == "torch" and reason.startswith("the allocator is tuned"), reason
        m.setattr("impasto.allocator._MODE", "lean")
        assert choose_runtime(model, "johnson", cfg)[0] == "onnx"
    monkeypatch.setattr(ff_onnx, "onnx_available", lambda: False)
    assert choose_runtime(model, "johnson", cfg) == ("torch", "onnxruntime is not installed (pip install 'impasto[onnx]')")
    assert choose_runtime(tmp_path / "m.onnx", None, cfg)[0] == "onnx"  # an .onnx file needs it anyway


def test_auto_runs_torch_where_bf16_is_chosen(monkeypatch, tmp_path):
    monkeypatch.setattr(ff_onnx, "onnx_available", lambda: True)
    with monkeypatch.context() as m:
        m.setenv("IMPASTO_CPU_BF16", "1")  # a CPU with native bfloat16
        P.cpu_bf16.cache_clear()
        try:
            assert choose_runtime(tmp_path / "m.pt", "johnson", ApplyConfig(device="cpu", precision="bf16")) == ("torch", "precision bf16 (PyTorch in bfloat16 is the faster choice)")
            assert choose_runtime(tmp_path / "m.pt", "johnson", ApplyConfig(device="cpu"))[0] == "torch"  # auto: bf16 residual blocks
            assert choose_runtime(tmp_path / "m.pt", "johnson-small", ApplyConfig(device="cpu"))[0] == "onnx"  # johnson-small stays fp32 under auto
            assert choose_runtime(tmp_path / "m.pt", "johnson", ApplyConfig(device="cpu", precision="fp32"))[0] == "onnx"
            assert choose_runtime(tmp_path / "m.pt", "superres", ApplyConfig(device="cpu", precision="fp32"))[0] == "torch"  # not in AUTO_ONNX
        finally:
            P.cpu_bf16.cache_clear()
    assert choose_runtime(tmp_path / "m.pt", "johnson", ApplyConfig(device="cpu"))[0] == "onnx"  # fp32 without native bf16


def test_without_onnxruntime_auto_is_torch(models, monkeypatch):
    monkeypatch.setattr(ff_onnx, "onnx_available", lambda: False)
    _, manifest = _run(models["johnson"])
    assert manifest["runtime"] == "torch" and not _cached_files()


def test_every_arch_in_the_auto_table_exists():
    for arch in AUTO_ONNX:
        get_arch(arch)


# ------------------------------------------------------------------------------------------
# pruning to the budget (IMPASTO_ONNX_CACHE_MAX) and keeping what is in use


def _export(model: Path) -> Path:
    """Export ``model`` into the cache through ff_onnx (as a session would) and release it."""
    path, _, held = ff_onnx.onnx_for(model)
    if held is not None:
        held.cleanup()
    return path


def _entry_names() -> list[str]:
    return sorted(e.name for e in onnx_cache.entries())


def _cache_bytes() -> int:
    return sum(p.stat().st_size for p in onnx_cache_dir().iterdir() if not p.name.startswith("."))


def _last_used(path: Path, seconds: float) -> None:
    """Date the last use of the entry of ``path`` (its record's time) back to ``seconds``."""
    os.utime(path.with_suffix(".json"), (seconds, seconds))


def test_pruning_removes_the_least_recently_used_first_and_a_reused_entry_survives(tmp_path, exports, monkeypatch):
    a, b, c, d = (build_model_file(tmp_path / f"{n}.pt", "johnson-small", seed=k) for k, n in enumerate("abcd", 1))
    path_a = _export(a)
    _last_used(path_a, 1000)
    path_b = _export(b)
    _last_used(path_b, 2000)
    size = _cache_bytes() / 2  # one entry, .onnx and record
    before = path_a.stat()
    exports["fail"] = True  # reusing a must not export it again
    with ModelSession(a, ApplyConfig()) as session:  # a is used: now the most recently used
        assert session.runtime == "onnx" and session.runner.path == path_a
    exports["fail"] = False
    after = path_a.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # the .onnx is not rewritten
    assert onnx_cache.entries()[-1].onnx == path_a
    budget = int(2.5 * size)
    monkeypatch.setenv("IMPASTO_ONNX_CACHE_MAX", str(budget))
    path_c = _export(c)
    assert not path_b.exists() and not path_b.with_suffix(".json").exists()  # b, least recently used, went with its record
    assert _entry_names() == sorted([path_a.stem, path_c.stem]) and _cache_bytes() <= budget
    monkeypatch.setenv("IMPASTO_ONNX_CACHE_MAX", "0")  # keep nothing beyond the export just written
    path_d = _export(d)
    assert _entry_names() == [path_d.stem] and path_d.is_file() and path_d.with_suffix(".json").is_file()
    assert exports["count"] == 4


def test_an_entry_in_use_is_never_pruned_nor_cleared(tmp_path, exports, monkeypatch):
    if os.name == "nt":
        pytest.skip("POSIX locks; on Windows the open file protects itself")
    a, b = (build_model_file(tmp_path / f"{n}.pt", "johnson-small", seed=k) for k, n in enumerate("ab", 1))
    monkeypatch.setenv("IMPASTO_ONNX_CACHE_MAX", "0")
    with ModelSession(a, ApplyConfig()) as session:  # a session of this or another process holds a
        path_a = session.runner.path
        _last_used(path_a, 1000)
        path_b = _export(b)
        assert _entry_names() == sorted([path_a.stem, path_b.stem])  # over budget, but a is in use
        removed, kept = onnx_cache.clear()
        assert [e.name for e in removed] == [path_b.stem] and [(e.name, why) for e, why in kept] == [(path_a.stem, "in use")]
        assert path_a.is_file()
    assert [e.name for e in onnx_cache.clear()[0]] == [path_a.stem] and _entry_names() == []


def test_pruning_tolerates_entries_another_process_removed(monkeypatch):
    folder = onnx_cache_dir()
    folder.mkdir(parents=True)
    for k in range(3):
        name = f"{k:032x}-{k:012x}"
        (folder / f"{name}.onnx").write_bytes(b"x" * 1000)
        (folder / f"{name}.json").write_text("{}")
        os.utime(folder / f"{name}.json", (1000 + k, 1000 + k))
    (folder / "notes.txt").write_text("not ours")
    (folder / ".0123-export.onnx").write_bytes(b"an export in progress")
    listed = onnx_cache.entries()
    assert [e.last_used for e in listed] == [1000, 1001, 1002] and all(e.size == 1002 for e in listed)
    listed[0].onnx.unlink()  # another process pruned meanwhile: the file first ...
    listed[1].onnx.unlink()
    listed[1].record.unlink()  # ... or the whole entry
    monkeypatch.setattr(onnx_cache, "entries", lambda folder=None: listed)
    assert [e.name for e in onnx_cache.prune(0)] == [e.name for e in listed]
    assert sorted(p.name for p in folder.iterdir()) == [".0123-export.onnx", "notes.txt"]  # not entries: left alone


def test_the_budget_comes_from_impasto_onnx_cache_max(monkeypatch):
    expected = {"500M": 500 * 2**20, "2G": 2 * 2**30, "1.5GB": int(1.5 * 2**30), "0": 0, "123456": 123456, " 64 kib ": 64 * 1024}
    for text, size in expected.items():
        monkeypatch.setenv("IMPASTO_ONNX_CACHE_MAX", text)
        assert onnx_cache.cache_budget() == size, text
    for text in ("", "  "):
        monkeypatch.setenv("IMPASTO_ONNX_CACHE_MAX", text)
        assert onnx_cache.cache_budget() == 2 * 2**30
    monkeypatch.delenv("IMPASTO_ONNX_CACHE_MAX")
    assert onnx_cache.cache_budget() == onnx_cache.DEFAULT_CACHE_MAX == 2 * 2**30
    for text in ("lots", "-1", "2X", "1e9"):
        monkeypatch.setenv("IMPASTO_ONNX_CACHE_MAX", text)
        with pytest.raises(ConfigError) as info:
            onnx_cache.cache_budget()
        message = f"IMPASTO_ONNX_CACHE_MAX={text!r} is not a size: give bytes or a size like 500M, 2G or 1.5GB (0 keeps only the latest export)"
        assert str(info.value) == message and info.value.with_flags() == message


def test_a_bad_budget_fails_a_run_under_auto_instead_of_falling_back(models, exports, monkeypatch):
    monkeypatch.setenv("IMPASTO_ONNX_CACHE_MAX", "lots")
    with pytest.raises(ConfigError, match=r"^IMPASTO_ONNX_CACHE_MAX='lots' is not a size"):
        _run(models["johnson-small"])
    assert exports["count"] == 0 and not _cached_files()
    _, manifest = _run(models["johnson-small"], runtime="torch")  # PyTorch needs no cache
    assert manifest["runtime"] == "torch"


# ------------------------------------------------------------------------------------------
# a sibling model.onnx is used by what it was exported from, not by its time stamp


def test_a_sibling_exported_from_another_model_is_not_used(tmp_path, exports):
    from impasto.methods.ff_export import export_model

    a = build_model_file(tmp_path / "a.pt", "johnson-small", seed=1)
    b = build_model_file(tmp_path / "b.pt", "johnson-small", seed=2)
    onnx_a, onnx_b = export_model(a), export_model(b)
    onnx_a.rename(tmp_path / "swap")
    onnx_b.rename(onnx_a)
    (tmp_path / "swap").rename(onnx_b)
    for path in (onnx_a, onnx_b):
        os.utime(path, (4e9, 4e9))  # newer than the models: the time stamp would have let them through
    for model, other in ((a, b), (b, a)):
        events = []
        result = ApplyMethod().run(ApplyConfig(), {"model": model, "image": PHOTO}, callback=events.append)
        reference, _ = _run(model, runtime="torch")
        wrong, _ = _run(other, runtime="torch")
        assert result.manifest["runtime"] == "onnx" and float((result.image - reference).abs().max()) < 1e-4
        assert float((result.image - wrong).abs().max()) > 1e-2
        assert [e.text.split(":")[0] for e in events if getattr(e, "level", "") == "warning"] == [f"ignoring {model.with_suffix('.onnx')}"]
    assert len(_cached_files()) == 2 and exports["count"] == 2  # each exported into the cache instead


def test_a_sibling_of_this_model_is_used_whatever_its_time_stamp(tmp_path, exports):
    from impasto.methods.ff_export import SOURCE_KEY, export_model, read_onnx_export

    model = build_model_file(tmp_path / "m.pt", "johnson-small")
    sibling = export_model(model)
    assert read_onnx_export(sibling)[1] == sha256_file(model)
    os.utime(sibling, (1, 1))  # older than the model (a copy, a checkout): still this model's export
    with ModelSession(model, ApplyConfig()) as session:
        assert session.runner.path == sibling and not _cached_files()
    assert exports["count"] == 0
    # an export by an older impasto records no source: ignored (exported into the cache), not an error
    import onnx

    proto = onnx.load(str(sibling))
    kept = [p for p in proto.metadata_props if p.key != SOURCE_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, str(sibling))
    events = []
    with ModelSession(model, ApplyConfig(), callback=events.append) as session:
        assert session.runtime == "onnx" and session.runner.path.parent == onnx_cache_dir()
    assert exports["count"] == 1 and not [e for e in events if getattr(e, "level", "") == "warning"]
    assert any("does not record which model file" in getattr(e, "text", "") for e in events)


def test_temporary_files_of_killed_exports_go_once_stale():
    """An export killed before its rename (SIGKILL, power cut) leaves a hidden temporary file:
    pruning and clearing remove it once it is over an hour old, never a fresh one (an export
    in progress) nor files of other names."""
    folder = onnx_cache_dir()
    folder.mkdir(parents=True)
    name = f"{7:032x}-{7:012x}"
    stale, fresh = folder / f".{name}.k1l2.export.onnx", folder / f".{name}.a1b2.export.onnx"
    stale_record, other = folder / f".{name}.q9.part.json", folder / ".0123-export.onnx"
    for path in (stale, fresh, stale_record, other):
        path.write_bytes(b"x" * 100)
    old = time.time() - onnx_cache.STALE_PARTIAL_AGE - 60
    for path in (stale, stale_record, other):
        os.utime(path, (old, old))
    assert onnx_cache.clear(dry_run=True) == ([], []) and stale.exists()  # a dry run removes nothing
    assert onnx_cache.prune(2**30) == []
    assert sorted(p.name for p in folder.iterdir()) == sorted([fresh.name, other.name])
    os.utime(fresh, (old, old))
    onnx_cache.clear()
    assert sorted(p.name for p in folder.iterdir()) == [other.name]
