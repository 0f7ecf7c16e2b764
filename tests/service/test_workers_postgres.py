"""`tian serve --workers 2` on PostgreSQL: kill -9 the worker running an import, lose nothing.

The service runs as a real subprocess (the CLI, two uvicorn workers). The test waits until
the import is writing rows, kills the worker whose process id the job row names, then asks
the API (answered by the surviving or the restarted worker) for the job: it is reported
``interrupted`` with its message, no row of the file was stored, and the service still
imports. Skipped without PostgreSQL, like the other PostgreSQL tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import PASSWORD, free_port, wait_until_healthy

pytestmark = pytest.mark.postgres
ROWS = 12000
BODY = "关于加强河湖生态环境保护和流域治理工作的建议，推进污染防治与水土保持。" * 6


def _csv(rows: int, prefix: str) -> bytes:
    lines = ["提案号,年度,案由,提案内容"]
    lines += [f"{prefix}-{i:06d},2024,关于第{i}件事项的建议,{BODY}{i}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The test server's URL on a freshly emptied, migrated schema."""
    from sqlalchemy import create_engine, text

    url = os.environ.get("TIAN_TEST_PG_URL")
    if not url:
        pytest.skip("TIAN_TEST_PG_URL is not set and no PostgreSQL binaries were found")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    yield url


def _token(url: str) -> str:
    from service.auth import create_token, create_user
    from service.db import make_engine, make_session_factory, upgrade

    engine = make_engine(url)
    upgrade(engine)
    with make_session_factory(engine)() as s, s.begin():
        token = create_token(s, create_user(s, "rev", PASSWORD, "reviewer"))
    engine.dispose()
    return token


def _query(url: str, sql: str, **params: object) -> list[tuple]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql), params)]
    engine.dispose()
    return rows


def _serve(url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "TIAN_ENCODER": "none", "TIAN_ENVIRONMENT": "development"}
    env.pop("TIAN_DB_URL", None)
    code = "import sys; from tian.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--db", url, "--workers", "2"]
        + ["--data-dir", str(data_dir), "--port", str(port)],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,  # one process group: the test stops parent and workers
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_healthy(proc, base, _stop)
    return proc, base


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _wait_job(base: str, job_url: str, auth: dict[str, str], until: float) -> dict:
    while True:
        job = httpx.get(base + job_url, headers=auth, timeout=10).json()
        if job["status"] not in ("queued", "running") or time.monotonic() > until:
            return job
        time.sleep(0.2)


def test_kill_9_of_the_importing_worker_loses_nothing(pg_url: str, tmp_path: Path) -> None:
    token = _token(pg_url)
    auth = {"Authorization": f"Bearer {token}"}
    proc, base = _serve(pg_url, tmp_path / "var")
    try:
        r = httpx.post(
            f"{base}/api/imports",
            headers=auth,
            files={"file": ("big.csv", _csv(ROWS, "K"), "text/csv")},
            data={"wait": "false"},
            timeout=60,
        )
        assert r.status_code == 202, r.text
        job_url, job_id = r.json()["status_url"], r.json()["job"]
        killed = None
        deadline = time.monotonic() + 90
        while killed is None and time.monotonic() < deadline:
            job = httpx.get(base + job_url, headers=auth, timeout=10).json()
            assert job["status"] in ("queued", "running"), f"ended before the kill: {job}"
            if job["message"] == "正在写入" and 0 < job["done"] < job["total"]:
                [(worker,)] = _query(pg_url, "SELECT worker FROM jobs WHERE id = :i", i=job_id)
                pid = int(worker.split(":")[1])
                assert pid != proc.pid  # a worker process, not the parent
                os.kill(pid, signal.SIGKILL)
                killed = job
            time.sleep(0.05)
        assert killed is not None, "never saw the import writing rows"

        # The surviving worker (or the one uvicorn restarts) reports the outcome.
        job = _wait_job(base, job_url, auth, time.monotonic() + 30)
        assert job["status"] == "interrupted", job
        assert "重新上传" in job["message"], job
        [(stored,)] = _query(pg_url, "SELECT count(*) FROM proposals")
        [(batches,)] = _query(pg_url, "SELECT count(*) FROM import_batches")
        assert (stored, batches) == (0, 0), f"killed at {killed['done']}/{killed['total']}"

        # The service still answers and imports.
        assert all(httpx.get(f"{base}/healthz", timeout=5).status_code == 200 for _ in range(6))
        r = httpx.post(
            f"{base}/api/imports",
            headers=auth,
            files={"file": ("small.csv", _csv(3, "S"), "text/csv")},
            data={"wait": "false"},
            timeout=60,
        )
        assert r.status_code == 202, r.text
        job = _wait_job(base, r.json()["status_url"], auth, time.monotonic() + 30)
        assert job["status"] == "done", job
        assert _query(pg_url, "SELECT count(*) FROM proposals") == [(3,)]
    finally:
        _stop(proc)
