"""``require``: a missing optional dependency skips locally and fails under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, require, require_module, require_program

MISSING = [
    lambda: require(False, "no widget installed"),
    lambda: require_module("impasto_no_such_module"),
    lambda: require_program("impasto-no-such-program"),
]


@pytest.mark.parametrize("call", MISSING, ids=["require", "module", "program"])
def test_missing_dependency_skips_locally(monkeypatch, call):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        call()


@pytest.mark.parametrize("ci", ["true", "1", "TRUE"])
@pytest.mark.parametrize("call", MISSING, ids=["require", "module", "program"])
def test_missing_dependency_fails_under_ci(monkeypatch, call, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="CI=true, so this fails instead of skipping"):
        call()


def test_present_dependencies_pass_through(monkeypatch):
    monkeypatch.setenv("CI", "true")
    require(True, "unused")
    assert require_module("json").__name__ == "json"
    assert Path(require_program("impasto-no-such-program", "sh")).name == "sh"


def test_browser_test_fails_under_ci_without_chromium(tmp_path):
    """The real browser test module, collected with no Chromium on PATH and CI=true: the run fails
    and says why (it must not be skipped)."""
    env = {**os.environ, "CI": "true", "PATH": str(tmp_path)}  # an empty PATH: no chromium
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/feedforward_cli/test_monitor_browser.py"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0, out.stdout[-2000:]
    assert "none of chromium, chromium-browser, google-chrome is on PATH" in out.stdout
    assert "CI must install it" in out.stdout and "skipped" not in out.stdout.splitlines()[-1]
