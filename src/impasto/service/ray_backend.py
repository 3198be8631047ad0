"""The scale-out backend of ``impasto serve``: each job runs as a Ray task on an existing cluster.

The server stays the one owner of the job store. A dispatcher thread claims queued jobs (no more
than the cluster can run at once), ships their input files to a Ray task as bytes (a painting
or model from the catalogue is put into the object store once and shared by its jobs), and
follows the tasks:

- progress, snapshots and messages go from the task to a small actor (:class:`_Hub`) the server
  drains every 0.1 s, so the page's SSE stream looks the same as with the local backend;
- the task returns the result image's bytes, which the server writes into the job's folder;
- a worker or node that dies mid-job makes Ray retry the task elsewhere (``max_retries``); the
  task says where it started, so the page shows the retry, and the job completes;
- cancel and the time limit are ``ray.cancel(force=True)`` on the task;
- a job asks for a GPU when its ``device`` option wants one (``cuda...``, or ``auto`` on a
  cluster that has GPUs); each job reserves ``cpus_per_job`` CPUs and uses that many threads.

Nodes share nothing but Ray: no common file system is assumed. Ray is imported only here, so the
embedded queue works without it (``pip install 'impasto[ray]'``).
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .jobs import FINISHED, Job, JobStore
from .runner import RESULT_NAME, SNAPSHOT_NAME, Stop, Subscribers, first_line, run_job

__all__ = ["RayBackend", "gpu_request", "RETRIES"]

#: how often Ray re-runs a job whose worker or node died
RETRIES = 3
_POLL_S = 0.1


def gpu_request(options: dict[str, Any], cluster_gpus: float) -> int:
    """GPUs a job asks Ray for: 1 when its ``device`` option names CUDA, or is ``auto`` on a
    cluster with GPUs; else 0."""
    device = str(options.get("device", "auto"))
    if device.startswith("cuda"):
        return 1
    return 1 if device == "auto" and cluster_gpus >= 1 else 0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--backend ray needs Ray: pip install 'impasto[ray]'") from None
    return ray


def _check_reachable(address: str | None) -> None:
    """A HOST:PORT that does not answer fails at once (Ray itself would keep retrying)."""
    import socket

    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except ValueError:
        raise UsageError(f"--ray-address {address}: expected HOST:PORT of the Ray head, or auto") from None
    except OSError as exc:
        raise UsageError(f"--ray-address {address}: no Ray head answers there ({exc.strerror or exc})") from None


@dataclass
class _Running:
    job: Job
    ref: Any
    started: float
    attempts: int = 0
    node: str | None = None
    pid: int | None = None
    last_record: float = 0.0
    cancelled: bool = field(default=False)


class RayBackend:
    """Jobs as Ray tasks on the cluster at ``address`` (``"auto"``: the one ``ray start`` made on
    this machine). ``workers``: jobs in flight at once (0: the cluster's CPUs / ``cpus_per_job``)."""

    name = "ray"

    def __init__(
        self, store: JobStore, *, address: str | None = "auto", workers: int = 0, time_limit_s: float = 600.0,
        cpus_per_job: float = 1.0, node_ip_address: str | None = None, namespace: str = "impasto",
    ) -> None:
        self.store = store
        self.address = address
        self._workers = int(workers)
        self.time_limit_s = float(time_limit_s)
        self.cpus_per_job = float(cpus_per_job)
        self.node_ip_address = node_ip_address
        self.namespace = namespace
        self._ray: Any = None
        self._hub: Any = None
        self._task: Any = None
        self._events = Subscribers()
        self._running: dict[str, _Running] = {}
        self._blobs: dict[tuple[str, int, int], Any] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._capacity = (0, 0.0)  # (jobs, when measured)
        self._cluster_gpus = 0.0
        self.ready = False

    @property
    def workers(self) -> int:
        """Jobs in flight at once."""
        return self._workers or self._capacity[0]

    # ---- lifecycle ---------------------------------------------------------------------
    def connect(self) -> None:
        """Join the cluster (a one-line UsageError naming ``--ray-address`` when that fails)."""
        ray = self._ray = _import_ray()
        if not ray.is_initialized():
            _check_reachable(self.address)
            kwargs: dict[str, Any] = {"address": self.address, "namespace": self.namespace, "log_to_driver": False}
            if self.node_ip_address:
                kwargs["_node_ip_address"] = self.node_ip_address
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UsageError(f"--ray-address {self.address}: cannot connect to a Ray cluster ({first_line(exc)})") from None

    def start(self) -> None:
        """Connect, start the event hub, re-queue unfinished jobs, dispatch."""
        self.connect()
        ray = self._ray
        here = ray.get_runtime_context().get_node_id()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        hub = ray.remote(num_cpus=0, max_restarts=-1)(_Hub)
        self._hub = hub.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True)).remote()
        self._task = ray.remote(_remote_job)
        self._measure(force=True)
        self.store.recover()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="impasto-ray-dispatch", daemon=True)
        self._thread.start()
        self.ready = True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop dispatching; tasks in flight are cancelled and their jobs stay ``running``, so the
        next start re-queues them."""
        self.ready = False
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            running, self._running = list(self._running.values()), {}
        for run in running:
            self._ray.cancel(run.ref, force=True)

    def submitted(self, job_id: str) -> None:
        """A job was queued: wake the dispatcher."""
        self._wake.set()

    def cancel(self, job: Job) -> bool:
        """Cancel a queued or running job (False if it had finished)."""
        if job.status in FINISHED:
            return False
        with self._lock:
            run = self._running.pop(job.id, None)
        if run is not None:
            self._ray.cancel(run.ref, force=True)
        done = self.store.finish(job.id, "cancelled", error="cancelled")
        if done:
            self._events.publish(job.id, {"type": "status", "status": "cancelled", "error": "cancelled"})
        return done

    # ---- events ------------------------------------------------------------------------
    def subscribe(self, job_id: str) -> queue.Queue[dict[str, Any]]:
        """A queue that receives the job's events from now on."""
        return self._events.subscribe(job_id)

    def unsubscribe(self, job_id: str, q: queue.Queue[dict[str, Any]]) -> None:
        """Stop sending events to ``q``."""
        self._events.unsubscribe(job_id, q)

    # ---- dispatching -------------------------------------------------------------------
    def _measure(self, force: bool = False) -> None:
        """The cluster's size, re-read every 5 s (nodes come and go)."""
        if not force and time.monotonic() - self._capacity[1] < 5.0:
            return
        resources = self._ray.cluster_resources()
        self._cluster_gpus = float(resources.get("GPU", 0.0))
        jobs = int(float(resources.get("CPU", 0.0)) // max(self.cpus_per_job, 1e-9))
        self._capacity = (max(1, jobs), time.monotonic())

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except Exception:  # noqa: BLE001 - the dispatcher never dies; it retries next tick
                traceback.print_exc()
                time.sleep(1.0)
            self._wake.wait(_POLL_S)
            self._wake.clear()

    def _step(self) -> None:
        self._drain_events()
        self._collect()
        self._enforce_time_limit()
        self._measure()
        while len(self._running) < self.workers and not self._stopping.is_set():
            job = self.store.claim()
            if job is None:
                break
            self._dispatch(job)

    def _blob(self, path: Path) -> Any:
        """A catalogue file (painting, model) in the object store, put once per version."""
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key not in self._blobs:
            self._blobs[key] = self._ray.put(path.read_bytes())
        return self._blobs[key]

    def _dispatch(self, job: Job) -> None:
        folder = self.store.folder(job.id)

        def pack(value: str) -> tuple[str, Any]:
            path = Path(value)
            if path.is_absolute():  # a catalogue entry: shared by many jobs
                return path.name, self._blob(path)
            return path.name, (folder / path).read_bytes()

        try:
            files = {name: ([pack(v) for v in value] if isinstance(value, list) else pack(value)) for name, value in job.inputs.items()}
        except OSError as exc:
            self._finish(job.id, "failed", f"input unreadable on the server ({first_line(exc, folder)})")
            return
        options = self._task.options(
            num_cpus=self.cpus_per_job, num_gpus=gpu_request(job.options, self._cluster_gpus), max_retries=RETRIES,
            retry_exceptions=False, name=f"impasto-job-{job.id[:8]}",
        )
        ref = options.remote(job.id, job.method, job.options, files, self._hub, int(max(1, self.cpus_per_job)))
        with self._lock:
            self._running[job.id] = _Running(job, ref, time.monotonic())
        self._events.publish(job.id, {"type": "status", "status": "running"})

    def _drain_events(self) -> None:
        try:
            events = self._ray.get(self._hub.drain.remote(), timeout=10)
        except Exception:  # noqa: BLE001 - a restarting hub: events resume with the next drain
            return
        for job_id, event in events:
            run = self._running.get(job_id)
            if run is None:  # finished, cancelled or from an old attempt
                continue
            kind = event.get("type")
            if kind == "started":
                run.attempts += 1
                previous, run.node = run.node, event.get("node")
                if run.attempts > 1:
                    text = f"worker lost on node {str(previous)[:8]}; retrying on node {str(run.node)[:8]} (attempt {run.attempts})"
                    self._events.publish(job_id, {"type": "message", "text": text, "level": "warning"})
                    self.store.update(job_id, attempts=run.attempts)
                run.pid = event.get("pid")
                self.store.update(job_id, detail={"node": run.node, "pid": run.pid, "attempt": run.attempts})
                continue
            if kind == "snapshot":
                data = event.pop("png", None)
                if data:
                    path = self.store.folder(job_id) / SNAPSHOT_NAME
                    tmp = path.with_name(f".{SNAPSHOT_NAME}.tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, path)
            elif kind == "progress":
                now = time.monotonic()
                if now - run.last_record > 0.5 or event.get("step") == event.get("total"):
                    run.last_record = now
                    detail = {k: event[k] for k in ("step", "total", "stage", "stages", "losses") if k in event}
                    self.store.update(job_id, progress=event["progress"], detail={**detail, "node": run.node, "pid": run.pid, "attempt": run.attempts})
            self._events.publish(job_id, event)

    def _collect(self) -> None:
        with self._lock:
            refs = {run.ref: job_id for job_id, run in self._running.items()}
        if not refs:
            return
        ready, _ = self._ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for ref in ready:
            job_id = refs[ref]
            with self._lock:
                run = self._running.pop(job_id, None)
            if run is None:
                continue
            try:
                outcome = self._ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - retries exhausted, or cancelled
                if "Cancel" in type(exc).__name__:
                    continue
                self._finish(job_id, "failed", f"worker lost {RETRIES + 1} times ({type(exc).__name__})")
                continue
            self._drain_events()  # the task's last events come before its status
            if outcome["status"] == "done":
                folder = self.store.folder(job_id)
                tmp = folder / f".{RESULT_NAME}.tmp"
                tmp.write_bytes(outcome["png"])
                os.replace(tmp, folder / RESULT_NAME)
                if not self._finish(job_id, "done", None, result=RESULT_NAME):
                    (folder / RESULT_NAME).unlink(missing_ok=True)
            else:
                self._finish(job_id, outcome["status"], outcome["error"])

    def _enforce_time_limit(self) -> None:
        if not self.time_limit_s:
            return
        now = time.monotonic()
        with self._lock:
            late = [run for run in self._running.values() if now - run.started > self.time_limit_s]
            for run in late:
                self._running.pop(run.job.id, None)
        for run in late:
            self._ray.cancel(run.ref, force=True)
            self._finish(run.job.id, "failed", f"time limit of {self.time_limit_s:g} s reached")

    def _finish(self, job_id: str, status: str, error: str | None, **fields: Any) -> bool:
        done = self.store.finish(job_id, status, error=error, **fields)
        if done:
            event = {"type": "status", "status": status}
            if error:
                event["error"] = error
            self._events.publish(job_id, event)
        return done


class _Hub:
    """A Ray actor: tasks push their events, the server drains them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def push(self, job_id: str, event: dict[str, Any]) -> None:
        self.events.append((job_id, event))

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        events, self.events = self.events, []
        return events


def _remote_job(job_id: str, method: str, options: dict[str, Any], files: dict[str, Any], hub: Any, threads: int) -> dict[str, Any]:
    """The Ray task: write the inputs to a private folder, run the job, return the result's bytes
    (or the one-line error). Progress goes to ``hub``."""
    import tempfile

    import ray
    import torch

    from ..errors import ImpastoError

    torch.set_num_threads(threads)
    hub.push.remote(job_id, {"type": "started", "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()})
    with tempfile.TemporaryDirectory(prefix="impasto-job-") as tmp:
        folder = Path(tmp)

        def unpack(item: tuple[str, Any]) -> Path:
            name, data = item
            if isinstance(data, ray.ObjectRef):
                data = ray.get(data)
            path = folder / name
            n = 1
            while path.exists():  # two inputs may share a file name
                n += 1
                path = folder / f"{Path(name).stem}-{n}{Path(name).suffix}"
            path.write_bytes(data)
            return path

        inputs = {k: ([unpack(x) for x in v] if isinstance(v, list) else unpack(v)) for k, v in files.items()}
        snapshot = folder / SNAPSHOT_NAME

        def publish(event: dict[str, Any]) -> None:
            if event.get("type") == "snapshot" and snapshot.is_file():
                event = {**event, "png": snapshot.read_bytes()}
            hub.push.remote(job_id, event)

        try:
            result = run_job(method, inputs, options, snapshot_path=snapshot, publish=publish, min_interval_s=0.2)
            result.save(folder / RESULT_NAME, sidecar=False)
        except Stop as stop:
            return {"status": stop.status, "error": stop.message}
        except ImpastoError as exc:
            return {"status": "failed", "error": first_line(exc, folder)}
        except Exception as exc:  # noqa: BLE001 - reported as the job's error, never retried
            traceback.print_exc()
            return {"status": "failed", "error": f"internal error ({type(exc).__name__}: {first_line(exc, folder)[:200]})"}
        return {"status": "done", "png": (folder / RESULT_NAME).read_bytes()}
