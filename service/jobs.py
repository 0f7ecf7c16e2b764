"""Background jobs (import follow-up analysis, large imports) with progress for the pages.

One worker thread runs jobs in order, so two analyses never race on the same year. Job status
lives in memory: it is for showing progress, while the results themselves are in the database.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("tian.service.jobs")


@dataclass
class Job:
    """What the progress page shows about one job."""

    id: int
    kind: str
    status: str = "queued"  # queued, running, done, failed
    done: int = 0
    total: int = 0
    message: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def progress(self, done: int, total: int | None = None, message: str | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        if message is not None:
            self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "done": self.done,
            "total": self.total,
            "message": self.message,
            "result": self.result,
        }


class JobRunner:
    """Runs callables ``fn(job)`` in one background thread (or inline when ``background=False``)."""

    def __init__(self, background: bool = True, keep: int = 200) -> None:
        self.background = background
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tian-job")
        self._jobs: dict[int, Job] = {}
        self._futures: list[Future[None]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._keep = keep

    def submit(self, kind: str, fn: Callable[[Job], dict[str, Any] | None]) -> Job:
        """Queue ``fn``; its returned dict becomes ``job.result``."""
        with self._lock:
            job = Job(id=next(self._ids), kind=kind)
            self._jobs[job.id] = job
            for old in sorted(self._jobs)[: max(0, len(self._jobs) - self._keep)]:
                del self._jobs[old]
        if self.background:
            fut = self._pool.submit(self._run, job, fn)
            with self._lock:
                self._futures = [f for f in self._futures if not f.done()] + [fut]
        else:
            self._run(job, fn)
        return job

    def _run(self, job: Job, fn: Callable[[Job], dict[str, Any] | None]) -> None:
        job.status = "running"
        try:
            job.result = fn(job) or {}
            job.status = "done"
        except Exception as exc:
            # Messages of our own errors name files and rows, never personal data.
            job.status = "failed"
            job.message = str(exc) or type(exc).__name__
            log.error("job %d (%s) failed:\n%s", job.id, job.kind, traceback.format_exc())
        finally:
            job.finished = time.time()

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Block until every queued job has finished (tests, shutdown)."""
        with self._lock:
            futures = list(self._futures)
        for fut in futures:
            fut.result(timeout=timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
