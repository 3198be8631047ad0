"""The monitor page in a real headless browser (Chromium): the page's own JavaScript fetches the
log and the previews and renders them. Skipped where no Chromium is installed; under CI=true
(.ci/run installs Debian's chromium) a missing browser fails the run."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from tests.conftest import require_module, require_program

require_module("fastapi")
uvicorn = require_module("uvicorn")
BROWSER = require_program("chromium", "chromium-browser", "google-chrome")

from impasto.service.monitor import create_monitor_app  # noqa: E402



@pytest.fixture
def served(trained_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_monitor_app(trained_run), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "monitor server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


def _rendered_dom(url: str, tmp_path) -> str:
    cmd = [
        BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=4000", "--dump-dom", url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_page_renders_losses_and_previews_in_a_browser(served, tmp_path):
    dom = _rendered_dom(served, tmp_path)
    status = re.search(r'<span id="status">([^<]*)</span>', dom)
    assert status is not None and re.fullmatch(r"step 2 / 2 · [0-9.]+ images/s · finished", status.group(1)), dom
    assert "johnson-small" in dom  # the run line
    legend = re.search(r'<div id="legend">(.*?)</div>', dom, re.S).group(1)
    assert {"total", "content", "style"} <= set(re.findall(r"</i>(\w+)", legend))
    # the latest step's previews are shown, every preview step is selectable, and the images load
    previews = re.findall(r'<img src="(/previews/step_000002/\d+\.png)\?t=2" alt="preview at step 2">', dom)
    assert len(previews) == 2, dom
    assert re.findall(r'<option value="(\d+)">', dom) == ["1", "2"]
    for path in previews:
        with urllib.request.urlopen(served.rstrip("/") + path) as r:
            assert r.headers["content-type"] == "image/png" and r.read(8) == b"\x89PNG\r\n\x1a\n"
