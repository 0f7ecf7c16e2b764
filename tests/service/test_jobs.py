"""Durable jobs: any worker sees any job, a dead worker's jobs are reported as interrupted,
a bounded queue per user, imports not held up behind an analysis, private files, uploads
removed after a crash."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from service_helpers import TOY_ROWS, api_csrf, proposals_csv
from sqlalchemy import select


@pytest.fixture
def factory(tmp_path: Path):
    from service.db import make_engine, make_session_factory, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'tian.db'}")
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_any_worker_sees_any_job(factory):
    from service.jobs import JobRunner

    one, two = JobRunner(factory, background=False), JobRunner(factory, background=False)
    job = one.submit("import", lambda j: (j.progress(3, 3, "导入完成"), {"added": 3})[1])
    seen = two.get(job.id)
    assert seen is not None and seen.to_dict()["status"] == "done"
    assert seen.result == {"added": 3} and seen.done == seen.total == 3
    assert two.get(job.id + 1) is None


def test_jobs_of_a_dead_worker_are_reported_interrupted(factory):
    from service.jobs import JobRunner
    from service.models import JobRecord, utcnow

    with factory() as s, s.begin():
        host = JobRunner(factory).host
        s.add(JobRecord(kind="import", status="queued", worker=f"{host}:{_dead_pid()}:ab"))
        s.add(JobRecord(kind="analysis", status="running", worker=f"{host}:{_dead_pid()}:cd"))
        # Another machine's worker whose heartbeat stopped two minutes ago.
        old = utcnow() - dt.timedelta(minutes=2)
        s.add(JobRecord(kind="import", status="running", worker="far:1:ef", heartbeat_at=old))
        # A live worker elsewhere: left alone.
        s.add(JobRecord(kind="import", status="running", worker="far:2:gh", heartbeat_at=utcnow()))
        # An earlier process with this very id (a restarted container).
        s.add(JobRecord(kind="import", status="running", worker=f"{host}:{os.getpid()}:old"))
        # A live worker on this machine whose heartbeat waits behind a long SQLite import.
        s.add(
            JobRecord(
                kind="import",
                status="running",
                worker=f"{host}:{os.getppid()}:ij",
                heartbeat_at=old,
            )
        )
    runner = JobRunner(factory, background=False)
    assert runner.start() == 4
    with factory() as s:
        rows = {r.id: r for r in s.scalars(select(JobRecord))}
    statuses = [rows[i].status for i in sorted(rows)]
    assert statuses == ["interrupted"] * 3 + ["running", "interrupted", "running"]
    assert "请重新上传文件" in rows[1].message and rows[1].finished_at is not None
    assert "重新分析" in rows[2].message
    runner.shutdown()


def test_a_stale_job_is_reported_interrupted_when_read(factory):
    from service.jobs import JobRunner
    from service.models import JobRecord, utcnow

    runner = JobRunner(factory, background=False)
    with factory() as s, s.begin():
        old = utcnow() - dt.timedelta(minutes=5)
        row = JobRecord(kind="import", status="running", worker="far:9:zz", heartbeat_at=old)
        s.add(row)
        s.flush()
        job_id = row.id
    job = runner.get(job_id)
    assert job is not None and job.status == "interrupted"


def test_bounded_queue_per_user(service):
    from service.jobs import MAX_ACTIVE_PER_USER
    from service.models import JobRecord, User

    with service.state.factory() as s, s.begin():
        rev = s.scalar(select(User).where(User.username == "rev"))
        for _ in range(MAX_ACTIVE_PER_USER):
            s.add(
                JobRecord(
                    kind="import",
                    owner_id=rev.id,
                    status="running",
                    worker=service.state.jobs.worker,
                )
            )
    client = service.client_for("rev")
    files = {"file": ("p.csv", proposals_csv(TOY_ROWS))}
    r = client.post("/api/imports", files=files, data={"wait": "false"}, headers=api_csrf(client))
    assert r.status_code == 429 and "请等它们完成后再提交" in r.json()["detail"]
    r = client.post("/api/analyse?year=2024", headers=api_csrf(client))
    assert r.status_code == 429
    assert not list((service.tmp / "var" / "uploads").iterdir())  # the refused upload is gone
    # Another user is not affected.
    admin = service.client_for("admin")
    r = admin.post("/api/imports", files=files, headers=api_csrf(admin))
    assert r.status_code == 201


def test_imports_are_not_held_up_behind_a_long_analysis(factory):
    from service.jobs import JobRunner

    runner = JobRunner(factory, background=True)
    runner.start()
    release = threading.Event()
    try:
        slow = runner.submit("analysis", lambda j: {"ok": release.wait(30)})
        quick = runner.submit("import", lambda j: {"added": 1})
        deadline = dt.datetime.now() + dt.timedelta(seconds=20)
        while runner.get(quick.id).status != "done":  # type: ignore[union-attr]
            assert dt.datetime.now() < deadline, "the import waited for the analysis"
            threading.Event().wait(0.05)
        assert runner.get(slow.id).status == "running"  # type: ignore[union-attr]
    finally:
        release.set()
        runner.wait_idle()
        runner.shutdown()


def test_progress_is_visible_while_an_import_holds_the_write_lock(factory):
    """On SQLite an import's transaction holds the only write lock; progress must not wait."""
    from service.jobs import JobRunner

    runner = JobRunner(factory, background=False)
    runner.start()
    seen = {}

    def work(job):
        with factory() as s, s.begin():
            s.execute(select(1))
            from service.models import User

            s.add(User(username="x", password_hash="x", role="viewer"))
            s.flush()  # the write lock is ours until commit
            job.progress(5, 10, "正在写入")
            other = JobRunner(factory, background=False)  # what a page request sees
            seen["here"] = runner.get(job.id).to_dict()
            seen["other"] = other.get(job.id).to_dict()
        return {}

    started = dt.datetime.now()
    runner.submit("import", work)
    assert (dt.datetime.now() - started).total_seconds() < 10
    assert seen["here"]["message"] == "正在写入" and seen["here"]["done"] == 5
    assert seen["other"]["status"] == "running"
    runner.shutdown()


def test_database_and_data_folder_are_private(tmp_path):
    from service.db import make_engine

    old = os.umask(0o022)
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'tian.db'}")
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x)")
        engine.dispose()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "data" / "tian.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


def test_uploads_left_by_a_dead_process_are_removed(tmp_path):
    from service.uploads import clean_uploads

    folder = tmp_path / "uploads"
    folder.mkdir()
    dead = folder / f"up-{_dead_pid()}-0a1b.csv"
    live = folder / f"up-{os.getppid()}-0a1b.csv"  # another worker, still running
    legacy = folder / "tmpab12cd.xlsx"
    for path in (dead, live, legacy):
        path.write_text("提案号,案由,提案人\n1,甲,某人\n", encoding="utf-8")
    assert clean_uploads(folder) == 2
    assert [p.name for p in folder.iterdir()] == [live.name]


def test_start_up_cleans_uploads(service, tmp_path):
    from service.app import build_state

    folder = service.tmp / "var" / "uploads"
    folder.mkdir(exist_ok=True)
    (folder / f"up-{_dead_pid()}-99.csv").write_text("x", encoding="utf-8")
    state = build_state(service.state.settings)
    try:
        assert not list(folder.iterdir())
    finally:
        state.jobs.shutdown()
        state.engine.dispose()


def test_follow_up_analyses_do_not_count_against_the_importer(service):
    """Four imports in a row: the analyses each one queues never block the next."""
    from service.models import JobRecord

    rev = service.client_for("rev")
    for i in range(4):
        rows = [(f"S-{i}", "关于医院的建议", "医疗卫生")]
        r = rev.post(
            "/api/imports",
            files={"file": (f"s{i}.csv", proposals_csv(rows))},
            headers=api_csrf(rev),
        )
        assert r.status_code == 201, r.text
        with service.state.factory() as s:
            analysis = s.get(JobRecord, r.json()["analysis_job"])
            assert analysis.kind == "analysis" and analysis.owner_id is None
            # Even while it waits in the queue, it is not the reviewer's job.
            analysis.status = "queued"
            s.commit()


def test_migration_moves_personal_extras_out_of_sight(tmp_path):
    """A database imported before 0003 keeps its 电话 column, now where nothing shows it."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from service.db import MIGRATIONS, make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, username, password_hash, role, active, created_at)"
                " VALUES (1, 'a', 'x', 'admin', 1, '2024-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO import_batches (id, file_name, sha256, rows, added, updated,"
                " unchanged, user_id, created_at) VALUES (1, 'f', 'x', 1, 1, 0, 0, 1, '2024-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO proposals (id, year, pid, title, content, co_units, extra, batch_id,"
                " created_at, updated_at) VALUES (1, 2024, 'A', 't', 'c', '[]',"
                ' \'{"联系电话": "13800000000", "备注": "重点"}\', 1, \'2024-01-01\', \'2024-01-01\')'
            )
        )
    upgrade(engine)
    with engine.connect() as conn:
        extra, personal = conn.execute(text("SELECT extra, personal FROM proposals")).one()
    engine.dispose()
    assert json.loads(extra) == {"备注": "重点"}
    assert json.loads(personal) == {"联系电话": "13800000000"}


def test_live_workers_sweep_a_killed_workers_jobs_while_running(factory):
    """The heartbeat also reports other workers' dead jobs: not only at start-up."""
    from service.jobs import INTERRUPTED, JobRunner
    from service.models import JobRecord, utcnow

    runner = JobRunner(factory, background=False)
    runner.start()  # nothing to recover yet
    with factory() as s, s.begin():
        # A sibling worker (same machine) killed after this runner started.
        s.add(
            JobRecord(
                kind="import",
                status="running",
                worker=f"{runner.host}:{_dead_pid()}:ab",
                heartbeat_at=utcnow(),
            )
        )
        s.add(JobRecord(kind="import", status="running", worker=runner.worker))
    runner.beat_once()
    with factory() as s:
        rows = {r.worker == runner.worker: r for r in s.scalars(select(JobRecord))}
    assert rows[False].status == "interrupted"
    assert rows[False].message == INTERRUPTED["import"]
    assert rows[True].status == "running"  # this worker's own job is alive
