"""The cache: verified downloads over a loopback server, imports and safe loads."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest
import torch

from impasto.errors import ChecksumError, DownloadError, WeightsError
from impasto.weights import store


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- cache location ---------------------------------------------------------------------------


def test_impasto_home_is_honoured(impasto_home: Path) -> None:
    assert store.cache_dir() == impasto_home / "weights"


def test_without_impasto_home_the_torch_hub_cache_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMPASTO_HOME")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert store.cache_dir() == tmp_path / "th" / "hub" / "checkpoints"


def test_a_file_already_in_the_torch_hub_cache_is_reused_without_a_request(tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMPASTO_HOME")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    hub = tmp_path / "th" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / tiny.spec.filename).write_bytes(tiny.body)
    assert store.download(tiny.spec) == hub / tiny.spec.filename
    assert tiny.server.requests == []


# --- hashing and verification -----------------------------------------------------------------


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # spans several chunks
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert store.sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_verify_names_the_file_the_hashes_and_the_fix(tiny, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(bytes(len(tiny.body)))  # right size, wrong content
    with pytest.raises(ChecksumError) as err:
        store.verify(bad, tiny.spec)
    msg = str(err.value)
    assert str(bad) in msg and "SHA-256 mismatch for tinyarch.test" in msg
    assert tiny.spec.sha256 in msg and hashlib.sha256(bytes(len(tiny.body))).hexdigest() in msg
    assert "impasto weights download tinyarch.test" in msg and "\n" not in msg


def test_verify_checks_the_size(tiny, tmp_path: Path) -> None:
    short = tmp_path / "short.pth"
    short.write_bytes(tiny.body[:-1])
    with pytest.raises(ChecksumError, match="size mismatch"):
        store.verify(short, tiny.spec)


# --- download ---------------------------------------------------------------------------------


def test_download_verifies_and_reports_progress(tiny) -> None:
    calls: list[tuple[int, int | None]] = []
    path = store.download(tiny.spec, progress=lambda done, total: calls.append((done, total)))
    assert path == store.cache_dir() / tiny.spec.filename
    assert path.read_bytes() == tiny.body
    assert calls[-1] == (len(tiny.body), len(tiny.body))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert leftovers(path.parent) == [tiny.spec.filename]  # no .part left


def test_second_download_is_a_cache_hit_without_any_request(tiny) -> None:
    store.download(tiny.spec)
    assert tiny.server.requests == ["/tiny.pth"]
    store.download(tiny.spec)
    assert store.cached_path(tiny.spec) is not None
    assert tiny.server.requests == ["/tiny.pth"]


def test_wrong_hash_raises_and_leaves_nothing(tiny, register) -> None:
    spec = register(tiny.body, tiny.spec.urls, name="wronghash.test", sha256="0" * 64)
    with pytest.raises(ChecksumError) as err:
        store.download(spec)
    assert tiny.spec.urls[0] in str(err.value) and "impasto weights import" in str(err.value)
    assert leftovers(store.cache_dir()) == []


def test_a_file_of_the_wrong_size_is_refused_before_it_is_fetched(tiny, register) -> None:
    url = tiny.server.add("/big.pth", tiny.body + bytes(5000))
    spec = register(tiny.body, (url,), name="big.test")
    with pytest.raises(ChecksumError, match="size mismatch"):
        store.download(spec)
    assert leftovers(store.cache_dir()) == []


def test_interrupted_transfer_raises_and_leaves_nothing(tiny, register) -> None:
    url = tiny.server.add("/cut.pth", tiny.body[:100], announce=len(tiny.body))
    spec = register(tiny.body, (url,), name="cut.test")
    with pytest.raises(DownloadError, match="interrupted") as err:
        store.download(spec)
    assert not isinstance(err.value, ChecksumError)
    assert leftovers(store.cache_dir()) == []


def test_connection_refused_names_the_url_and_the_import_command(tiny, register, dead_url: str) -> None:
    spec = register(tiny.body, (dead_url,), name="offline.test")
    with pytest.raises(DownloadError) as err:
        store.download(spec)
    msg = str(err.value)
    assert dead_url in msg and "connection refused" in msg
    assert f"impasto weights import {spec.filename}" in msg and "\n" not in msg
    assert leftovers(store.cache_dir()) == []


def test_http_error_then_next_mirror(tiny, register) -> None:
    spec = register(tiny.body, (tiny.server.url("/missing.pth"), tiny.server.url("/tiny.pth")), name="mirrors.test")
    assert store.download(spec).read_bytes() == tiny.body
    assert tiny.server.requests == ["/missing.pth", "/tiny.pth"]


def test_all_mirrors_failing_lists_every_url(tiny, register, dead_url: str) -> None:
    spec = register(tiny.body, (tiny.server.url("/missing.pth"), dead_url), name="allbad.test")
    with pytest.raises(DownloadError) as err:
        store.download(spec)
    assert "HTTP 404" in str(err.value) and dead_url in str(err.value)


def test_timeout_is_a_download_error(tiny, register) -> None:
    url = tiny.server.add("/slow.pth", tiny.body, delay=1.0)
    spec = register(tiny.body, (url,), name="slow.test")
    with pytest.raises(DownloadError, match="timed out"):
        store.download(spec, timeout=0.2)
    assert leftovers(store.cache_dir()) == []


def test_a_corrupt_cached_file_is_downloaded_again(tiny) -> None:
    path = store.download(tiny.spec)
    path.write_bytes(b"garbage")
    assert store.download(tiny.spec).read_bytes() == tiny.body
    assert len(tiny.server.requests) == 2


def test_cached_path_raises_on_a_corrupt_file(tiny) -> None:
    assert store.cached_path(tiny.spec) is None
    path = store.download(tiny.spec)
    path.write_bytes(bytes(len(tiny.body)))
    with pytest.raises(ChecksumError):
        store.cached_path(tiny.spec)
    assert store.cached_path(tiny.spec, verify=False) == path


# --- import -----------------------------------------------------------------------------------


def test_import_copies_a_verified_file(tiny, tmp_path: Path) -> None:
    src = tmp_path / "downloaded.pth"
    src.write_bytes(tiny.body)
    dest = store.import_file(src, tiny.spec.name)
    assert dest == store.cache_dir() / tiny.spec.filename and dest.read_bytes() == tiny.body
    assert src.exists()  # copied, not moved
    assert tiny.server.requests == []
    assert store.identify(src) == tiny.spec


def test_import_refuses_a_wrong_file(tiny, tmp_path: Path) -> None:
    src = tmp_path / tiny.spec.filename
    src.write_bytes(bytes(len(tiny.body)))
    with pytest.raises(ChecksumError, match="not the published"):
        store.import_file(src, tiny.spec.name)
    assert leftovers(store.cache_dir()) == []
    assert store.identify(src) is None


def test_import_of_a_missing_file(tiny, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no such file"):
        store.import_file(tmp_path / "nope.pth", tiny.spec.name)


# --- load -------------------------------------------------------------------------------------


def test_load_returns_the_tensors(tiny) -> None:
    state = store.load_state_dict(store.download(tiny.spec), spec=tiny.spec)
    assert state.keys() == tiny.state.keys()
    assert all(torch.equal(state[k], tiny.state[k]) for k in state)


def test_load_verifies_on_every_load(tiny) -> None:
    path = store.download(tiny.spec)
    store.load_state_dict(path, spec=tiny.spec)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip one byte, same size
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        store.load_state_dict(path, spec=tiny.spec)


class Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned",))


def test_a_checkpoint_with_a_pickled_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "payload": Evil()}, path)
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint") as err:
        store.load_state_dict(path)
    assert str(path) in str(err.value)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_plain_pickle_with_an_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        store.load_state_dict(path)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "not a PyTorch checkpoint"),
        (b"this is not a checkpoint at all", "not a PyTorch checkpoint"),
        ([torch.zeros(1)], "expected a state dict"),
        ({"a": 1}, "is not a tensor"),
    ],
    ids=["empty", "text", "list", "non-tensor"],
)
def test_unreadable_files_are_weights_errors(tmp_path: Path, save_bytes, content: object, why: str) -> None:
    path = tmp_path / "x.pth"
    path.write_bytes(content if isinstance(content, bytes) else save_bytes(content))
    with pytest.raises(WeightsError, match=why) as err:
        store.load_state_dict(path)
    assert str(err.value).startswith(str(path))


def test_a_truncated_checkpoint_is_a_weights_error(tmp_path: Path, tiny) -> None:
    path = tmp_path / "cut.pth"
    path.write_bytes(tiny.body[: len(tiny.body) // 2])
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        store.load_state_dict(path)


def test_a_wrapped_state_dict_is_unwrapped(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, path)
    assert list(store.load_state_dict(path)) == ["w"]


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no such file"):
        store.load_state_dict(tmp_path / "nope.pth")
    with pytest.raises(WeightsError, match="folder"):
        store.load_state_dict(tmp_path)
