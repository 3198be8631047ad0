"""Fixtures for the weights tests: an isolated cache, a loopback HTTP server and a tiny checkpoint.

Helpers are handed to tests as fixtures (``make_spec``, ``server.add``) rather than imported, so
nothing depends on how pytest names this folder's modules.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest
import torch

from impasto.weights import IMAGENET, WeightSpec, registry


def tiny_state_dict() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "features.0.weight": torch.randn(4, 3, 3, 3, generator=gen),
        "features.0.bias": torch.zeros(4),
        "bn.running_var": torch.ones(4),
        "bn.running_mean": torch.zeros(4),
    }


def checkpoint_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@dataclass
class Route:
    body: bytes
    status: int = 200
    announce: int | None = None  # Content-Length to send (default: len(body))
    delay: float = 0.0


@dataclass
class Server:
    """A loopback HTTP server; ``routes`` maps paths to responses, ``requests`` logs every hit."""

    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, body: bytes, **kwargs: object) -> str:
        """Serve ``body`` at ``path``; returns its URL."""
        self.routes[path] = Route(body, **kwargs)  # type: ignore[arg-type]
        return self.url(path)


def serve() -> Iterator[Server]:
    """Run a ThreadingHTTPServer on 127.0.0.1 (port 0) until the generator is closed."""
    state = Server(base="")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state.requests.append(self.path)
            route = state.routes.get(self.path)
            if route is None:
                self.send_error(404, "Not Found")
                return
            if route.delay:
                time.sleep(route.delay)
            self.send_response(route.status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(route.announce if route.announce is not None else len(route.body)))
            self.end_headers()
            try:
                self.wfile.write(route.body)
                self.wfile.flush()
            except OSError:
                pass
            if route.announce is not None and route.announce != len(route.body):
                self.close_connection = True  # hang up mid-transfer

        def log_message(self, format: str, *args: object) -> None:  # silence
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@dataclass
class Tiny:
    """A registered test checkpoint (arch ``tinyarch``) served by the loopback server."""

    spec: WeightSpec
    body: bytes
    state: dict[str, torch.Tensor]
    server: Server


def make_spec(body: bytes, urls: tuple[str, ...], *, name: str = "tinyarch.test", sha256: str | None = None) -> WeightSpec:
    digest = hashlib.sha256(body).hexdigest()
    arch = name.split(".")[0]
    return WeightSpec(
        name=name,
        arch=arch,
        filename=f"{arch}-{digest[:8]}.pth",
        urls=urls,
        sha256=sha256 or digest,
        size=len(body),
        licence="test only",
        preprocessing=IMAGENET,
        description="a tiny checkpoint served from 127.0.0.1",
    )


@pytest.fixture(autouse=True)
def impasto_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache folder; nothing touches the real torch hub cache."""
    home = tmp_path / "impasto_home"
    monkeypatch.setenv("IMPASTO_HOME", str(home))
    return home


@pytest.fixture
def server() -> Iterator[Server]:
    yield from serve()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL on which nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/tiny.pth"


@pytest.fixture
def tiny(server: Server, monkeypatch: pytest.MonkeyPatch) -> Tiny:
    """A registered checkpoint ``tinyarch.test`` served at ``/tiny.pth``."""
    state = tiny_state_dict()
    body = checkpoint_bytes(state)
    spec = make_spec(body, (server.add("/tiny.pth", body),))
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    return Tiny(spec, body, state, server)


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch) -> Callable[..., WeightSpec]:
    """``register(body, urls, name=..., sha256=...)``: build a WeightSpec and register it for one test."""

    def add(body: bytes, urls: tuple[str, ...], **kwargs: str) -> WeightSpec:
        spec = make_spec(body, urls, **kwargs)
        monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
        return spec

    return add


@pytest.fixture
def save_bytes() -> Callable[[object], bytes]:
    """``torch.save`` into bytes."""
    return checkpoint_bytes
