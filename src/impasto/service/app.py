"""``impasto serve``: the REST API over the method registry and the embedded job queue.

``create_app(settings)`` returns a FastAPI app. Methods and their option forms come from the
registry (``impasto.list_methods``, ``impasto.method_schema``); jobs persist in the
:class:`~impasto.service.jobs.JobStore` under ``settings.home`` and run in the
:class:`~impasto.service.workers.LocalBackend` (or, with ``backend="ray"``, as tasks on a Ray
cluster: :class:`~impasto.service.ray_backend.RayBackend`). Every error body is ``{"error": "<one line>"}``.

Uploads: at most ``max_upload_mb`` (413), the type is read from the content by Pillow (415 for
anything that is not a JPEG/PNG/WebP/TIFF/BMP/GIF image), and the decompression-bomb guard
(``max_pixels``) applies before decoding (413). Job ids are random and never paths; style names
are looked up in the catalogue, never joined to paths.
"""

# (no ``from __future__ import annotations``: FastAPI reads the endpoint annotations, whose
# types are imported inside create_app so that the module imports without FastAPI)
import asyncio
import hashlib
import io
import json
import os
import re
import shutil
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import api
from .._version import __version__
from ..config import config_from_mapping, config_to_dict, impasto_home
from ..errors import ImpastoError, UsageError
from .jobs import FINISHED, JobStore
from .workers import RESULT_NAME, SNAPSHOT_NAME, LocalBackend

__all__ = ["ServiceSettings", "create_app", "default_home", "IMAGE_FORMATS"]

#: what Pillow may detect in an upload, and the extension the file is stored with
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif"}


def default_home() -> Path:
    """``IMPASTO_HOME``, else ``~/.impasto``."""
    return impasto_home()


@dataclass
class ServiceSettings:
    """Everything ``impasto serve`` can be told (the one home of the service's defaults)."""

    home: Path = field(default_factory=default_home)
    workers: int = 1  # jobs at once; with the Ray backend 0 means as many as the cluster's CPUs allow
    backend: str = "local"  # local (worker threads in the server) or ray (tasks on a Ray cluster)
    ray_address: str | None = "auto"  # the cluster to join ("auto": the one `ray start` made on this machine)
    ray_node_ip: str | None = None  # this machine's address as the Ray cluster knows it
    cpus_per_job: float = 1.0  # Ray backend: CPUs each job reserves (and the threads it uses)
    models: Path | None = None  # folder of trained models (each a model.pt or a training folder)
    styles: Path | None = None  # folder of paintings on offer (default: the bundled examples/style if present)
    token: str | None = None  # bearer token required on every API call (and the page)
    max_upload_mb: float = 20.0
    max_pixels: int = 40_000_000
    time_limit_s: float = 600.0
    rate_per_minute: int = 30  # job submissions per client per minute (0: no limit)
    cors_origins: tuple[str, ...] = ()
    start_workers: bool = True


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _bundled_styles() -> Path | None:
    here = Path(__file__).resolve().parents[3] / "examples" / "style"
    return here if here.is_dir() else None


def _catalogue(settings: ServiceSettings) -> dict[str, dict[str, Any]]:
    """name -> {kind, title, path}: the paintings and trained models on offer."""
    out: dict[str, dict[str, Any]] = {}
    styles = settings.styles or _bundled_styles()
    if styles and styles.is_dir():
        for f in sorted(styles.iterdir()):
            if f.is_file() and f.suffix.lower() in api.IMAGE_EXTENSIONS:
                out[f"painting:{f.name}"] = {"kind": "painting", "title": f.stem.replace("_", " "), "path": f}
    if settings.models and settings.models.is_dir():
        for d in sorted(settings.models.iterdir()):
            model = d / "model.pt" if d.is_dir() else d
            if model.is_file() and model.suffix in (".pt", ".onnx"):
                out[f"model:{d.stem if d.is_file() else d.name}"] = {"kind": "model", "title": d.stem if d.is_file() else d.name, "path": model}
    return out


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:500] or "error"


def _backend(settings: ServiceSettings, store: JobStore) -> Any:
    if settings.backend == "ray":
        from .ray_backend import RayBackend

        return RayBackend(
            store, address=settings.ray_address, workers=settings.workers, time_limit_s=settings.time_limit_s,
            cpus_per_job=settings.cpus_per_job, node_ip_address=settings.ray_node_ip,
        )
    if settings.backend != "local":
        raise UsageError(f"backend must be local or ray, got {settings.backend!r}")
    return LocalBackend(store, workers=settings.workers, time_limit_s=settings.time_limit_s)


def create_app(settings: ServiceSettings | None = None) -> Any:
    """The service app (see the module docstring). Starts its workers on startup unless
    ``settings.start_workers`` is False (tests drive the backend themselves)."""
    try:
        from fastapi import FastAPI, File, Form, Request, UploadFile
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
        from starlette.exceptions import HTTPException as StarletteHTTPException
    except ImportError:
        raise UsageError("impasto serve needs FastAPI, uvicorn and python-multipart: pip install 'impasto[serve]'") from None

    settings = settings or ServiceSettings()
    store = JobStore(settings.home)
    backend = _backend(settings, store)
    recent: dict[str, deque[float]] = defaultdict(deque)
    recent_lock = threading.Lock()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        if settings.start_workers:
            backend.start()
        yield
        backend.stop()

    app = FastAPI(title="impasto", version=__version__, lifespan=lifespan, description="Neural style transfer as a service: submit a photo and a style, follow the job, fetch the result.")
    app.state.store, app.state.backend, app.state.settings = store, backend, settings
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"], allow_headers=["*"])

    # ---- errors: always {"error": one line} ---------------------------------------------
    @app.exception_handler(_ApiError)
    async def api_error(request: Request, exc: _ApiError) -> Any:
        return JSONResponse({"error": _one_line(exc.message)}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        return JSONResponse({"error": _one_line(str(exc.detail))}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Any:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path"))
        return JSONResponse({"error": _one_line(f"{where}: {first.get('msg', 'invalid request')}")}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Any:
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)

    # ---- access --------------------------------------------------------------------------
    @app.middleware("http")
    async def authorise(request: Request, call_next: Any) -> Any:
        open_paths = ("/health", "/ready", "/", "/docs", "/openapi.json")
        if settings.token and request.url.path not in open_paths:
            given = request.headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else request.query_params.get("token", "")
            if not _same(token, settings.token):
                return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        return await call_next(request)

    def client_of(request: Request) -> str:
        """Whose job this is: the page's random client id (cookie or X-Impasto-Client header),
        else the caller's address. The history lists only that client's jobs."""
        given = request.headers.get("x-impasto-client") or request.cookies.get("impasto_client") or ""
        if given and len(given) <= 64 and given.replace("-", "").isalnum():
            return "id:" + given
        return "ip:" + (request.client.host if request.client else "unknown")

    def rate_limit(client: str) -> None:
        if not settings.rate_per_minute:
            return
        now = time.monotonic()
        with recent_lock:
            times = recent[client]
            while times and now - times[0] > 60:
                times.popleft()
            if len(times) >= settings.rate_per_minute:
                raise _ApiError(429, f"rate limit: at most {settings.rate_per_minute} jobs a minute per client")
            times.append(now)

    # ---- uploads -------------------------------------------------------------------------
    async def read_image(upload: UploadFile, what: str) -> tuple[bytes, str]:
        limit = int(settings.max_upload_mb * 1024 * 1024)
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise _ApiError(413, f"{what}: larger than the upload limit of {settings.max_upload_mb:g} MB")
        if not data:
            raise _ApiError(400, f"{what}: empty file")
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                fmt = im.format or ""
                w, h = im.size
                if fmt in IMAGE_FORMATS and w * h <= settings.max_pixels:
                    try:
                        im.load()  # decode now: a corrupt file is refused here, not in a worker
                    except Exception:  # noqa: BLE001
                        raise _ApiError(400, f"{what}: truncated or corrupt {fmt} image") from None
        except _ApiError:
            raise
        except Image.DecompressionBombError:
            raise _ApiError(413, f"{what}: too many pixels (decompression-bomb guard)") from None
        except Exception:  # noqa: BLE001 - whatever Pillow says, it is not an image
            raise _ApiError(415, f"{what}: not an image (JPEG, PNG, WebP, TIFF, BMP or GIF)") from None
        if fmt not in IMAGE_FORMATS:
            raise _ApiError(415, f"{what}: {fmt or 'unknown'} images are not accepted (JPEG, PNG, WebP, TIFF, BMP or GIF)")
        if w * h > settings.max_pixels:
            raise _ApiError(413, f"{what}: {w}x{h} is more than {settings.max_pixels} pixels")
        return data, IMAGE_FORMATS[fmt]

    # ---- the API -------------------------------------------------------------------------
    @app.get("/health", summary="Liveness")
    def health() -> Any:
        return {"ok": True, "version": __version__}

    @app.get("/ready", summary="503 until the queue and workers are up")
    def ready() -> Any:
        if not backend.ready:
            raise _ApiError(503, "workers are not running yet")
        return {"ready": True, "backend": backend.name, "workers": backend.workers, "jobs": store.counts()}

    @app.get("/methods", summary="The methods and the JSON Schema of their options")
    def methods() -> Any:
        return {"methods": [{"name": name, "schema": api.method_schema(name)} for name in api.list_methods()]}

    @app.get("/styles", summary="The paintings and trained models on offer")
    def styles() -> Any:
        return {"styles": [{"name": name, "kind": s["kind"], "title": s["title"]} for name, s in _catalogue(settings).items()]}

    @app.post("/jobs", status_code=202, summary="Submit a job (multipart: content, style or style_name, method, options JSON)")
    async def submit(
        request: Request,
        content: UploadFile | None = File(None, description="the photo"),
        style: UploadFile | None = File(None, description="a painting (or give style_name)"),
        style_name: str | None = Form(None, description="a style from GET /styles"),
        method: str = Form("gatys", description="a method from GET /methods"),
        options: str = Form("{}", description="the method's options as a JSON object"),
    ) -> Any:
        if method not in api.list_methods():
            raise _ApiError(404, f"unknown method {method!r} (GET /methods lists them)")
        try:
            given = json.loads(options or "{}")
        except json.JSONDecodeError as exc:
            raise _ApiError(422, f"options: not JSON ({exc.msg})") from None
        if not isinstance(given, dict):
            raise _ApiError(422, "options: expected a JSON object")
        inputs_spec = {i.name: i for i in api.method_inputs(method)}
        names = set(inputs_spec)
        clash = sorted(k for k in given if k in names)
        if clash:
            raise _ApiError(422, f"options: {clash[0]} is an input, not an option (upload it)")
        _refuse_server_files(api.method_config(method), given)
        try:
            config = config_from_mapping(api.method_config(method), given)
        except ImpastoError as exc:
            raise _ApiError(422, str(exc)) from None
        except (TypeError, ValueError) as exc:  # a value of the wrong JSON type
            raise _ApiError(422, f"options: {exc}") from None
        client = client_of(request)
        rate_limit(request.client.host if request.client else "unknown")  # per address, whatever id it claims

        job_id = store.new_id()
        folder = store.folder(job_id)
        inputs: dict[str, Any] = {}
        digest = hashlib.sha256(f"{__version__}|{method}|{json.dumps(config_to_dict(config), sort_keys=True, default=str)}".encode())
        try:
            image_input = next((i.name for i in inputs_spec.values() if i.kind == "image"), None)
            if content is not None:
                if image_input is None:
                    raise _ApiError(422, f"content: method {method} takes no photo")
                data, ext = await read_image(content, "content")
                (folder / f"content{ext}").write_bytes(data)
                inputs[image_input] = f"content{ext}"
                digest.update(b"content" + hashlib.sha256(data).digest())
            if style is not None and style_name:
                raise _ApiError(422, "give either a style file or a style_name, not both")
            if style is not None:
                if "style" not in inputs_spec:
                    raise _ApiError(422, f"style: method {method} takes no painting")
                data, ext = await read_image(style, "style")
                (folder / f"style{ext}").write_bytes(data)
                inputs["style"] = [f"style{ext}"]
                digest.update(b"style" + hashlib.sha256(data).digest())
            elif style_name:
                entry = _catalogue(settings).get(style_name)
                if entry is None:
                    raise _ApiError(404, f"unknown style {style_name!r} (GET /styles lists them)")
                target = "style" if entry["kind"] == "painting" else next((i.name for i in inputs_spec.values() if i.kind == "model"), None)
                if target is None or target not in inputs_spec:
                    raise _ApiError(422, f"style_name: method {method} cannot use a {entry['kind']}")
                inputs[target] = [str(entry["path"])] if inputs_spec[target].kind == "images" else str(entry["path"])
                digest.update(f"{target}|{entry['path']}|{Path(entry['path']).stat().st_mtime_ns}".encode())
            missing = [i.name for i in inputs_spec.values() if i.required and i.name not in inputs]
            if missing:
                raise _ApiError(422, f"{missing[0]}: required by method {method} (upload content, and a style or style_name)")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # not stored yet: nothing else to undo
            raise
        key = digest.hexdigest()
        hit = store.cached(key)
        job = store.add(job_id, method, config_to_dict(config), inputs, cache_key=key, client=client)
        if hit is not None:  # the same inputs, options and version: answer from the cache
            try:
                os.link(store.folder(hit.id) / str(hit.result), folder / RESULT_NAME)
            except OSError:
                shutil.copyfile(store.folder(hit.id) / str(hit.result), folder / RESULT_NAME)
            store.update(job_id, detail={"cached_from": hit.id}, started=time.time())
            store.finish(job_id, "done", result=RESULT_NAME)
            return {"id": job_id, "cached": True}
        backend.submitted(job.id)
        return {"id": job_id, "cached": False}

    def job_or_404(job_id: str) -> Any:
        job = store.get(job_id)
        if job is None:
            raise _ApiError(404, f"no job {job_id!r}")
        return job

    @app.get("/jobs", summary="The caller's newest jobs (the history of this client id or address)")
    def list_jobs(request: Request, limit: int = 50) -> Any:
        return {"jobs": [j.public() for j in store.list(limit=max(1, min(limit, 500)), client=client_of(request))]}

    @app.get("/jobs/{job_id}", summary="A job's status, progress, timings and error")
    def get_job(job_id: str) -> Any:
        return job_or_404(job_id).public()

    @app.delete("/jobs/{job_id}", summary="Cancel a queued or running job; purge=true also deletes it and its files")
    def delete_job(job_id: str, purge: bool = False) -> Any:
        job = job_or_404(job_id)
        cancelled = backend.cancel(job)
        if purge:
            if job.status == "running" and not cancelled:
                raise _ApiError(409, "the job is still running")
            store.delete(job_id)
            return {"id": job_id, "deleted": True}
        return {"id": job_id, "status": store.get(job_id).public()["status"]}  # type: ignore[union-attr]

    @app.get("/jobs/{job_id}/result", summary="The result image (PNG, with its parameters as metadata)")
    def result(job_id: str) -> Any:
        job = job_or_404(job_id)
        if job.status != "done" or not job.result:
            raise _ApiError(409, f"job {job_id} is {job.status}; no result")
        return FileResponse(store.folder(job_id) / RESULT_NAME, media_type="image/png", filename=f"impasto-{job_id[:8]}.png")

    @app.get("/jobs/{job_id}/snapshot", summary="The latest intermediate image")
    def snapshot(job_id: str) -> Any:
        job_or_404(job_id)
        path = store.folder(job_id) / SNAPSHOT_NAME
        if not path.is_file():
            raise _ApiError(404, "no snapshot yet")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/jobs/{job_id}/events", summary="Server-Sent Events: status, progress, snapshot, message")
    async def events(job_id: str, request: Request) -> Any:
        job = job_or_404(job_id)
        q = backend.subscribe(job_id)

        async def stream() -> Any:
            try:
                current = store.get(job_id) or job
                yield _sse({"type": "status", "status": current.status, "progress": current.progress, "error": current.error})
                if current.status in FINISHED:
                    return
                while not await request.is_disconnected():
                    try:
                        event = q.get_nowait()
                    except Exception:  # noqa: BLE001 - queue.Empty
                        await asyncio.sleep(0.1)
                        continue
                    yield _sse(event)
                    if event.get("type") == "status" and event.get("status") in FINISHED:
                        return
            finally:
                backend.unsubscribe(job_id, q)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> Any:
        from importlib import resources

        return HTMLResponse(resources.files("impasto.service").joinpath("static/serve.html").read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})

    return app


#: an option value that names a file rather than a built-in name
_PATHLIKE = re.compile(r"[/\\]|^~|\.(pth|pt|bin|safetensors|onnx|npz|npy|png|jpe?g|webp|tiff?|bmp|gif)$", re.IGNORECASE)


def _refuse_server_files(config_cls: Any, given: dict[str, Any]) -> None:
    """Options that can name a file (masks, an init image, weight files) would read the server's
    disk: the service takes only the built-in names there (422)."""
    import dataclasses

    for f in dataclasses.fields(config_cls):
        value = given.get(f.name)
        if not isinstance(value, str) or not value:
            continue
        metavar = str(f.metadata.get("metavar", ""))
        if metavar == "FILE":
            raise _ApiError(422, f"options: {f.name} names a file on the server, which the service does not allow")
        if ("FILE" in metavar or f.name.endswith("weights")) and (_PATHLIKE.search(value) or Path(value).exists()):
            raise _ApiError(422, f"options: {f.name}: {value!r} is a file; the service takes only built-in names here")


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event.get('type', 'message')}\ndata: {json.dumps(event)}\n\n"


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())
