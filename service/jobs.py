"""Background jobs (imports, analyses) kept in the database, with progress for the pages.

Every job is a row of the ``jobs`` table (:class:`service.models.JobRecord`): kind, owner,
status, progress, message, result and times. Any worker process reads any job, and a restart
loses none: a job whose process died (its process is gone, or its heartbeat stopped) is
reported as ``interrupted``, never as unknown. An interrupted import stored nothing (imports
are one transaction), so the message tells the user to upload the file again.

Jobs run in threads of this process, in lanes: imports in a small pool with one thread more
than a user may have jobs (a user's slow files never hold up other users' imports; parsing
itself runs in a bounded subprocess, see
:mod:`service.importer`), everything else one at a time, so two analyses never race on the
same year. A user may have at most :data:`MAX_ACTIVE_PER_USER` jobs queued or running;
beyond that :meth:`JobRunner.submit` answers 429 (:class:`JobQueueFull`).

Progress is written by a saver thread, never by the job itself: on SQLite an import holds
the only write lock for its whole transaction, so a progress write from inside it would
wait for the import to end. Jobs running in this process are answered from memory (always
current); the rows are what other workers and later restarts see.

Several processes (``tian serve --workers N`` on PostgreSQL) share the table: each one's
heartbeat thread also sweeps the rows of the others every :data:`HEARTBEAT_S`, so a job whose
worker was killed is reported ``interrupted`` while the service runs, not only at the next
start. Analyses are one at a time across all processes too: on PostgreSQL a job of an
:data:`EXCLUSIVE` kind holds a session advisory lock while it runs (the server drops it when
the holder dies, so a killed worker never leaves it taken).

Statuses: ``queued``, ``running``, ``done``, ``failed``, ``interrupted``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
import traceback
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from service.models import JobRecord, utcnow

log = logging.getLogger("tian.service.jobs")

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "interrupted")
MAX_ACTIVE_PER_USER = 3
HEARTBEAT_S = 10.0
# A job whose heartbeat is older than this is taken as abandoned (its worker was killed on
# another machine); on this machine a dead process id says so at once. A live process id on
# this machine is trusted much longer: on SQLite a long import holds the write lock, so its
# heartbeat cannot be written until it commits.
STALE_S = 60.0
STALE_LOCAL_S = 15 * 60.0
_SAVE_EVERY_S = 0.5
# Threads per kind; every other kind shares one thread. More import threads than one user may
# have jobs (MAX_ACTIVE_PER_USER), so one user's slow files never hold up everyone's imports.
_LANES = {"import": MAX_ACTIVE_PER_USER + 1}
# Kinds that run one at a time across every process (two analyses of a year must not race).
EXCLUSIVE = frozenset({"analysis"})
WAITING = "等待其他正在进行的分析完成"
INTERNAL_ERROR = "任务因内部错误失败，没有保存不完整的结果；详情见服务器日志"
INTERRUPTED = {
    "import": "服务在导入过程中重启或停止，文件未导入（没有保存任何内容）；请重新上传文件",
    "analysis": "服务在分析过程中重启或停止；已完成的部分已保存，请在模型页面重新分析该年度",
}


class JobQueueFull(HTTPException):
    """429: the user already has the most jobs queued or running that one user may have."""

    def __init__(self, limit: int) -> None:
        super().__init__(429, f"您已有 {limit} 个任务在排队或运行，请等它们完成后再提交。")


@dataclass
class Job:
    """What the progress page shows about one job; changes are written to its row."""

    id: int
    kind: str
    status: str = "queued"
    done: int = 0
    total: int = 0
    message: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    owner_id: int | None = None
    created: dt.datetime | None = None
    finished: dt.datetime | None = None
    _sink: Callable[[Job, bool], None] | None = field(default=None, repr=False, compare=False)

    def progress(self, done: int, total: int | None = None, message: str | None = None) -> None:
        """Record progress (saved at most twice a second, and whenever the message changes)."""
        changed = message is not None and message != self.message
        self.done = done
        if total is not None:
            self.total = total
        if message is not None:
            self.message = message
        if self._sink is not None:
            self._sink(self, changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "done": self.done,
            "total": self.total,
            "message": self.message,
            "result": self.result,
            "created": self.created.isoformat() if self.created else None,
            "finished": self.finished.isoformat() if self.finished else None,
        }


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes for timezone columns: they are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _job_of(row: JobRecord) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        status=row.status,
        done=row.done,
        total=row.total,
        message=row.message,
        result=dict(row.result or {}),
        owner_id=row.owner_id,
        created=_aware(row.created_at),
        finished=_aware(row.finished_at),
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


class JobRunner:
    """Runs callables ``fn(job)`` as durable jobs (inline when ``background=False``)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        background: bool = True,
        max_active_per_user: int = MAX_ACTIVE_PER_USER,
    ) -> None:
        self.factory = factory
        self.background = background
        self.max_active_per_user = max_active_per_user
        self.host = socket.gethostname()[:40]
        self.worker = f"{self.host}:{os.getpid()}:{secrets.token_hex(4)}"
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()
        # Makes count-then-insert in create() atomic. Not self._lock: create() waits for the
        # database, and on SQLite a running import holds the write lock until it can take
        # self._lock to report progress (a deadlock until the busy timeout).
        self._create_lock = threading.Lock()
        self._live: dict[int, Job] = {}  # jobs running in this process
        self._dirty: set[int] = set()  # live jobs whose progress is not saved yet
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._heart: threading.Thread | None = None
        self._saver: threading.Thread | None = None

    # ----------------------------------------------------------------------------------
    # Start and stop

    def start(self) -> int:
        """Report abandoned jobs as interrupted, start heartbeat and saver; returns how many."""
        count = self.recover()
        if self._saver is None:
            self._saver = threading.Thread(target=self._save_loop, name="tian-job-saver")
            self._saver.daemon = True
            self._saver.start()
        if self.background and self._heart is None:
            self._heart = threading.Thread(target=self._beat, name="tian-job-heartbeat")
            self._heart.daemon = True
            self._heart.start()
        return count

    def shutdown(self) -> None:
        """Stop taking work; jobs that never started are reported as interrupted."""
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        self._stop.set()
        self._wake.set()
        self._mark_interrupted(select(JobRecord).where(JobRecord.worker == self.worker))

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.beat_once()

    def beat_once(self) -> None:
        """Refresh this process's heartbeats, then report other workers' dead jobs."""
        try:
            with self.factory() as session, session.begin():
                session.execute(
                    update(JobRecord)
                    .where(JobRecord.worker == self.worker, JobRecord.status.in_(ACTIVE))
                    .values(heartbeat_at=utcnow())
                )
            # Not only at start-up: with several workers, a killed one is not restarted
            # by anyone who would run recover() for it.
            self.recover(starting=False)
        except Exception as exc:  # a busy database must not stop the heartbeat thread
            log.warning("job heartbeat failed: %s", type(exc).__name__)

    def abandoned(self, row: JobRecord, *, starting: bool = False) -> bool:
        """Whether an active job's worker is gone (a dead process here, or no heartbeat).

        ``starting``: this runner has just started, so a job recorded under this very process
        id by another runner belongs to an earlier process that had the same id (a restarted
        container) and is gone.
        """
        if row.status not in ACTIVE or row.worker == self.worker:
            return False
        host, _, rest = row.worker.partition(":")
        pid = rest.partition(":")[0]
        stale = STALE_S
        if host == self.host and pid.isdigit():
            if not _pid_alive(int(pid)) or (starting and int(pid) == os.getpid()):
                return True
            stale = STALE_LOCAL_S
        beat = _aware(row.heartbeat_at or row.created_at)
        return beat is None or (utcnow() - beat).total_seconds() > stale

    def recover(self, *, starting: bool = True) -> int:
        """Mark every abandoned queued or running job as interrupted; returns how many.

        ``starting`` as in :meth:`abandoned` (True at start-up, False for the periodic sweep).
        """
        with self.factory() as session:
            rows = list(session.scalars(select(JobRecord).where(JobRecord.status.in_(ACTIVE))))
            ids = [r.id for r in rows if self.abandoned(r, starting=starting)]
        if ids:
            self._mark_interrupted(select(JobRecord).where(JobRecord.id.in_(ids)))
            log.warning("%d job(s) were interrupted (worker gone): %s", len(ids), ids)
        return len(ids)

    def _mark_interrupted(self, query: Any) -> None:
        with self.factory() as session, session.begin():
            for row in session.scalars(query.where(JobRecord.status.in_(ACTIVE))):
                row.status = "interrupted"
                row.message = INTERRUPTED.get(row.kind, "服务重启或停止，任务中断；请重新提交")
                row.finished_at = utcnow()

    # ----------------------------------------------------------------------------------
    # Submitting and running

    def create(self, kind: str, owner_id: int | None = None, *, limited: bool = True) -> Job:
        """Record a queued job; 429 (:class:`JobQueueFull`) past the owner's limit."""
        with self._create_lock, self.factory() as session, session.begin():
            if limited and owner_id is not None:
                active = session.scalar(
                    select(func.count())
                    .select_from(JobRecord)
                    .where(JobRecord.owner_id == owner_id, JobRecord.status.in_(ACTIVE))
                )
                if (active or 0) >= self.max_active_per_user:
                    raise JobQueueFull(self.max_active_per_user)
            row = JobRecord(
                kind=kind,
                owner_id=owner_id,
                status="queued",
                message="排队中",
                result={},
                worker=self.worker,
                heartbeat_at=utcnow(),
            )
            session.add(row)
            session.flush()
            job = _job_of(row)
        job._sink = self._progress
        return job

    def submit(
        self,
        kind: str,
        fn: Callable[[Job], dict[str, Any] | None],
        owner_id: int | None = None,
        *,
        limited: bool = True,
    ) -> Job:
        """Queue ``fn``; its returned dict becomes ``job.result``.

        ``limited=False`` for follow-up work that the system queues itself (the analysis
        after an import), which must not be refused halfway.
        """
        job = self.create(kind, owner_id, limited=limited)
        if self.background:
            fut = self._pool(kind).submit(self.run, job, fn)
            with self._lock:
                self._futures = [f for f in self._futures if not f.done()] + [fut]
        else:
            self.run(job, fn)
        return job

    def _pool(self, kind: str) -> ThreadPoolExecutor:
        lane = kind if kind in _LANES else "default"
        with self._lock:
            if lane not in self._pools:
                self._pools[lane] = ThreadPoolExecutor(
                    max_workers=_LANES.get(lane, 1), thread_name_prefix=f"tian-{lane}"
                )
            return self._pools[lane]

    def run(self, job: Job, fn: Callable[[Job], dict[str, Any] | None]) -> None:
        """Run ``fn(job)`` here and now, recording its outcome (never raises)."""
        job.status = "running"
        with self._lock:
            self._live[job.id] = job
        self._save(job, started=True)
        try:
            with self._exclusive(job):
                job.result = fn(job) or {}
            job.status = "done"
        except Exception as exc:
            job.status = "failed"
            user_message = getattr(exc, "user_message", None)
            if isinstance(user_message, str):
                # An expected outcome (a rejected file): no traceback, the message is safe.
                job.message = user_message
                log.info("job %d (%s) refused: %s", job.id, job.kind, getattr(exc, "log", ""))
            else:
                # Messages of unexpected errors may quote data: only the log has them.
                job.message = INTERNAL_ERROR
                log.error("job %d (%s) failed:\n%s", job.id, job.kind, traceback.format_exc())
        finally:
            job.finished = utcnow()
            with self._lock:
                self._dirty.discard(job.id)
            try:
                self._save(job, finished=True)
            finally:
                with self._lock:
                    self._live.pop(job.id, None)

    @contextmanager
    def _exclusive(self, job: Job) -> Iterator[None]:
        """Hold the kind's cluster-wide lock while ``job`` runs (PostgreSQL; see module doc).

        SQLite serves one process (``tian serve`` refuses several workers on it), where the
        kind's single-thread lane already keeps analyses apart.
        """
        bind = self.factory.kw.get("bind")
        if job.kind not in EXCLUSIVE or bind is None or bind.dialect.name != "postgresql":
            yield
            return
        key = zlib.crc32(f"tian-job:{job.kind}".encode())
        # A connection of its own, outside any transaction the job opens: the lock is held
        # for the connection's life, and the server releases it if this process dies.
        with bind.connect() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            if not got:
                job.progress(job.done, message=WAITING)
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()  # end the implicit transaction; the session lock stays
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()

    def _progress(self, job: Job, changed: bool) -> None:
        with self._lock:
            self._dirty.add(job.id)
        if changed:
            self._wake.set()

    def _save_loop(self) -> None:
        """Write the progress of live jobs about twice a second (see the module docstring)."""
        while not self._stop.is_set():
            self._wake.wait(_SAVE_EVERY_S)
            self._wake.clear()
            with self._lock:
                jobs = [self._live[i] for i in self._dirty if i in self._live]
                self._dirty.clear()
            for job in jobs:
                self._save(job)

    def _save(self, job: Job, *, started: bool = False, finished: bool = False) -> None:
        if job.id <= 0:
            return
        values: dict[str, Any] = {
            "status": job.status,
            "done": job.done,
            "total": job.total,
            "message": job.message[:500],
            "heartbeat_at": utcnow(),
        }
        if started:
            values["started_at"] = utcnow()
        if finished:
            values["finished_at"] = job.finished
            values["result"] = job.result
        query = update(JobRecord).where(JobRecord.id == job.id)
        if not finished:
            # A late progress write must never overwrite the outcome.
            query = query.where(JobRecord.status.in_(ACTIVE))
        try:
            with self.factory() as session, session.begin():
                session.execute(query.values(**values))
        except Exception as exc:
            if finished:
                raise
            log.warning("job %d: progress not saved (%s)", job.id, type(exc).__name__)

    # ----------------------------------------------------------------------------------
    # Reading

    def get(self, job_id: int) -> Job | None:
        """The job as stored (any worker's); an abandoned one is reported as interrupted."""
        with self._lock:
            live = self._live.get(job_id)
        if live is not None:
            return live
        with self.factory() as session:
            row = session.get(JobRecord, job_id)
            if row is None:
                return None
            if not self.abandoned(row):
                return _job_of(row)
        self._mark_interrupted(select(JobRecord).where(JobRecord.id == job_id))
        with self.factory() as session:
            row = session.get(JobRecord, job_id)
            return _job_of(row) if row is not None else None

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Block until every job this process queued has finished (tests, shutdown)."""
        with self._lock:
            futures = list(self._futures)
        for fut in futures:
            fut.result(timeout=timeout)
