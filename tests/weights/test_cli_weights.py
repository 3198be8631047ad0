"""``impasto weights ...`` run in-process against the loopback server."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from impasto.cli.weights import register
from impasto.errors import ChecksumError, DownloadError, WeightsError
from impasto.weights import store


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="impasto")
    parser.add_argument("-q", "--quiet", action="store_true")
    sub = parser.add_subparsers()
    register(sub)
    args = parser.parse_args(list(argv))
    return args.handler(args)


def test_help_has_examples(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        run("weights", "--help")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "impasto weights download vgg19.torchvision" in out
    assert "impasto weights import" in out and "IMPASTO_HOME" in out


def test_bare_weights_prints_help(capsys) -> None:
    assert run("weights") == 2
    assert "download" in capsys.readouterr().out


def test_list(tiny, capsys) -> None:
    assert run("weights", "list") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["NAME", "ARCH", "MB", "CACHED"]
    vgg = next(line for line in lines if line.startswith("vgg19.torchvision"))
    assert " 574.7 " in vgg and " no " in vgg and "BSD-3-Clause" in vgg
    assert vgg.split()[4:6] == ["sha256", "torchvision"]
    for name in ("vgg19.caffe", "vgg16.caffe"):  # the Caffe conversions, honest about what is checked
        caffe = next(line for line in lines if line.startswith(name))
        assert caffe.split()[2:6] == ["?", "no", "prefix", "caffe"] and "CC BY 4.0" in caffe
    assert str(store.cache_dir()) in out


def test_import_recognises_a_known_variant(tmp_path: Path, monkeypatch, capsys) -> None:
    """A re-saved file (like neural-style-pt's vgg19-d01eb7cb.pth) is imported under the record's name."""
    import hashlib

    from impasto.weights import CAFFE, KnownFile, WeightSpec, registry

    body = b"pretend checkpoint bytes" * 100
    spec = WeightSpec("tiny_vgg.caffe", "tiny_vgg", "tiny_vgg-00000000.pth", ("https://e/tiny_vgg-00000000.pth",), "00000000", None,
                      "test", CAFFE, "test", check="prefix", variants=(KnownFile(hashlib.sha256(body).hexdigest(), len(body), "test"),))
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    src = tmp_path / "models" / "tiny_vgg-00000000.pth"
    src.parent.mkdir()
    src.write_bytes(body)
    assert run("weights", "import", str(src)) == 0
    assert (store.cache_dir() / spec.filename).read_bytes() == body
    assert run("weights", "verify", "tiny_vgg.caffe") == 0
    assert "tiny_vgg.caffe: ok" in capsys.readouterr().out


def test_download_then_list_and_verify(tiny, capsys) -> None:
    assert run("-q", "weights", "download", "tinyarch.test") == 0
    out = capsys.readouterr().out
    assert f"tinyarch.test: {store.cache_dir() / tiny.spec.filename}" in out
    run("weights", "list", "--verify")
    assert any(line.startswith("tinyarch.test") and " verified " in line for line in capsys.readouterr().out.splitlines())
    assert run("weights", "verify") == 0
    assert "tinyarch.test: ok" in capsys.readouterr().out


def test_download_shows_a_progress_bar_on_stderr(tiny, capsys) -> None:
    assert run("weights", "download", "tinyarch.test") == 0
    captured = capsys.readouterr()
    assert "tinyarch.test" in captured.err and "tinyarch.test" in captured.out


def test_download_offline_raises(tiny, register, dead_url) -> None:
    register(tiny.body, (dead_url,), name="offarch.test")
    with pytest.raises(DownloadError, match="impasto weights import"):
        run("-q", "weights", "download", "offarch.test")


def test_download_unknown_name_fails_before_any_request(tiny) -> None:
    with pytest.raises(WeightsError, match="did you mean"):
        run("-q", "weights", "download", "tinyarch.test", "vgg19.torchvison")
    assert tiny.server.requests == []


def test_verify_reports_a_mismatch_with_exit_1(tiny, capsys) -> None:
    path = store.download(tiny.spec)
    path.write_bytes(bytes(len(tiny.body)))
    assert run("weights", "verify") == 1
    assert "tinyarch.test: MISMATCH" in capsys.readouterr().out


def test_verify_a_named_but_missing_file_is_exit_1(tiny, capsys) -> None:
    assert run("weights", "verify", "tinyarch.test") == 1
    assert "not cached" in capsys.readouterr().out


def test_verify_with_an_empty_cache(capsys) -> None:
    assert run("weights", "verify") == 0
    assert "no weights cached" in capsys.readouterr().out


def test_import_recognises_the_file_by_hash(tiny, tmp_path: Path, capsys) -> None:
    src = tmp_path / "whatever-name.pth"
    src.write_bytes(tiny.body)
    assert run("weights", "import", str(src)) == 0
    assert (store.cache_dir() / tiny.spec.filename).read_bytes() == tiny.body
    assert "tinyarch.test:" in capsys.readouterr().out
    assert tiny.server.requests == []


def test_import_by_name_with_wrong_content_is_a_checksum_error(tiny, tmp_path: Path) -> None:
    src = tmp_path / tiny.spec.filename  # recognised by its name, but the bytes are wrong
    src.write_bytes(bytes(len(tiny.body)))
    with pytest.raises(ChecksumError):
        run("weights", "import", str(src))
    with pytest.raises(ChecksumError):
        run("weights", "import", str(src), "--name", "tinyarch.test")
    assert not (store.cache_dir() / tiny.spec.filename).exists()


def test_import_of_an_unknown_file(tmp_path: Path) -> None:
    src = tmp_path / "random.pth"
    src.write_bytes(b"0123456789")
    with pytest.raises(WeightsError, match="not a known checkpoint"):
        run("weights", "import", str(src))
    with pytest.raises(WeightsError, match="no such file"):
        run("weights", "import", str(tmp_path / "missing.pth"))
