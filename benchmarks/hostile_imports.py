"""Replay the hostile-import cases of the service's security review against a real server on loopback.

Starts ``uvicorn service.app:create_app`` on a fresh SQLite database (or ``--db URL``, e.g. a
throw-away PostgreSQL database: its schema is dropped first), then posts: a 1.5 MB workbook
expanding to 1 GB of empty rows, a 310 KB one expanding to 100 MB, a 2,000-character id, ids
that break a page address, a 提案人姓名 column, more jobs than one user may queue, and a
``kill -9`` in the middle of a large import followed by a restart. While it runs, a thread
asks ``/healthz`` every 0.1 s and samples the server's memory.

Prints one line per case (held / FAILED) and the figures: idle and peak resident memory of
the server process, peak of the parsing child processes, and the slowest ``/healthz``.
Exit status 1 when any case failed.

    .venv/bin/python benchmarks/hostile_imports.py [--db URL]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
NAME = "孙保密"
PHONE = "13700001111"
results: list[tuple[str, bool, str]] = []


def case(name: str, ok: bool, detail: str = "") -> None:
    results.append((name, ok, detail))
    print(f"{'held  ' if ok else 'FAILED'} {name}{': ' + detail if detail else ''}", flush=True)  # noqa: T201


def bomb(path: Path, megabytes: int, row: bytes = b"<row/>") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
            fh.write(b"<worksheet><sheetData>")
            chunk = row * 65536
            for _ in range(megabytes * 1024 * 1024 // len(chunk)):
                fh.write(chunk)
            fh.write(b"</sheetData></worksheet>")
    return path


def wide_bomb(path: Path, megabytes: int) -> Path:
    """Rows of many empty cells: compresses less than empty rows (the 'wider variant')."""
    cells = b"".join(b'<c r="%s1"/>' % c.encode() for c in ("A", "B", "C", "D", "E", "F"))
    return bomb(path, megabytes, b"<row>" + cells + b"</row>")


def big_csv(path: Path, rows: int) -> Path:
    body = "关于加强河湖生态环境保护和流域治理工作的建议，推进污染防治与水土保持。" * 6
    with path.open("w", encoding="utf-8") as fh:
        fh.write("提案号,年度,案由,提案内容\n")
        for i in range(rows):
            fh.write(f"K-{i:06d},2024,关于第{i}件事项的建议,{body}{i}\n")
    return path


class Server:
    """One uvicorn process with its log in a file."""

    def __init__(self, data_dir: Path, db_url: str | None) -> None:
        self.data_dir, self.db_url = data_dir, db_url
        self.log = data_dir.parent / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self) -> None:
        sock = __import__("socket").socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        env = {**os.environ, "TIAN_DATA_DIR": str(self.data_dir), "TIAN_ENCODER": "none"}
        env["TIAN_ENVIRONMENT"] = "development"
        env.pop("TIAN_DB_URL", None)
        if self.db_url:
            env["TIAN_DB_URL"] = self.db_url
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory"]
            + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "info"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("the server did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


class Watch(threading.Thread):
    """Samples /healthz latency and the memory of the server and its children."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.stop = threading.Event()
        self.slowest = 0.0
        self.failures = 0
        self.peak = 0
        self.child_peak = 0

    def run(self) -> None:
        while not self.stop.is_set():
            proc = self.server.proc
            try:
                p = psutil.Process(proc.pid) if proc else None
                if p is not None:
                    self.peak = max(self.peak, p.memory_info().rss)
                    kids = sum(c.memory_info().rss for c in p.children(recursive=True))
                    self.child_peak = max(self.child_peak, kids)
            except psutil.Error:
                pass
            started = time.perf_counter()
            try:
                ok = httpx.get(f"{self.server.base}/healthz", timeout=5).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                self.slowest = max(self.slowest, time.perf_counter() - started)
            else:
                self.failures += 1
            time.sleep(0.1)


def prepare(data_dir: Path, db_url: str | None) -> tuple[str, str, str]:
    """Schema and three users with tokens: reviewer, second reviewer, viewer."""
    from service.auth import create_token, create_user
    from service.db import make_engine, make_session_factory, upgrade

    url = db_url or f"sqlite:///{data_dir / 'tian.db'}"
    engine = make_engine(url)
    if db_url:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    upgrade(engine)
    password = "correct-horse-battery-staple"
    with make_session_factory(engine)() as s, s.begin():
        tokens = tuple(
            create_token(s, create_user(s, name, password, role))
            for name, role in (("rev", "reviewer"), ("rev2", "reviewer"), ("view", "viewer"))
        )
    engine.dispose()
    return tokens  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="database URL (default: SQLite in a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and log")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tian-hostile-"))
    data_dir = work / "var"
    data_dir.mkdir()
    rev, rev2, view = ({"Authorization": f"Bearer {t}"} for t in prepare(data_dir, args.db))
    server = Server(data_dir, args.db)
    server.start()
    time.sleep(1.0)
    idle = psutil.Process(server.proc.pid).memory_info().rss  # type: ignore[union-attr]
    watch = Watch(server)
    watch.start()
    post = lambda name, data, headers=rev, **form: httpx.post(  # noqa: E731
        f"{server.base}/api/imports",
        headers=headers,
        files={"file": (name, data)},
        data=form,
        timeout=300,
    )

    data = bomb(work / "bomb.xlsx", 1024).read_bytes()
    started = time.perf_counter()
    r = post("bomb.xlsx", data)
    took = time.perf_counter() - started
    size = (work / "bomb.xlsx").stat().st_size / 1e6
    case(
        f"11.1 {size:.1f} MB workbook expanding to 1 GB of empty rows",
        r.status_code == 422 and took < 10,
        f"{r.status_code} in {took:.2f} s",
    )
    data = wide_bomb(work / "wide.xlsx", 100).read_bytes()
    started = time.perf_counter()
    r = post("wide.xlsx", data)
    took = time.perf_counter() - started
    size = (work / "wide.xlsx").stat().st_size / 1e3
    case(
        f"11.1 {size:.0f} KB workbook expanding to 100 MB",
        r.status_code == 422 and took < 10,
        f"{r.status_code} in {took:.2f} s",
    )

    long_id = ("提案号,年度,案由,提案人\n" + "X" * 2000 + f",2024,关于甲的建议,{NAME}\n").encode()
    r = post("long.csv", long_id)
    job = httpx.get(f"{server.base}/api/jobs/{r.json().get('job')}", headers=view).json()
    case(
        "11.2 2,000-character id: clean 422, nothing about the proposer",
        r.status_code == 422 and NAME not in r.text and NAME not in str(job),
        f"{r.status_code}",
    )

    bad_ids = "提案号,年度,案由\n2024/001,2024,甲\na?b,2024,乙\nc#d,2024,丙\n..,2024,丁\n".encode()
    r = post("ids.csv", bad_ids)
    case("11.10 ids with / ? # ..", r.status_code == 422 and len(r.json()["errors"]) == 4)

    personal = (
        "提案号,年度,案由,提案内容,提案人姓名,联系电话\n"
        f"P-1,2024,关于加强养老服务的建议,养老,{NAME},{PHONE}\n"
    ).encode()
    r = post("personal.csv", personal)
    item = httpx.get(f"{server.base}/api/proposals/2024/P-1", headers=view)
    case(
        "11.7 提案人姓名 / 电话 columns hidden from viewers",
        r.status_code == 201
        and item.status_code == 200
        and NAME not in item.text
        and PHONE not in item.text,
    )

    big = big_csv(work / "big.csv", 12000).read_bytes()
    answers = [post(f"q{i}.csv", big, headers=rev2, wait="false") for i in range(5)]
    codes = [a.status_code for a in answers]
    case("11.10 job queue bounded per user", 429 in codes and codes[0] == 202, str(codes))

    r = post("kill.csv", big.replace(b"K-", b"M-"), wait="false")
    job_url = f"{server.base}/api/jobs/{r.json()['job']}"
    deadline = time.monotonic() + 120
    seen = {}
    while time.monotonic() < deadline:
        seen = httpx.get(job_url, headers=rev, timeout=5).json()
        if seen["message"] == "正在写入" and 0 < seen["done"] < seen["total"]:
            break
        time.sleep(0.02)
    watch.stop.set()
    watch.join()
    server.kill()
    server.start()
    job = httpx.get(job_url.replace(job_url.split("/api/")[0], server.base), headers=rev).json()
    kept = httpx.get(f"{server.base}/api/proposals/2024/M-000001", headers=rev).status_code
    left = list((data_dir / "uploads").iterdir()) if (data_dir / "uploads").exists() else []
    case(
        "11.9 kill -9 mid-import: job interrupted after restart, nothing half-imported",
        job.get("status") == "interrupted" and kept == 404 and not left,
        f"job {job.get('status')}, uploads left {len(left)}",
    )
    server.kill()
    if not args.db:
        db_mode = stat.S_IMODE((data_dir / "tian.db").stat().st_mode)
        dir_mode = stat.S_IMODE(data_dir.stat().st_mode)
        case(
            "11.10 private modes",
            db_mode == 0o600 and dir_mode == 0o700,
            f"db {db_mode:o}, folder {dir_mode:o}",
        )
    log_text = server.log.read_text(encoding="utf-8", errors="replace")
    case(
        "no personal data and no traceback for rejections in the log",
        NAME not in log_text and PHONE not in log_text and "Traceback" not in log_text,
    )
    mib = 1024 * 1024
    grew = (watch.peak - idle) / mib
    case("server memory within 300 MB of idle", grew < 300, f"+{grew:.0f} MiB")
    case("/healthz within 1 s throughout", watch.slowest < 1.0 and watch.failures == 0)
    print(  # noqa: T201
        f"\nserver RSS idle {idle / mib:.0f} MiB, peak {watch.peak / mib:.0f} MiB; "
        f"parsing children peak {watch.child_peak / mib:.0f} MiB; slowest /healthz "
        f"{watch.slowest * 1000:.0f} ms ({watch.failures} failed); database "
        f"{'PostgreSQL' if args.db else 'SQLite'}; {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.1f}"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"files kept in {work}")  # noqa: T201
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
