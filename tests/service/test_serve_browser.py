"""The service page in a real headless Chromium (Playwright driving Debian's chromium): choose a
photo, a style and options from the generated form, submit, watch the progress bar advance over
Server-Sent Events, and see the result image load. Skipped where no Chromium or Playwright is
installed; under CI=true (.ci/run installs both) a missing one fails the run."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.conftest import require_module, require_program

require_module("multipart")
uvicorn = require_module("uvicorn")
playwright_api = require_module("playwright.sync_api")
BROWSER = require_program("chromium", "chromium-browser", "google-chrome")

from impasto.service.app import ServiceSettings, create_app  # noqa: E402


@pytest.fixture
def served(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServiceSettings(home=tmp_path / "home", rate_per_minute=0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


def test_upload_submit_progress_and_result_in_a_browser(served, tmp_path):
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (200, 120, 40)).save(photo)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page()
            page.goto(served)
            page.wait_for_selector("#opt-iterations", state="attached")  # the form was built from the schema
            page.set_input_files("#file", str(photo))
            page.wait_for_selector("#preview", state="visible", timeout=10_000)  # the photo shows before submitting
            page.select_option("#method", "gatys")
            page.select_option("#style", "painting:starry_night.jpg")
            page.click("#options summary")
            page.fill("#opt-iterations", "150")  # long enough to watch the bar move
            page.fill("#opt-edge", "48")
            page.fill("#opt-weights", "random")
            page.fill("#opt-encoder", "tiny_vgg")
            page.click("#go")
            seen = set()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not page.query_selector("img#result"):
                seen.add(round(float(page.eval_on_selector("#bar", "b => b.value")), 3))
                time.sleep(0.05)
            assert page.query_selector("img#result"), page.inner_text("#status")
            page.wait_for_function("() => document.querySelector('img#result').naturalWidth > 0")
            assert page.eval_on_selector("img#result", "i => i.naturalWidth") == 48
            assert len({v for v in seen if 0 < v < 1}) >= 2, f"the progress bar did not advance: {sorted(seen)}"
            assert page.inner_text("#status") == "done" and page.inner_text("#msg") == ""
            page.wait_for_function("() => document.querySelector('#history').innerText.includes('done')")
        finally:
            browser.close()
