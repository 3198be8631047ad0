"""The embedded backend of ``impasto serve``: a pool of worker threads inside the server process
that takes queued jobs from the :class:`~impasto.service.jobs.JobStore` and runs them through
``impasto.api.run``.

Progress reaches subscribers (the SSE endpoint) as small dicts; the latest snapshot image is
written to the job's folder. A job is cancelled between two steps (its callback raises), and
one that runs past the time limit fails the same way. No Ray, no other service needed.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from .. import api
from ..errors import ImpastoError
from .jobs import FINISHED, Job, JobStore
from .runner import RESULT_NAME, SNAPSHOT_NAME, Stop, Subscribers, first_line, run_job

__all__ = ["LocalBackend", "RESULT_NAME", "SNAPSHOT_NAME"]


class LocalBackend:
    """``workers`` threads running jobs; ``time_limit_s`` per job (0: none)."""

    name = "local"

    def __init__(self, store: JobStore, *, workers: int = 1, time_limit_s: float = 600.0, run: Callable[..., Any] | None = None) -> None:
        self.store = store
        self.workers = max(1, int(workers))
        self.time_limit_s = float(time_limit_s)
        self._run = run or api.run
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._cancel: set[str] = set()
        self._events = Subscribers()
        self.ready = False

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Re-queue jobs a previous process left running, then start the workers."""
        self.store.recover()
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, name=f"impasto-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        self.ready = True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking jobs; running jobs are cancelled at their next step and re-queued by the
        next start (they were not finished)."""
        self.ready = False
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def submitted(self, job_id: str) -> None:
        """A job was queued: wake a worker."""
        with self._wake:
            self._wake.notify()

    def cancel(self, job: Job) -> bool:
        """Cancel a queued or running job (False if it had finished)."""
        if job.status in FINISHED:
            return False
        self._cancel.add(job.id)
        done = self.store.finish(job.id, "cancelled", error="cancelled")
        if done:
            self._publish(job.id, {"type": "status", "status": "cancelled", "error": "cancelled"})
        return done

    # ---- events ------------------------------------------------------------------------
    def subscribe(self, job_id: str) -> queue.Queue[dict[str, Any]]:
        """A queue that receives the job's events from now on."""
        return self._events.subscribe(job_id)

    def unsubscribe(self, job_id: str, q: queue.Queue[dict[str, Any]]) -> None:
        """Stop sending events to ``q``."""
        self._events.unsubscribe(job_id, q)

    def _publish(self, job_id: str, event: dict[str, Any]) -> None:
        self._events.publish(job_id, event)

    # ---- running -----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            job = self.store.claim()
            if job is None:
                with self._wake:
                    self._wake.wait(0.5)
                continue
            self._execute(job)

    def _execute(self, job: Job) -> None:
        folder = self.store.folder(job.id)
        self._publish(job.id, {"type": "status", "status": "running"})
        t0 = time.monotonic()

        def check() -> None:
            if job.id in self._cancel or self._stopping.is_set():
                raise Stop("cancelled", "cancelled")
            if self.time_limit_s and time.monotonic() - t0 > self.time_limit_s:
                raise Stop("failed", f"time limit of {self.time_limit_s:g} s reached")

        # file names are relative to the job's folder; catalogue entries are absolute (pathlib keeps those)
        inputs = {name: ([folder / v for v in value] if isinstance(value, list) else folder / value) for name, value in job.inputs.items()}
        try:
            result = run_job(
                job.method, inputs, job.options, snapshot_path=folder / SNAPSHOT_NAME, run=self._run, check=check,
                publish=lambda event: self._publish(job.id, event),
                record=lambda fraction, detail: self.store.update(job.id, progress=fraction, detail=detail),
            )
            result.save(folder / RESULT_NAME, sidecar=False)
        except Stop as stop:
            if self._stopping.is_set() and job.id not in self._cancel:
                return  # shutting down: the job stays "running" and the next start re-queues it
            if self.store.finish(job.id, stop.status, error=stop.message):
                self._publish(job.id, {"type": "status", "status": stop.status, "error": stop.message})
            return
        except ImpastoError as exc:
            self._fail(job, first_line(exc, folder))
            return
        except Exception as exc:  # noqa: BLE001 - a job never takes the worker down
            traceback.print_exc()
            self._fail(job, f"internal error ({type(exc).__name__}: {first_line(exc, folder)[:200]})")
            return
        finally:
            self._cancel.discard(job.id)
        if self.store.finish(job.id, "done", result=RESULT_NAME):
            self._publish(job.id, {"type": "status", "status": "done"})
        else:  # cancelled while its last step ran
            Path(folder / RESULT_NAME).unlink(missing_ok=True)

    def _fail(self, job: Job, message: str) -> None:
        if self.store.finish(job.id, "failed", error=message):
            self._publish(job.id, {"type": "status", "status": "failed", "error": message})
