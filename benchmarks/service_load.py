"""Load test of the reviewer service on loopback: suggest requests while imports run.

Starts ``uvicorn service.app:create_app`` as its own process on a fresh SQLite database, then
for ``--duration`` seconds runs ``--clients`` threads that each send ``POST /api/suggest``
back to back (texts from the demo proposals), while one more thread keeps importing new
proposal files (``POST /api/imports``) and recording a reviewer decision on each imported
proposal. Afterwards it stops the service and opens the database to check that every import
and decision that was answered as accepted is stored (nothing lost).

    .venv/bin/python benchmarks/service_load.py --duration 60 --clients 8

Several workers on PostgreSQL (``tian serve --workers N``), on a given empty database or on
a throwaway cluster (``--pg-throwaway``, the tests' ``tests/pg_cluster.py``), optionally
killing (SIGKILL) the worker that runs a large extra import ``S`` seconds in:

    .venv/bin/python benchmarks/service_load.py --pg-throwaway --workers 2 --kill-worker-after 20

Prints one JSON object: suggest latency (median, p99, ms), throughput, errors, imports and
decisions accepted and found, and with a kill the killed job's outcome and whether any of its
rows stayed. Requests that were in flight on the killed worker fail at the TCP level: they
are counted apart (``errors_on_killed_worker``), not hidden. Exit status 1 when any other
request failed or anything was lost.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _texts(path: Path, limit: int = 200) -> list[str]:
    with path.open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    return [f"{r.get('案由', '')}\n{r.get('提案内容', '')}" for r in rows[:limit]] or ["关于建议"]


def _prepare_db(url: str) -> str:
    """Schema plus a reviewer with a bearer token (made before the server starts)."""
    from sqlalchemy import func, select

    from service.auth import create_token, create_user
    from service.db import make_engine, make_session_factory, upgrade
    from service.models import Proposal

    engine = make_engine(url)
    upgrade(engine)
    with make_session_factory(engine)() as s, s.begin():
        if s.scalar(select(func.count()).select_from(Proposal)):
            raise SystemExit("the load test needs an empty database (it counts what it stored)")
        token = create_token(s, create_user(s, "loadtest", "Bench-runner-passphrase-1", "reviewer"))
    engine.dispose()
    return token


def _import_file(batch: int, rows: int, texts: list[str], year: int) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["提案号", "年度", "案由", "提案内容"])
    rng = random.Random(batch)
    for i in range(rows):
        body = rng.choice(texts).replace("\n", " ")
        w.writerow([f"L{batch:04d}-{i:03d}", year, f"关于第{batch}批第{i}件事项的建议", body])
    return out.getvalue().encode("utf-8")


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the service exited while starting")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the service did not become ready")


def _start(
    data_dir: Path, db_url: str | None, workers: int, model: Path, encoder: str, port: int
) -> subprocess.Popen[bytes]:
    """One uvicorn process on SQLite, or ``tian serve --workers N`` on ``db_url``."""
    env = {
        **os.environ,
        "TIAN_DATA_DIR": str(data_dir),
        "TIAN_MODEL_DIR": str(model),
        "TIAN_ENCODER": encoder,
        "TIAN_ENVIRONMENT": "development",
    }
    env.pop("TIAN_DB_URL", None)
    if db_url is None:
        cmd = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    else:
        code = "import sys; from tian.cli import main; sys.exit(main(sys.argv[1:]))"
        cmd = [sys.executable, "-c", code, "serve", "--db", db_url, "--workers", str(workers)]
        cmd += ["--port", str(port), "--data-dir", str(data_dir)]
    # Its own process group, so that stopping it stops every worker.
    return subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _kill_mid_import(
    base: str, auth: dict[str, str], db_url: str, year: int, rows: int
) -> dict[str, Any]:
    """Start a large import, SIGKILL the worker running it mid-write, wait for the outcome."""
    import signal

    import httpx
    from sqlalchemy import create_engine, text

    body = "关于加强河湖生态环境保护和流域治理工作的建议，推进污染防治与水土保持。" * 6
    lines = ["提案号,年度,案由,提案内容"]
    lines += [f"V-{i:06d},{year},关于第{i}件事项的建议,{body}{i}" for i in range(rows)]
    engine = create_engine(db_url)
    out: dict[str, Any] = {"killed": False}
    try:
        r = httpx.post(
            f"{base}/api/imports",
            headers=auth,
            files={"file": ("victim.csv", ("\n".join(lines) + "\n").encode(), "text/csv")},
            data={"wait": "false"},
            timeout=120,
        )
        r.raise_for_status()
        job_url, job_id = base + r.json()["status_url"], r.json()["job"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not out["killed"]:
            job = httpx.get(job_url, headers=auth, timeout=30).json()
            if job["status"] not in ("queued", "running"):
                out["note"] = f"import ended before the kill: {job['status']}"
                break
            if job["message"] == "正在写入" and 0 < job["done"] < job["total"]:
                with engine.connect() as conn:
                    worker = conn.execute(
                        text("SELECT worker FROM jobs WHERE id = :i"), {"i": job_id}
                    ).scalar_one()
                os.kill(int(worker.split(":")[1]), signal.SIGKILL)
                out.update(killed=True, killed_at=f"{job['done']}/{job['total']}")
                out["kill_time"] = time.monotonic()
            time.sleep(0.05)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            try:
                job = httpx.get(job_url, headers=auth, timeout=30).json()
            except httpx.HTTPError:
                job = {"status": "running"}  # the request met the dying worker: ask again
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        out["job_status"], out["job_message"] = job["status"], job.get("message")
        out["outcome_after_s"] = round(time.monotonic() - t0, 1)
        with engine.connect() as conn:
            out["rows_left"] = conn.execute(
                text("SELECT count(*) FROM proposals WHERE year = :y"), {"y": year}
            ).scalar_one()
    finally:
        engine.dispose()
    return out


def run(
    *,
    duration: float,
    clients: int,
    model: Path,
    data: Path,
    encoder: str,
    import_rows: int,
    year: int = 2030,
    db_url: str | None = None,
    workers: int = 1,
    kill_after: float | None = None,
) -> dict[str, Any]:
    """Run the load test; returns the figures and the nothing-lost check."""
    import httpx

    texts = _texts(data)
    with tempfile.TemporaryDirectory(prefix="tian-load-") as tmp:
        data_dir = Path(tmp) / "var"
        data_dir.mkdir()
        url = db_url or f"sqlite:///{data_dir / 'tian.db'}"
        token = _prepare_db(url)
        port = _free_port()
        proc = _start(data_dir, db_url, workers, model, encoder, port)
        killer: dict[str, Any] = {}
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {token}"}
        latencies: list[float] = []
        errors: list[str] = []
        imports: list[dict[str, Any]] = []
        decisions: list[int] = []
        lock = threading.Lock()
        try:
            _wait_ready(base, proc)
            stop = time.monotonic() + duration

            def suggest_client(seed: int) -> None:
                rng = random.Random(seed)
                with httpx.Client(base_url=base, headers=auth, timeout=60) as c:
                    while time.monotonic() < stop:
                        t0 = time.perf_counter()
                        try:
                            r = c.post("/api/suggest", json={"text": rng.choice(texts)})
                            ok = r.status_code == 200 and bool(r.json().get("category"))
                            err = None if ok else f"suggest {r.status_code}: {r.text[:200]}"
                        except httpx.HTTPError as exc:
                            err = f"suggest: {type(exc).__name__}: {exc}"
                        dt = time.perf_counter() - t0
                        with lock:
                            if err:
                                errors.append((time.monotonic(), err))
                            else:
                                latencies.append(dt)

            def importer() -> None:
                batch = 0
                with httpx.Client(base_url=base, headers=auth, timeout=120) as c:
                    while time.monotonic() < stop:
                        batch += 1
                        body = _import_file(batch, import_rows, texts, year)
                        try:
                            r = c.post(
                                "/api/imports",
                                files={"file": (f"load-{batch}.csv", body, "text/csv")},
                            )
                            if r.status_code != 201:
                                errors.append((time.monotonic(), f"import {r.status_code}"))
                                continue
                            imports.append(r.json())
                            for i in range(import_rows):
                                d = c.post(
                                    f"/api/proposals/{year}/L{batch:04d}-{i:03d}/decisions",
                                    json={"action": "set", "field": "category", "value": "测试类"},
                                )
                                if d.status_code != 201:
                                    errors.append((time.monotonic(), f"decision {d.status_code}"))
                                else:
                                    decisions.extend(x["id"] for x in d.json()["decisions"])
                        except httpx.HTTPError as exc:
                            errors.append((time.monotonic(), f"import: {type(exc).__name__}"))

            def kill_one() -> None:
                if time.monotonic() + kill_after < stop:
                    time.sleep(kill_after)
                    killer.update(_kill_mid_import(base, auth, url, year + 1, 12000))

            threads = [threading.Thread(target=suggest_client, args=(i,)) for i in range(clients)]
            threads.append(threading.Thread(target=importer))
            if kill_after is not None and db_url is not None:
                threads.append(threading.Thread(target=kill_one))
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
        finally:
            _stop(proc)
        stored = _check_stored(url, year, imports, decisions)

    # Requests in flight on the killed worker die with its connections (a TCP reset):
    # counted apart, within the two seconds after the kill.
    kill_time = killer.pop("kill_time", None)
    on_killed = [
        e for t, e in errors if kill_time is not None and 0 <= t - kill_time < 2 and ":" in e
    ]
    others = [e for t, e in errors if e not in on_killed]

    lat_ms = sorted(x * 1000 for x in latencies)
    p99 = lat_ms[min(len(lat_ms) - 1, int(round(0.99 * (len(lat_ms) - 1))))] if lat_ms else None
    return {
        "duration_s": round(elapsed, 1),
        "clients": clients,
        "suggest_requests": len(lat_ms),
        "suggest_median_ms": round(statistics.median(lat_ms), 1) if lat_ms else None,
        "suggest_p99_ms": round(p99, 1) if p99 is not None else None,
        "suggest_per_s": round(len(lat_ms) / elapsed, 1),
        "errors": len(others),
        "error_samples": others[:5],
        "errors_on_killed_worker": len(on_killed),
        "workers": workers,
        "database": "sqlite" if db_url is None else "postgresql",
        **({"kill": killer} if kill_after is not None else {}),
        "imports_accepted": len(imports),
        "rows_imported": sum(i["added"] for i in imports),
        "decisions_accepted": len(decisions),
        **stored,
        "encoder": encoder,
        "model": str(model),
    }


def _check_stored(
    url: str, year: int, imports: list[dict[str, Any]], decisions: list[int]
) -> dict[str, Any]:
    """Every accepted import's rows and every accepted decision are in the database."""
    from sqlalchemy import func, select

    from service.db import make_engine, make_session_factory
    from service.models import Decision, ImportBatch, Proposal

    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        rows = s.scalar(select(func.count()).select_from(Proposal).where(Proposal.year == year))
        batch_ids = [i["batch_id"] for i in imports]
        batches = s.scalar(
            select(func.count()).select_from(ImportBatch).where(ImportBatch.id.in_(batch_ids))
        )
        found = 0
        for start in range(0, len(decisions), 500):
            part = decisions[start : start + 500]
            found += (
                s.scalar(select(func.count()).select_from(Decision).where(Decision.id.in_(part)))
                or 0
            )
    engine.dispose()
    expected_rows = sum(i["added"] for i in imports)
    return {
        "rows_found": int(rows or 0),
        "batches_found": int(batches or 0),
        "decisions_found": int(found),
        "nothing_lost": rows == expected_rows
        and batches == len(imports)
        and found == len(decisions),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=8, help="concurrent suggest clients")
    parser.add_argument("--model", type=Path, default=ROOT / "runs/demo/baseline")
    parser.add_argument("--data", type=Path, default=ROOT / "data/demo/proposals.csv")
    parser.add_argument(
        "--encoder",
        default="none",
        help="service text encoder: none (default; imports then only suggest) or e5-small",
    )
    parser.add_argument("--import-rows", type=int, default=20, help="rows per imported file")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--db", metavar="URL", help="an empty PostgreSQL database to serve from")
    parser.add_argument(
        "--pg-throwaway",
        action="store_true",
        help="start a throwaway PostgreSQL cluster for the run (needs its server binaries)",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (PostgreSQL)")
    parser.add_argument(
        "--kill-worker-after",
        type=float,
        metavar="S",
        help="S seconds in, SIGKILL the worker running a large extra import (PostgreSQL)",
    )
    args = parser.parse_args(argv)
    if not (args.model / "manifest.json").is_file():
        parser.error(f"--model {args.model}: not a model bundle (run `make run` first)")
    stop_pg = None
    db_url = args.db
    if args.pg_throwaway:
        sys.path.insert(0, str(ROOT / "tests"))
        import pg_cluster

        started = pg_cluster.start()
        if started is None:
            parser.error("--pg-throwaway: no PostgreSQL server binaries (or no postgres user)")
        db_url, stop_pg = started
    if (args.workers > 1 or args.kill_worker_after is not None) and db_url is None:
        parser.error("--workers > 1 and --kill-worker-after need --db URL or --pg-throwaway")
    try:
        result = run(
            duration=args.duration,
            clients=args.clients,
            model=args.model,
            data=args.data,
            encoder=args.encoder,
            import_rows=args.import_rows,
            db_url=db_url,
            workers=args.workers,
            kill_after=args.kill_worker_after,
        )
    finally:
        if stop_pg is not None:
            stop_pg()
    text = json.dumps(result, ensure_ascii=False, indent=2)
    print(text)  # noqa: T201
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if result["errors"] == 0 and result["nothing_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
