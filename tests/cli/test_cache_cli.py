"""`impasto cache list|clear` in-process, on real exports in the test's own IMPASTO_HOME."""

from __future__ import annotations

import json
import pathlib
from pathlib import Path

import pytest

from impasto.cli.main import main
from impasto.methods import ff_onnx
from impasto.methods.onnx_cache import format_size
from impasto.provenance import sha256_file
from tests.conftest import require_module
from tests.feedforward_cli.conftest import build_model_file


def _cache_files() -> list[Path]:
    folder = ff_onnx.onnx_cache_dir()
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


@pytest.fixture
def cached(tmp_path) -> list[Path]:
    """Two models, each exported into the cache as `impasto apply` does."""
    require_module("onnxruntime")
    models = [build_model_file(tmp_path / f"{n}.pt", "johnson-small", seed=k) for k, n in enumerate("ab", 1)]
    for model in models:
        _, _, held = ff_onnx.onnx_for(model)
        held.cleanup()
    assert len(_cache_files()) == 4
    return models


def test_help_says_what_is_cached_where_and_how_to_bound_it(capsys):
    with pytest.raises(SystemExit) as info:
        main(["cache", "--help"])
    text = capsys.readouterr().out
    assert info.value.code == 0
    assert "examples:" in text and "impasto cache list" in text and "impasto cache clear" in text
    assert "IMPASTO_ONNX_CACHE_MAX" in text and "~/.impasto/cache/onnx" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "cache" in capsys.readouterr().out


def test_list_json_totals_equal_the_files(cached, capsys):
    assert main(["cache", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    files = _cache_files()
    assert listing["total"] == sum(p.stat().st_size for p in files) == sum(e["size"] for e in listing["entries"])
    assert listing["folder"] == str(ff_onnx.onnx_cache_dir()) and listing["budget"] == 2 * 2**30
    assert sorted(e["model_sha256"] for e in listing["entries"]) == sorted(sha256_file(m) for m in cached)
    assert sorted(e["model"] for e in listing["entries"]) == sorted(str(m.resolve()) for m in cached)
    assert {e["name"] for e in listing["entries"]} == {p.stem for p in files}


def test_list_shows_each_entry_and_the_total(cached, capsys, monkeypatch):
    monkeypatch.setenv("IMPASTO_ONNX_CACHE_MAX", "500M")
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    total = sum(p.stat().st_size for p in _cache_files())
    for model in cached:
        assert sha256_file(model)[:12] in out and str(model.resolve()) in out
    assert f"total {format_size(total)} in 2 export(s)" in out and "budget 500.0 MB (IMPASTO_ONNX_CACHE_MAX)" in out


def test_clear_dry_run_then_clear_empties_the_cache(cached, capsys):
    total = sum(p.stat().st_size for p in _cache_files())
    assert main(["cache", "clear", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert len(_cache_files()) == 4 and out.count("would remove ") == 2
    assert out.rstrip().endswith(f"would free {format_size(total)} (2 export(s)) in {ff_onnx.onnx_cache_dir()}")
    assert main(["cache", "clear"]) == 0
    out = capsys.readouterr().out
    assert _cache_files() == [] and out.count("removed ") == 2 and f"freed {format_size(total)} (2 export(s))" in out
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.startswith("no ONNX exports cached in ")
    assert main(["cache", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == []


def test_clear_exits_1_when_an_entry_cannot_be_removed(cached, capsys, monkeypatch):
    real = pathlib.Path.unlink

    def refuse(self, missing_ok=False):
        if self.suffix == ".onnx" and self.parent == ff_onnx.onnx_cache_dir():
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, missing_ok=missing_ok)

    monkeypatch.setattr(pathlib.Path, "unlink", refuse)
    assert main(["cache", "clear"]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("cannot remove it: Permission denied") == 2 and len(_cache_files()) == 4


def test_bad_input_exits_2_with_one_line(capsys, monkeypatch):
    monkeypatch.setenv("IMPASTO_ONNX_CACHE_MAX", "lots")
    assert main(["cache", "list"]) == 2
    assert capsys.readouterr().err == "impasto: error: IMPASTO_ONNX_CACHE_MAX='lots' is not a size: give bytes or a size like 500M, 2G or 1.5GB (0 keeps only the latest export)\n"
    assert main(["cache", "clear"]) == 0  # clearing needs no budget
    capsys.readouterr()
    for argv in (["cache", "purge"], ["cache", "clear", "--force"], ["cache", "list", "extra"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.count("\n") == 1 and "error:" in err and "Traceback" not in err, argv
    assert main(["cache"]) == 2  # no action: the help
    assert "impasto cache list" in capsys.readouterr().out
