"""Findings of benchmarks/security_replay.py (issue 11 replayed against a real server).

On SQLite, a reviewer queueing imports while another import wrote made a second reviewer's
upload fail with a 500 (and a traceback at ERROR) after a 60 s stall, two queued imports fail
with "database is locked", and ``/healthz`` time out: ``JobRunner.create`` held the runner's
lock while waiting for the database's write lock, which the running import held until it could
take the runner's lock to report progress (a deadlock broken only by SQLite's busy timeout),
and the async upload route made that wait on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from service_helpers import api_csrf, csrf_of, proposals_csv
from sqlalchemy import create_engine, event, select
from sqlalchemy.orm import sessionmaker


@pytest.fixture
def quick_factory(tmp_path: Path):
    """A SQLite factory with a 3 s busy timeout, so a deadlock shows in seconds, not a minute."""
    from service.db import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'var' / 'tian.db'}"
    upgrade(make_engine(url))
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 3})

    @event.listens_for(engine, "connect")
    def _wal(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def test_queueing_a_job_does_not_deadlock_with_a_running_import(quick_factory):
    from service.jobs import JobRunner
    from service.models import User

    runner = JobRunner(quick_factory, background=True)
    runner.start()
    holding, queued = threading.Event(), {}
    timing = {}

    def work(job):
        with quick_factory() as s, s.begin():
            s.add(User(username="x", password_hash="x", role="viewer"))
            s.flush()  # the write lock is ours until commit, as in an import
            holding.set()
            time.sleep(0.5)  # another reviewer queues a job meanwhile
            started = time.perf_counter()
            job.progress(5, 10, "正在写入")
            timing["progress"] = time.perf_counter() - started
        return {}

    def other_reviewer():
        holding.wait(10)
        try:
            queued["job"] = runner.create("import", owner_id=7)
        except Exception as exc:  # the failure being tested
            queued["error"] = exc

    t = threading.Thread(target=other_reviewer)
    t.start()
    job = runner.submit("import", work)
    t.join(30)
    runner.wait_idle(30)
    assert timing["progress"] < 1.0, "reporting progress waited for the database"
    assert "error" not in queued, queued.get("error")
    assert runner.get(job.id).status == "done"
    runner.shutdown()


@pytest.mark.parametrize("wait", ["true", "false"])
def test_the_upload_route_queues_its_job_off_the_event_loop(service, monkeypatch, wait):
    """A database wait while queueing an import must not stop the server answering others."""
    calls = []
    real_create = service.state.jobs.create

    def create(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            calls.append("event loop")
        except RuntimeError:
            calls.append("worker thread")
        return real_create(*args, **kwargs)

    monkeypatch.setattr(service.state.jobs, "create", create)
    rev = service.client_for("rev")
    rows = [("Z-001", "关于加强城市绿化的建议", "城市绿化公园建设")]
    r = rev.post(
        "/api/imports",
        files={"file": ("z.csv", proposals_csv(rows))},
        data={"wait": wait},
        headers=api_csrf(rev),
    )
    assert r.status_code in (201, 202), r.text
    # The import page queues the same way.
    page = rev.get("/import")
    r = rev.post(
        "/import",
        files={"file": ("y.csv", proposals_csv([("Y-001", *rows[0][1:])]))},
        data={"csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    service.state.jobs.wait_idle()
    assert len(calls) >= 2 and "event loop" not in calls, calls
    from service.models import Proposal

    with service.state.factory() as s:
        stored = set(s.scalars(select(Proposal.pid)))
    assert {"Z-001", "Y-001"} <= stored


def test_topic_upload_writes_off_the_event_loop(service, monkeypatch):
    import service.bootstrap as bootstrap

    calls = []
    real = bootstrap.store_topics

    def store_topics(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            calls.append("event loop")
        except RuntimeError:
            calls.append("worker thread")
        return real(*args, **kwargs)

    monkeypatch.setattr(bootstrap, "store_topics", store_topics)
    rev = service.client_for("rev")
    data = "topic_id,topic\nT1,河湖生态环境保护研究\nT2,基层医疗卫生服务\n".encode()
    r = rev.post(
        "/api/topics", data={"year": "2024"}, files={"file": ("t.csv", data)}, headers=api_csrf(rev)
    )
    assert r.status_code == 201 and r.json()["added"] == 2, r.text
    bad = rev.post(
        "/api/topics", data={"year": "2024"}, files={"file": ("t.csv", b"")}, headers=api_csrf(rev)
    )
    assert bad.status_code == 422
    assert calls == ["worker thread"], calls


def test_an_import_and_its_job_outcome_commit_together(service, monkeypatch):
    """kill -9 right after an import committed must not leave its job to be reported as
    interrupted ("nothing stored") while all its rows are stored: on SQLite the job's final
    save could wait behind another import's write transaction for many seconds."""
    from service import queries
    from service.models import JobRecord, Proposal, User

    class Killed(BaseException):
        """Stands in for kill -9: nothing after the import's commit runs."""

    def killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(queries, "queue_analysis", killed)
    state = service.state
    with state.factory() as s:
        user_id = s.scalar(select(User.id).where(User.username == "rev"))
    path = state.settings.data_dir / "uploads" / "k.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proposals_csv([("K-001", "关于加强城市绿化的建议", "城市绿化公园建设")]))
    job = state.jobs.create("import", user_id)
    with pytest.raises(Killed):
        queries.run_import(state, path, "k.csv", user_id, None, False, job)
    with state.factory() as s:
        assert s.scalar(select(Proposal.pid).where(Proposal.pid == "K-001")) == "K-001"
        row = s.get(JobRecord, job.id)
        assert row.status == "done" and row.finished_at is not None, row.status
