"""Hash once per load, and not at all while the verified-files record shows a file unchanged."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from impasto.errors import ChecksumError
from impasto.weights import resolve_weights, store, verified

OLD = time.time() - 3600  # an mtime well before any hashing: not "racy"


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every real hash of a file, in order."""
    calls: list[Path] = []
    real = store.sha256_file

    def counting(path):  # type: ignore[no-untyped-def]
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(store, "sha256_file", counting)
    return calls


def _age(path: Path, when: float = OLD) -> None:
    os.utime(path, (when, when))


def test_a_cached_checkpoint_is_hashed_once_per_load_then_not_at_all(tiny, hashes: list[Path]) -> None:
    path = store.download(tiny.spec)
    _age(path)
    hashes.clear()
    assert resolve_weights("tinyarch.test", "tinyarch").kind == "pretrained"
    assert hashes == [path]  # once, not once in cached_path and again in load_state_dict
    hashes.clear()
    assert resolve_weights("auto", "tinyarch").kind == "pretrained"
    assert resolve_weights("tinyarch.test", "tinyarch").sha256 == tiny.spec.sha256
    assert hashes == []  # remembered


def test_a_fresh_file_is_hashed_once_per_load_and_not_remembered(tiny, hashes: list[Path]) -> None:
    path = store.download(tiny.spec)  # just written: could still change within the same mtime tick
    hashes.clear()
    resolve_weights("tinyarch.test", "tinyarch")
    resolve_weights("tinyarch.test", "tinyarch")
    assert hashes == [path, path]


def test_a_user_file_is_remembered_too(tmp_path: Path, save_bytes, hashes: list[Path]) -> None:
    import torch

    path = tmp_path / "mine.pth"
    path.write_bytes(save_bytes({"w": torch.ones(2)}))
    _age(path)
    first = resolve_weights(path, "vgg19", preprocessing="torchvision").sha256
    second = resolve_weights(path, "vgg19", preprocessing="torchvision").sha256
    assert first == second and hashes == [path]


@pytest.mark.parametrize("change", ["content", "mtime", "inode"])
def test_any_change_means_hashing_again(tiny, hashes: list[Path], change: str) -> None:
    path = store.download(tiny.spec)
    _age(path)
    store.verify(path, tiny.spec)
    store.verify(path, tiny.spec)
    assert hashes == [path]
    if change == "content":  # same size, same (restored) mtime, same inode: ctime still moves
        data = bytearray(path.read_bytes())
        data[-10] ^= 0xFF
        path.write_bytes(bytes(data))
        _age(path)
        with pytest.raises(ChecksumError):
            store.verify(path, tiny.spec)
    elif change == "mtime":
        _age(path, OLD + 1)
        store.verify(path, tiny.spec)
    else:  # an identical copy renamed over it: new inode, same size and mtime
        copy = path.with_suffix(".new")
        copy.write_bytes(path.read_bytes())
        _age(copy)
        os.replace(copy, path)
        store.verify(path, tiny.spec)
    assert hashes == [path, path]


def test_weights_verify_always_hashes(tiny, hashes: list[Path]) -> None:
    path = store.download(tiny.spec)
    _age(path)
    store.verify(path, tiny.spec)
    store.verify(path, tiny.spec, deep=True)
    assert hashes == [path, path]


def test_the_record_is_small_json_in_the_cache(tiny) -> None:
    path = store.download(tiny.spec)
    _age(path)
    store.verify(path, tiny.spec)
    record = store.cache_dir() / verified.RECORD_NAME
    data = json.loads(record.read_text())
    entry = data["files"][str(path.resolve())]
    st = path.stat()
    assert data["version"] == 1 and entry["sha256"] == tiny.spec.sha256
    assert (entry["size"], entry["mtime_ns"], entry["inode"]) == (st.st_size, st.st_mtime_ns, st.st_ino)
    assert not list(record.parent.glob("*.tmp*"))  # written atomically, nothing left over


def test_a_corrupt_record_is_ignored(tiny, hashes: list[Path]) -> None:
    path = store.download(tiny.spec)
    _age(path)
    (store.cache_dir() / verified.RECORD_NAME).write_text("{not json")
    store.verify(path, tiny.spec)
    store.verify(path, tiny.spec)
    assert hashes == [path]  # hashed once, then the rewritten record is used


def test_the_record_keeps_a_bounded_number_of_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verified, "MAX_ENTRIES", 3)
    for i in range(5):
        f = tmp_path / f"f{i}.bin"
        f.write_bytes(bytes([i]))
        _age(f)
        store.file_sha256(f)
    files = json.loads((store.cache_dir() / verified.RECORD_NAME).read_text())["files"]
    assert list(files) == [str((tmp_path / f"f{i}.bin").resolve()) for i in (2, 3, 4)]
