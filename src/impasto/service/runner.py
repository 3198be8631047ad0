"""What both backends of ``impasto serve`` share: running one job through ``impasto.api.run`` and
turning its progress events into the small dicts the SSE endpoint sends, and the per-job lists of
subscribers those dicts go to.

The local backend calls :func:`run_job` in a worker thread of the server; the Ray backend calls it
inside a Ray task on any node of the cluster, so nothing here touches the job store.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import api
from ..progress import Event, MessageEvent, SnapshotEvent, StageEvent, StepEvent

__all__ = ["Stop", "Subscribers", "run_job", "first_line", "RESULT_NAME", "SNAPSHOT_NAME"]

RESULT_NAME = "result.png"
SNAPSHOT_NAME = "snapshot.png"


class Stop(Exception):
    """Raised inside a job's callback: cancelled, or past its time limit."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def first_line(exc: BaseException, folder: Path | str | None = None) -> str:
    """An exception as one line, with the job folder's path taken out (the user sees the input's
    name, never the server's file system)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.replace(f"{folder}/", "") if folder else text


class Subscribers:
    """Per-job lists of queues: the SSE endpoint subscribes, the backend publishes."""

    def __init__(self) -> None:
        self._subs: dict[str, list[queue.Queue[dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def subscribe(self, job_id: str) -> queue.Queue[dict[str, Any]]:
        """A queue that receives the job's events from now on."""
        q: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._subs.setdefault(job_id, []).append(q)
        return q

    def unsubscribe(self, job_id: str, q: queue.Queue[dict[str, Any]]) -> None:
        """Stop sending events to ``q``."""
        with self._lock:
            subs = self._subs.get(job_id, [])
            if q in subs:
                subs.remove(q)
            if not subs:
                self._subs.pop(job_id, None)

    def publish(self, job_id: str, event: dict[str, Any]) -> None:
        """Send ``event`` to every subscriber of the job."""
        with self._lock:
            targets = list(self._subs.get(job_id, []))
        for q in targets:
            q.put(event)


def run_job(
    method: str,
    inputs: Mapping[str, Any],
    options: Mapping[str, Any],
    *,
    snapshot_path: Path,
    publish: Callable[[dict[str, Any]], None],
    check: Callable[[], None] = lambda: None,
    record: Callable[[float, dict[str, Any]], None] | None = None,
    run: Callable[..., Any] | None = None,
    min_interval_s: float = 0.0,
) -> Any:
    """Run one job and return its :class:`~impasto.methods.result.Result`.

    ``publish`` receives ``progress`` / ``snapshot`` / ``message`` dicts (progress at most every
    ``min_interval_s``, the last step always); ``check`` runs before each event and may raise
    :class:`Stop`; ``record(fraction, detail)`` is called at most twice a second with the
    progress to store. Snapshots are written to ``snapshot_path``.
    """
    state: dict[str, Any] = {"stage": 0, "stages": 1, "last_record": 0.0, "last_publish": 0.0}

    def callback(event: Event) -> None:
        check()
        if isinstance(event, StageEvent):
            state.update(stage=event.stage, stages=max(1, event.stages))
        elif isinstance(event, StepEvent):
            stages = max(1, event.stages or state["stages"])
            fraction = round((event.stage + event.step / max(1, event.total)) / stages, 4)
            detail = {"step": event.step, "total": event.total, "stage": event.stage, "stages": stages, "losses": {k: round(float(v), 6) for k, v in event.losses.items()}}
            now = time.monotonic()
            last = event.step == event.total
            if last or now - state["last_publish"] >= min_interval_s:
                state["last_publish"] = now
                publish({"type": "progress", "progress": fraction, **detail})
            if record is not None and (last or now - state["last_record"] > 0.5):
                state["last_record"] = now
                record(fraction, detail)
        elif isinstance(event, SnapshotEvent):
            api.save_image(snapshot_path, event.image)
            publish({"type": "snapshot", "step": event.step})
        elif isinstance(event, MessageEvent):
            publish({"type": "message", "text": event.text, "level": event.level})

    return (run or api.run)(method, **inputs, **options, callback=callback)
