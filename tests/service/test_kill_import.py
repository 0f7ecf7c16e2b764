"""SIGKILL the service in the middle of a large import: the database holds all of it or none.

The service runs as a real uvicorn process on SQLite in a temporary folder; the test waits
until the import job reports that it is writing rows, kills the process without warning, then
opens the database afresh. After a restart the job is reported as interrupted (never 404)
and the upload the dead process left behind is gone.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from service_helpers import PASSWORD, free_port, wait_until_healthy

ROWS = 12000


def _big_csv(path: Path, rows: int) -> None:
    body = "关于加强河湖生态环境保护和流域治理工作的建议，推进污染防治与水土保持。" * 6
    with path.open("w", encoding="utf-8") as f:
        f.write("提案号,年度,案由,提案内容\n")
        for i in range(rows):
            f.write(f"K-{i:06d},2024,关于第{i}件事项的建议,{body}{i}\n")


def _prepare_db(data_dir: Path) -> str:
    """Create the schema and a reviewer with a token before the server starts."""
    from service.auth import create_token, create_user
    from service.db import make_engine, make_session_factory, upgrade

    engine = make_engine(f"sqlite:///{data_dir / 'tian.db'}")
    upgrade(engine)
    with make_session_factory(engine)() as s, s.begin():
        token = create_token(s, create_user(s, "rev", PASSWORD, "reviewer"))
    engine.dispose()
    return token


def _counts(data_dir: Path) -> tuple[int, int]:
    from sqlalchemy import func, select

    from service.db import make_engine, make_session_factory
    from service.models import ImportBatch, Proposal

    engine = make_engine(f"sqlite:///{data_dir / 'tian.db'}")
    with make_session_factory(engine)() as s:
        n = s.scalar(select(func.count()).select_from(Proposal)) or 0
        b = s.scalar(select(func.count()).select_from(ImportBatch)) or 0
    engine.dispose()
    return int(n), int(b)


def _serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start uvicorn on ``data_dir`` and wait until /healthz answers."""
    port = free_port()
    env = {
        **os.environ,
        "TIAN_DATA_DIR": str(data_dir),
        "TIAN_ENCODER": "none",
        "TIAN_ENVIRONMENT": "development",
    }
    env.pop("TIAN_DB_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory"]
        + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_healthy(proc, base, lambda p: p.kill())
    return proc, base


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def test_sigkill_mid_import_leaves_all_or_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    token = _prepare_db(data_dir)
    upload = tmp_path / "big.csv"
    _big_csv(upload, ROWS)
    proc, base = _serve(data_dir)
    auth = {"Authorization": f"Bearer {token}"}
    killed_at: dict[str, object] = {}
    try:
        with upload.open("rb") as f:
            r = httpx.post(
                f"{base}/api/imports",
                headers=auth,
                files={"file": ("big.csv", f, "text/csv")},
                data={"wait": "false"},
                timeout=60,
            )
        assert r.status_code == 202, r.text
        job_url = base + r.json()["status_url"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = httpx.get(job_url, headers=auth, timeout=5).json()
            if job["message"] == "正在写入" and 0 < job["done"] < job["total"]:
                proc.send_signal(signal.SIGKILL)
                killed_at = job
                break
            assert job["status"] not in ("done", "failed"), f"import ended before the kill: {job}"
            time.sleep(0.02)
        assert killed_at, "never saw the import writing rows"
        proc.wait(timeout=10)
    finally:
        _stop(proc)

    proposals, batches = _counts(data_dir)
    # The kill came after some rows were flushed inside the transaction; none may survive.
    assert (proposals, batches) in ((0, 0), (ROWS, 1)), (proposals, batches, killed_at)
    assert proposals == 0, f"killed at {killed_at['done']}/{killed_at['total']} yet rows stayed"
    left = list((data_dir / "uploads").iterdir())
    assert left, "the dead process should have left its upload behind"

    # A restart reports the job as interrupted and removes the upload.
    proc, base = _serve(data_dir)
    try:
        r = httpx.get(job_url.replace(job_url.split("/api/")[0], base), headers=auth, timeout=5)
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["status"] == "interrupted" and "重新上传" in job["message"], job
        assert not list((data_dir / "uploads").iterdir())
    finally:
        _stop(proc)
    # The database and the data folder are private.
    assert stat.S_IMODE((data_dir / "tian.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


@pytest.mark.parametrize("rows", [3])
def test_import_after_a_kill_succeeds(tmp_path: Path, rows: int) -> None:
    """The database left by a killed writer opens and imports normally (no stale lock)."""
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    _prepare_db(data_dir)
    code = (
        "import os, sqlite3, sys\n"
        f"c = sqlite3.connect({str(data_dir / 'tian.db')!r})\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        'c.execute("INSERT INTO users (username, password_hash, role, active, created_at)'
        " VALUES ('x', 'x', 'viewer', 1, '2024-01-01')\")\n"
        "sys.stdout.write('locked\\n'); sys.stdout.flush()\n"
        "os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "locked" in done.stdout and done.returncode == -signal.SIGKILL
    from service.db import make_engine, make_session_factory
    from service.importer import import_file

    csv = tmp_path / "p.csv"
    _big_csv(csv, rows)
    engine = make_engine(f"sqlite:///{data_dir / 'tian.db'}")
    result = import_file(make_session_factory(engine), csv, file_name="p.csv", user_id=1)
    engine.dispose()
    assert result.added == rows
    assert _counts(data_dir) == (rows, 1)
