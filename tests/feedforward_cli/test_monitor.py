"""The training monitor: JSON endpoints, the page, preview images, and path traversal refused."""

from __future__ import annotations

import json

import pytest

from tests.conftest import require_module

require_module("fastapi")
require_module("httpx")

import warnings  # noqa: E402

with warnings.catch_warnings():  # starlette's note about httpx vs httpx2
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient  # noqa: E402

from impasto.service.monitor import create_monitor_app  # noqa: E402


@pytest.fixture
def client(trained_run):
    return TestClient(create_monitor_app(trained_run))


def test_log_endpoint_and_since(client, trained_run):
    data = client.get("/api/log").json()
    assert [r["step"] for r in data["records"]] == [1, 2]
    assert {"total", "content", "style", "tv", "lr"} <= set(data["records"][0])
    assert data["steps"] == 2 and data["arch"] == "johnson-small" and data["finished"] is True
    later = client.get("/api/log", params={"since": 1}).json()
    assert [r["step"] for r in later["records"]] == [2] and later["last_step"] == 2
    assert client.get("/api/log", params={"since": 2}).json()["records"] == []


def test_log_tolerates_a_partly_written_line(tmp_path):
    (tmp_path / "log.jsonl").write_text(json.dumps({"step": 1, "total": 2.0}) + "\n" + '{"step": 2, "tot')
    data = TestClient(create_monitor_app(tmp_path)).get("/api/log").json()
    assert [r["step"] for r in data["records"]] == [1] and data["finished"] is False


def test_missing_run_folder_waits(tmp_path):
    data = TestClient(create_monitor_app(tmp_path / "not-yet")).get("/api/log").json()
    assert data["records"] == [] and data["exists"] is False


def test_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "<canvas" in html and "/api/log" in html and "/api/previews" in html
    assert "http://" not in html and "https://" not in html, "no CDN: works offline"


def test_previews_list_and_images(client):
    previews = client.get("/api/previews").json()["previews"]
    assert [p["step"] for p in previews] == [1, 2]
    assert previews[-1]["files"] == ["00.png", "01.png"]
    r = client.get(previews[-1]["urls"][0])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
    assert client.get("/previews/2/01.png").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/previews/step_000002/..%2F..%2Fconfig.json",
        "/previews/..%2F..%2F/model.pt",
        "/previews/step_000002/%2e%2e%2fconfig.json",
        "/previews/step_000002/.hidden.png",
        "/previews/step_000002/log.jsonl",
        "/previews/..%2F..%2F..%2F..%2Fetc/passwd",
        "/previews/step_000009/00.png",
    ],
)
def test_path_traversal_and_unknown_files_are_refused(client, url):
    r = client.get(url)
    assert r.status_code == 404
    assert b"step" not in r.content[:1] and not r.content.startswith(b"\x89PNG")
