"""A local web page that follows a training run: live loss curves and the latest previews.

``create_monitor_app(run_dir)`` returns a FastAPI app (``impasto monitor RUN_DIR`` serves it on
127.0.0.1). The page is static HTML with an inline canvas chart (no CDN, works offline) that polls
two JSON endpoints and never reloads:

- ``GET /api/log?since=N``: log records with ``step > N``, plus the run's status;
- ``GET /api/previews``: the preview folders (one per step) and their image URLs;
- ``GET /previews/{step}/{file}``: one preview image (names are validated; nothing outside the
  run's ``previews/`` folder is ever served).
"""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = ["create_monitor_app"]

_STEP_DIR = re.compile(r"^step_(\d{1,12})$")
_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\.(png|jpg|jpeg|webp)$")
_MEDIA = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


def _page() -> str:
    return resources.files("impasto.service").joinpath("static/monitor.html").read_text(encoding="utf-8")


def _read_log(path: Path) -> list[dict[str, Any]]:
    from ..api import read_training_log

    return read_training_log(path)


def create_monitor_app(run_dir: str | os.PathLike[str]) -> Any:
    """The monitor app for the training folder ``run_dir`` (it may not exist yet: the page waits)."""
    try:
        from fastapi import FastAPI, HTTPException, Query
        from fastapi.responses import FileResponse, HTMLResponse
    except ImportError:
        raise UsageError("the monitor needs FastAPI and uvicorn: pip install 'impasto[monitor]'") from None

    root = Path(run_dir).resolve()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{run_dir}: is not a training folder")
    previews_root = root / "previews"
    app = FastAPI(title="impasto monitor", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def page() -> Any:
        return HTMLResponse(_page(), headers={"Cache-Control": "no-store"})

    @app.get("/api/log")
    def log(since: int = Query(-1, description="only records with step > since")) -> Any:
        records = [r for r in _read_log(root / "log.jsonl") if int(r.get("step", 0)) > since]
        config: dict[str, Any] = {}
        try:
            config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        train_config = config.get("config", {}) if isinstance(config, dict) else {}
        return {
            "run": root.name,
            "records": records,
            "last_step": max([int(r.get("step", 0)) for r in records], default=since if since >= 0 else 0),
            "steps": train_config.get("steps"),
            "arch": train_config.get("arch"),
            "style": (config.get("style") or {}).get("name") if isinstance(config, dict) else None,
            "finished": (root / "model.pt").is_file(),
            "exists": root.is_dir(),
        }

    @app.get("/api/previews")
    def previews() -> Any:
        out = []
        if previews_root.is_dir():
            for d in previews_root.iterdir():
                m = _STEP_DIR.match(d.name)
                if not m or not d.is_dir():
                    continue
                files = sorted(f.name for f in d.iterdir() if f.is_file() and _FILE.match(f.name))
                if files:
                    out.append({"step": int(m.group(1)), "dir": d.name, "files": files, "urls": [f"/previews/{d.name}/{f}" for f in files]})
        out.sort(key=lambda e: e["step"])
        return {"previews": out}

    @app.get("/previews/{step}/{file}")
    def preview_file(step: str, file: str) -> Any:
        m = _STEP_DIR.match(step) or re.match(r"^(\d{1,12})$", step)
        if not m or not _FILE.match(file):
            raise HTTPException(status_code=404, detail="no such preview")
        name = step if step.startswith("step_") else f"step_{int(m.group(1)):06d}"
        path = (previews_root / name / file).resolve()
        if previews_root.resolve() not in path.parents or not path.is_file():
            raise HTTPException(status_code=404, detail="no such preview")
        return FileResponse(path, media_type=_MEDIA[path.suffix.lower().lstrip(".")], headers={"Cache-Control": "no-cache"})

    return app
