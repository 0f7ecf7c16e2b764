"""Load test of the reviewer service on loopback: suggest requests while imports run.

Starts ``uvicorn service.app:create_app`` as its own process on a fresh SQLite database, then
for ``--duration`` seconds runs ``--clients`` threads that each send ``POST /api/suggest``
back to back (texts from the demo proposals), while one more thread keeps importing new
proposal files (``POST /api/imports``) and recording a reviewer decision on each imported
proposal. Afterwards it stops the service and opens the database to check that every import
and decision that was answered as accepted is stored (nothing lost).

    .venv/bin/python benchmarks/service_load.py --duration 60 --clients 8

Prints one JSON object: suggest latency (median, p99, ms), throughput, errors, imports and
decisions accepted and found. Exit status 1 when any request failed or anything was lost.
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


def _prepare_db(data_dir: Path) -> str:
    """Schema plus a reviewer with a bearer token (made before the server starts)."""
    from service.auth import create_token, create_user
    from service.db import make_engine, make_session_factory, upgrade

    engine = make_engine(f"sqlite:///{data_dir / 'tian.db'}")
    upgrade(engine)
    with make_session_factory(engine)() as s, s.begin():
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


def run(
    *,
    duration: float,
    clients: int,
    model: Path,
    data: Path,
    encoder: str,
    import_rows: int,
    year: int = 2030,
) -> dict[str, Any]:
    """Run the load test; returns the figures and the nothing-lost check."""
    import httpx

    texts = _texts(data)
    with tempfile.TemporaryDirectory(prefix="tian-load-") as tmp:
        data_dir = Path(tmp) / "var"
        data_dir.mkdir()
        token = _prepare_db(data_dir)
        port = _free_port()
        env = {
            **os.environ,
            "TIAN_DATA_DIR": str(data_dir),
            "TIAN_MODEL_DIR": str(model),
            "TIAN_ENCODER": encoder,
            "TIAN_ENVIRONMENT": "development",
        }
        env.pop("TIAN_DB_URL", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory"]
            + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env,
            cwd=ROOT,
        )
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
                                errors.append(err)
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
                                errors.append(f"import {r.status_code}: {r.text[:200]}")
                                continue
                            imports.append(r.json())
                            for i in range(import_rows):
                                d = c.post(
                                    f"/api/proposals/{year}/L{batch:04d}-{i:03d}/decisions",
                                    json={"action": "set", "field": "category", "value": "测试类"},
                                )
                                if d.status_code != 201:
                                    errors.append(f"decision {d.status_code}: {d.text[:200]}")
                                else:
                                    decisions.extend(x["id"] for x in d.json()["decisions"])
                        except httpx.HTTPError as exc:
                            errors.append(f"import: {type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=suggest_client, args=(i,)) for i in range(clients)]
            threads.append(threading.Thread(target=importer))
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stored = _check_stored(data_dir, year, imports, decisions)

    lat_ms = sorted(x * 1000 for x in latencies)
    p99 = lat_ms[min(len(lat_ms) - 1, int(round(0.99 * (len(lat_ms) - 1))))] if lat_ms else None
    return {
        "duration_s": round(elapsed, 1),
        "clients": clients,
        "suggest_requests": len(lat_ms),
        "suggest_median_ms": round(statistics.median(lat_ms), 1) if lat_ms else None,
        "suggest_p99_ms": round(p99, 1) if p99 is not None else None,
        "suggest_per_s": round(len(lat_ms) / elapsed, 1),
        "errors": len(errors),
        "error_samples": errors[:5],
        "imports_accepted": len(imports),
        "rows_imported": sum(i["added"] for i in imports),
        "decisions_accepted": len(decisions),
        **stored,
        "encoder": encoder,
        "model": str(model),
    }


def _check_stored(
    data_dir: Path, year: int, imports: list[dict[str, Any]], decisions: list[int]
) -> dict[str, Any]:
    """Every accepted import's rows and every accepted decision are in the database."""
    from sqlalchemy import func, select

    from service.db import make_engine, make_session_factory
    from service.models import Decision, ImportBatch, Proposal

    engine = make_engine(f"sqlite:///{data_dir / 'tian.db'}")
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
    args = parser.parse_args(argv)
    if not (args.model / "manifest.json").is_file():
        parser.error(f"--model {args.model}: not a model bundle (run `make run` first)")
    result = run(
        duration=args.duration,
        clients=args.clients,
        model=args.model,
        data=args.data,
        encoder=args.encoder,
        import_rows=args.import_rows,
    )
    text = json.dumps(result, ensure_ascii=False, indent=2)
    print(text)  # noqa: T201
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if result["errors"] == 0 and result["nothing_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
