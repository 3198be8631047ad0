"""The persistent job store of ``impasto serve``: SQLite (standard library) plus files on disk.

Everything lives under one home folder (``IMPASTO_HOME``, default ``~/.impasto``)::

    HOME/service.sqlite3          the jobs table
    HOME/jobs/<id>/               a job's inputs (content.png, style.png, ...) and result.png

Job ids are random hex (``secrets.token_hex``), checked against :data:`ID_PATTERN` before they
touch the file system, so an id is never a path. Status moves ``queued -> running -> done |
failed | cancelled``; a restart turns ``running`` back into ``queued`` (:meth:`JobStore.recover`).
All methods are thread-safe (one connection per call, SQLite's own locking, WAL journal).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

__all__ = ["Job", "JobStore", "STATUSES", "ID_PATTERN", "FINISHED"]

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    method TEXT NOT NULL,
    options TEXT NOT NULL,
    inputs TEXT NOT NULL,
    cache_key TEXT,
    client TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    progress REAL NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    result TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created);
CREATE INDEX IF NOT EXISTS jobs_cache ON jobs (cache_key, status);
"""


@dataclass
class Job:
    """One job as stored: ``inputs`` maps an input name to a file name in the job's folder;
    ``detail`` holds the latest progress (step, total, losses, stage) for the status endpoint."""

    id: str
    status: str
    method: str
    options: dict[str, Any]
    inputs: dict[str, Any]
    created: float
    cache_key: str | None = None
    client: str | None = None
    started: float | None = None
    finished: float | None = None
    progress: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    result: str | None = None
    attempts: int = 0

    def public(self) -> dict[str, Any]:
        """The job as the API shows it (no file names, no cache key)."""
        data = asdict(self)
        for key in ("inputs", "cache_key", "client", "result"):
            data.pop(key)
        data["has_result"] = self.result is not None
        end = self.finished or (time.time() if self.started else None)
        data["seconds"] = round(end - self.started, 3) if self.started and end else None
        data["waited"] = round((self.started or time.time()) - self.created, 3)
        return data


class JobStore:
    """The jobs table and the job folders under ``home``."""

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home)
        (self.home / "jobs").mkdir(parents=True, exist_ok=True)
        self.path = self.home / "service.sqlite3"
        self._lock = threading.Lock()  # serialises claim (select + update) across threads
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        data = dict(row)
        for key in ("options", "inputs", "detail"):
            data[key] = json.loads(data[key])
        return Job(**data)

    # ---- creating and reading ----------------------------------------------------------
    def new_id(self) -> str:
        """A fresh random job id (its folder is created)."""
        job_id = secrets.token_hex(16)
        self.folder(job_id).mkdir(parents=True)
        return job_id

    def folder(self, job_id: str) -> Path:
        """The folder of job ``job_id`` (ValueError for anything that is not an id)."""
        if not ID_PATTERN.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.home / "jobs" / job_id

    def add(self, job_id: str, method: str, options: dict[str, Any], inputs: dict[str, Any], *, cache_key: str | None = None, client: str | None = None) -> Job:
        """Store a new queued job whose input files are already in its folder."""
        job = Job(job_id, "queued", method, dict(options), dict(inputs), time.time(), cache_key, client)
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs (id, status, method, options, inputs, cache_key, client, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.status, job.method, json.dumps(job.options), json.dumps(job.inputs), cache_key, client, job.created),
            )
        return job

    def get(self, job_id: str) -> Job | None:
        """The job, or None (also for strings that are not ids)."""
        if not ID_PATTERN.match(job_id):
            return None
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def list(self, *, limit: int = 100, client: str | None = None) -> list[Job]:
        """The newest jobs first (of one client when given)."""
        with self._connect() as db:
            if client is None:
                rows = db.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
            else:
                rows = db.execute("SELECT * FROM jobs WHERE client = ? ORDER BY created DESC LIMIT ?", (client, limit)).fetchall()
        return [self._job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status."""
        with self._connect() as db:
            rows = db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {status: 0 for status in STATUSES} | {r[0]: r[1] for r in rows}

    def cached(self, cache_key: str) -> Job | None:
        """A finished job with the same inputs, options and weights whose result still exists."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM jobs WHERE cache_key = ? AND status = 'done' ORDER BY finished DESC", (cache_key,)).fetchall()
        for row in rows:
            job = self._job(row)
            if job.result and (self.folder(job.id) / job.result).is_file():
                return job
        return None

    # ---- the queue ---------------------------------------------------------------------
    def claim(self) -> Job | None:
        """Atomically take the oldest queued job and mark it running (None if there is none)."""
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT * FROM jobs WHERE status = 'queued' ORDER BY created LIMIT 1").fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            now = time.time()
            db.execute("UPDATE jobs SET status = 'running', started = ?, attempts = attempts + 1 WHERE id = ?", (now, row["id"]))
            db.execute("COMMIT")
        job = self._job(row)
        job.status, job.started, job.attempts = "running", now, job.attempts + 1
        return job

    def update(self, job_id: str, **fields: Any) -> None:
        """Set columns of a job (``options``/``inputs``/``detail`` are stored as JSON)."""
        if not fields:
            return
        for key in ("options", "inputs", "detail"):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        unknown = set(fields) - set(Job.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        columns = ", ".join(f"{k} = ?" for k in fields)
        with self._connect() as db:
            db.execute(f"UPDATE jobs SET {columns} WHERE id = ?", (*fields.values(), job_id))  # noqa: S608 - names checked above

    def finish(self, job_id: str, status: str, *, error: str | None = None, result: str | None = None) -> bool:
        """Move a running or queued job to a final status; False if it had finished already
        (e.g. cancelled while it ran)."""
        with self._connect() as db:
            cur = db.execute(
                "UPDATE jobs SET status = ?, finished = ?, error = ?, result = ?, progress = CASE WHEN ? = 'done' THEN 1.0 ELSE progress END "
                "WHERE id = ? AND status IN ('queued', 'running')",
                (status, time.time(), error, result, status, job_id),
            )
        return cur.rowcount == 1

    def recover(self) -> int:
        """After a restart: jobs left ``running`` go back to ``queued``; returns how many."""
        with self._connect() as db:
            cur = db.execute("UPDATE jobs SET status = 'queued', started = NULL, progress = 0 WHERE status = 'running'")
        return cur.rowcount

    def delete(self, job_id: str) -> bool:
        """Remove a job and its files."""
        if not ID_PATTERN.match(job_id):
            return False
        with self._connect() as db:
            cur = db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        shutil.rmtree(self.folder(job_id), ignore_errors=True)
        return cur.rowcount == 1
