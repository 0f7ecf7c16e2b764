"""Replay every attack case of the service's security review against a real ``tian serve`` on loopback.

Starts ``tian serve`` (127.0.0.1, a free port, encoder off) on a fresh SQLite database in a
temporary folder, or, with ``--pg-url URL``, on that PostgreSQL database too (its ``public``
schema is dropped first: give it a throw-away database). For each database it replays cases
11.1 to 11.11, sub-point by sub-point, and prints one line per case: what was sent, what came
back, HELD or NOT HELD. Meanwhile one thread samples the resident memory of the server process
and its children from ``/proc`` and another asks ``/healthz`` every 0.1 s. At the end: idle
and peak memory (goal: peak within 300 MB of idle), the slowest ``/healthz`` (goal: under
1 s), and a final check that nothing was half-imported and that the planted personal data
(a 提案人 and a 提案人姓名 value) never appears in an answer to the viewer or in the log.

All traffic goes to 127.0.0.1; every loop is bounded and the server is stopped at the end.
Exit status 1 when a case is not held.

    .venv/bin/python benchmarks/security_replay.py [--pg-url postgresql+psycopg://...] [--keep]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import io
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests" / "service"), str(ROOT)]

from hostile_imports import big_csv, bomb, wide_bomb  # noqa: E402
from service_helpers import csrf_of  # noqa: E402

PROPOSER = "张三丰"  # planted in the 提案人 column
SECRETARY = "欧阳秘书"  # planted in a 提案人姓名 column (not a recognised header)
PHONE = "13700001111"
PERSONAL = (PROPOSER, SECRETARY, PHONE)
PASSWORD = "correct-horse-battery-staple"
NEW_PASSWORD = "Another-long-passphrase-9"
MIB = 1024 * 1024
FRESH = httpx.Limits(max_keepalive_connections=0)
CASE_TIMES: list[tuple[float, str]] = []  # when each case was reported (to place slow answers)
HEADER = "提案号,年度,案由,提案内容,提案人,类别,主办单位,协办单位\n"


class Report:
    """The per-case lines of one database run."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.rows: list[tuple[str, bool, str, str]] = []

    def case(self, name: str, ok: bool, sent: str, got: str) -> None:
        """Record and print one case: its name, what was sent, what came back, the verdict."""
        self.rows.append((name, ok, sent, got))
        CASE_TIMES.append((time.time(), name))
        verdict = "HELD    " if ok else "NOT HELD"
        print(f"[{self.db}] {verdict} {name} | sent: {sent} | got: {got}", flush=True)  # noqa: T201


# --- the server and what watches it ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_rss(pid: int) -> tuple[int, int]:
    """(RSS of ``pid``, RSS of all its descendants) in bytes, read from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces: fields after the last ')' are fixed.
        parents[int(entry)] = int(text.rsplit(")", 1)[1].split()[1])
    kids: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        found = [c for c, pp in parents.items() if pp == p]
        kids += found
        todo += found
    return _rss(pid), sum(_rss(k) for k in kids)


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Server:
    """One ``tian serve`` process with its log in a file."""

    def __init__(self, work: Path, db_url: str | None) -> None:
        self.work, self.db_url = work, db_url
        self.data_dir = work / "var"
        self.tmp = work / "tmp"  # the server's TMPDIR: where a multipart body would spill
        self.tmp.mkdir(exist_ok=True)
        self.log = work / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self) -> None:
        # The same port after a restart, so the /healthz poller keeps its address.
        port = int(self.base.rsplit(":", 1)[1]) if self.base else free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIAN_")}
        env |= {"TIAN_ENCODER": "none", "TIAN_ENVIRONMENT": "development", "TMPDIR": str(self.tmp)}
        tian = Path(sys.executable).parent / "tian"
        cmd = [str(tian) if tian.exists() else "tian", "serve", "--host", "127.0.0.1"]
        cmd += ["--port", str(port), "--data-dir", str(self.data_dir)]
        if self.db_url:
            cmd += ["--db", self.db_url]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, cwd=self.work, stdout=out, stderr=out)
        atexit.register(self.kill)  # the server never outlives the replay, even on an error
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"tian serve exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("tian serve did not answer /healthz within 120 s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _poll_health(base: str, stop: Any, paused: Any, out: Any) -> None:
    """In its own process (so the replay's own work never delays it): GET /healthz every
    0.1 s; sends (asks, failures, slowest, [(when, seconds, answered) of slow or failed])."""
    asks = failures = 0
    slowest = 0.0
    slow: list[tuple[float, float, bool]] = []
    with httpx.Client(timeout=5, limits=FRESH) as client:  # no stale connection after a restart
        while not stop.wait(0.1):
            if paused.is_set():
                continue
            when, started = time.time(), time.perf_counter()
            try:
                ok = client.get(f"{base}/healthz").status_code == 200
            except httpx.HTTPError:
                ok = False
            if paused.is_set():
                continue
            took = time.perf_counter() - started
            asks += 1
            if ok:
                slowest = max(slowest, took)
            else:
                failures += 1
            if not ok or took >= 1.0:
                slow.append((when, took, ok))
    out.send((asks, failures, slowest, slow))


class Watch:
    """Memory of the server tree every 0.05 s (a thread), /healthz every 0.1 s (a process)."""

    def __init__(self, server: Server) -> None:
        ctx = multiprocessing.get_context("fork")
        self.server = server
        self.stop = threading.Event()
        self._stop_poll, self.paused = ctx.Event(), ctx.Event()  # paused: server down on purpose
        self.peak = self.child_peak = self.tree_peak = 0
        self.slowest = 0.0
        self.asks = self.failures = 0
        self.slow: list[tuple[float, bool, str]] = []  # (seconds, answered, case before)
        self._recv, send = ctx.Pipe(duplex=False)
        self._poller = ctx.Process(
            target=_poll_health, args=(server.base, self._stop_poll, self.paused, send)
        )
        self._thread = threading.Thread(target=self._memory, daemon=True)

    def __enter__(self) -> Watch:
        self._poller.start()  # before any thread of ours exists: a clean fork
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.collect()

    def collect(self) -> None:
        """Stop both watchers and gather the /healthz figures (idempotent)."""
        if self.stop.is_set():
            return
        self.stop.set()
        self._stop_poll.set()
        self._thread.join(timeout=10)
        if self._recv.poll(30):
            self.asks, self.failures, self.slowest, slow = self._recv.recv()
            self.slow = [(took, ok, case_at(when)) for when, took, ok in slow]
        self._poller.join(timeout=10)
        if self._poller.is_alive():
            self._poller.kill()

    def _memory(self) -> None:
        while not self.stop.wait(0.05):
            proc = self.server.proc
            if proc is None or self.paused.is_set():
                continue
            own, kids = tree_rss(proc.pid)
            self.peak = max(self.peak, own)
            self.child_peak = max(self.child_peak, kids)
            self.tree_peak = max(self.tree_peak, own + kids)


def case_at(when: float) -> str:
    """The case reported last before ``when`` (a slow answer belongs to the case after it)."""
    before = [name for t, name in CASE_TIMES if t <= when]
    return before[-1] if before else "start"


# --- clients ----------------------------------------------------------------------------------


class Viewer:
    """Every answer the viewer gets is kept, to search for personal data at the end."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def keep(self, r: httpx.Response) -> None:
        r.read()
        body = r.content
        if body[:2] == b"PK":  # an XLSX: search the XML parts
            with zipfile.ZipFile(io.BytesIO(body)) as zf:
                body = b"".join(zf.read(n) for n in zf.namelist() if n.endswith(".xml"))
        self.seen.append((str(r.request.url), body.decode("utf-8", "replace")))


def signed_in(base: str, username: str, password: str = PASSWORD, **kw: Any) -> httpx.Client:
    """A client signed in with a session cookie (raises when sign-in fails)."""
    c = httpx.Client(base_url=base, timeout=60, limits=FRESH, **kw)
    r = c.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_of(c.get("/login").text),
        },
    )
    if r.status_code != 303:
        raise RuntimeError(f"sign-in of {username} failed: {r.status_code}")
    return c


def csrf(c: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": c.get("/api/me").json()["csrf_token"]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def prepare(data_dir: Path, db_url: str | None) -> dict[str, str]:
    """Fresh schema and users admin, rev, rev2, view, victim; returns a bearer token for each."""
    from service.auth import create_token, create_user
    from service.db import make_engine, make_session_factory, upgrade

    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(db_url or f"sqlite:///{data_dir / 'tian.db'}")
    if db_url:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    upgrade(engine)
    roles = {"admin": "admin", "rev": "reviewer", "rev2": "reviewer", "view": "viewer"}
    roles["victim"] = "reviewer"
    with make_session_factory(engine)() as s, s.begin():
        tokens = {n: create_token(s, create_user(s, n, PASSWORD, r)) for n, r in roles.items()}
    engine.dispose()
    return tokens


def csv_rows(rows: list[tuple[str, str, str]], proposer: str = PROPOSER) -> bytes:
    """A CSV of (id, title, category) rows with the planted proposer."""
    out = [HEADER]
    out += [
        f"{pid},2024,{title},关于{title}的具体内容,{proposer},{cat},,\n" for pid, title, cat in rows
    ]
    return "".join(out).encode("utf-8")


def raw_post(
    base: str, path: str, headers: dict[str, str], total: int, cap: int
) -> tuple[str, int]:
    """POST a multipart body announced as ``total`` bytes (or chunked when ``total`` is 0).

    Sends at most ``cap`` bytes, 1 MB at a time, stopping as soon as an answer arrives.
    Returns (status line or error, bytes sent).
    """
    host, port = base.removeprefix("http://").split(":")
    boundary = "zz"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines.append(f"Content-Type: multipart/form-data; boundary={boundary}")
    lines.append(f"Content-Length: {total}" if total else "Transfer-Encoding: chunked")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sent = 0
    mb = b"x" * MIB
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sock.setblocking(False)
        answer = b""
        first = True
        while sent < cap:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            except OSError:
                break
            if answer:
                break
            piece = head + mb if first else mb
            first = False
            data = piece if total else b"%x\r\n%s\r\n" % (len(piece), piece)
            try:
                sock.setblocking(True)
                sock.sendall(data)
                sock.setblocking(False)
            except OSError:
                break
            sent += len(piece)
        sock.setblocking(True)
        sock.settimeout(30)
        try:
            while b"\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except OSError:
            pass
    return (answer.split(b"\r\n", 1)[0].decode("latin-1") or "no answer"), sent


def tmp_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# --- the replay ---------------------------------------------------------------------------


def replay(db_url: str | None, keep: bool) -> tuple[Report, dict[str, Any]]:
    """All cases against one database; returns the report and the figures."""
    rep = Report("PostgreSQL" if db_url else "SQLite")
    work = Path(tempfile.mkdtemp(prefix="tian-replay-"))
    tokens = prepare(work / "var", db_url)
    TOKENS.update(tokens)
    server = Server(work, db_url)
    server.start()
    time.sleep(2.0)
    assert server.proc is not None
    idle_own, idle_kids = tree_rss(server.proc.pid)
    viewer = Viewer()
    base = server.base
    figures: dict[str, Any] = {}
    with Watch(server) as watch:
        # No keep-alive: uvicorn closes idle connections after 5 s, and a request sent on one
        # just as it closes fails with "connection reset" (a client race, not the server's).
        api = httpx.Client(base_url=base, timeout=300, limits=FRESH)
        view = httpx.Client(
            base_url=base,
            limits=FRESH, timeout=60, headers=bearer(tokens["view"]),
            event_hooks={"response": [viewer.keep]},
        )  # fmt: skip
        rev = bearer(tokens["rev"])
        stored: set[str] = set()  # ids that should be in the database at the end

        def upload(
            name: str, data: bytes, headers: dict[str, str] = rev, **form: str
        ) -> httpx.Response:
            return api.post(
                "/api/imports", headers=headers, files={"file": (name, data)}, data=form
            )

        # A first good import, with the planted personal data.
        good = csv_rows([
            ("G-001", "关于推进工业园区制造企业发展的建议", "工业经济"),
            ("G-002", "关于加强河湖生态环境保护的建议", "生态环境"),
            ("G-003", "关于提升基层医院医疗卫生服务的建议", "医疗卫生"),
            ("G-004", "关于完善学校教育课程的建议", "教育"),
            ("G-005", "关于加强养老服务体系建设的建议", "民政"),
            ("G-006", "关于优化营商环境的建议", "工业经济"),
        ])  # fmt: skip
        r = upload("good.csv", good)
        if r.status_code == 201:
            stored |= {f"G-00{i}" for i in range(1, 7)}
        view.get("/api/jobs/{}".format(r.json().get("job")))

        case_1(rep, work, upload, view, stored)
        case_2(rep, upload, view, api, rev, db_url)
        case_3(rep, server, tokens)
        case_4(rep, upload, api, view, rev, stored)
        case_5(rep, server, tokens, view)
        case_6(rep, server, api)
        case_7(rep, upload, view, base, stored)
        case_8(rep, api, view, tokens)
        case_10(rep, server, upload, api, tokens, db_url, stored)
        case_11(rep, server, api, view, tokens)
        case_9(rep, server, watch, tokens, view, stored)
        final_checks(rep, server, view, viewer, stored)

        watch.collect()
        grown = watch.tree_peak - (idle_own + idle_kids)
        rep.case(
            "goal: memory within 300 MB of idle",
            grown < 300 * MIB,
            "the replay above",
            f"server+children idle {(idle_own + idle_kids) / MIB:.0f} MiB, peak "
            f"{watch.tree_peak / MIB:.0f} MiB (+{grown / MIB:.0f}); server alone peak "
            f"{watch.peak / MIB:.0f} MiB, children peak {watch.child_peak / MIB:.0f} MiB",
        )
        rep.case(
            "goal: /healthz under 1 s throughout",
            watch.slowest < 1.0 and watch.failures == 0,
            f"{watch.asks} GET /healthz, every 0.1 s",
            f"slowest {watch.slowest * 1000:.0f} ms, {watch.failures} failed",
        )
        after: dict[str, list[str]] = {}
        for took, ok, last in watch.slow:
            after.setdefault(last, []).append(f"{took:.1f}s" if ok else f"failed@{took:.1f}s")
        for last, times in after.items():
            print(f"    slow /healthz after '{last}': {', '.join(times[:8])}")  # noqa: T201
        figures = {
            "idle_mib": (idle_own + idle_kids) / MIB,
            "peak_mib": watch.tree_peak / MIB,
            "server_peak_mib": watch.peak / MIB,
            "children_peak_mib": watch.child_peak / MIB,
            "slowest_healthz_ms": watch.slowest * 1000,
            "healthz_asks": watch.asks,
            "healthz_failed": watch.failures,
        }
    server.kill(signal.SIGTERM)
    if keep:
        print(f"files kept in {work}")  # noqa: T201
    else:
        shutil.rmtree(work, ignore_errors=True)
    return rep, figures


def case_1(rep: Report, work: Path, upload: Callable[..., httpx.Response], view: httpx.Client,
           stored: set[str]) -> None:  # fmt: skip
    """11.1: decompression bombs are refused at once, and other imports do not wait."""
    for label, path in (
        ("1 GB of empty <row/>", bomb(work / "bomb.xlsx", 1024)),
        ("100 MB of wide rows", wide_bomb(work / "wide.xlsx", 100)),
    ):
        size = path.stat().st_size
        started = time.perf_counter()
        r = upload(path.name, path.read_bytes())
        took = time.perf_counter() - started
        message = (r.json().get("errors") or [{}])[0].get("message", "")[:40]
        job = view.get(f"/api/jobs/{r.json().get('job')}").json()
        rep.case(
            f"11.1 xlsx bomb ({label})",
            r.status_code == 422 and took < 10 and job.get("status") == "failed",
            f"{size / 1e6:.2f} MB workbook, {label}",
            f"{r.status_code} in {took:.2f} s, job {job.get('status')}: {message}",
        )
    # The worker is not blocked: a small import sent while the bomb is parsed finishes first.
    path = wide_bomb(work / "wide2.xlsx", 100)
    result: dict[str, Any] = {}

    def send_bomb() -> None:
        result["bomb"] = upload("wide2.xlsx", path.read_bytes(), headers=bearer(TOKENS["rev2"]))

    t = threading.Thread(target=send_bomb)
    t.start()
    time.sleep(0.3)
    started = time.perf_counter()
    small = upload("small.csv", csv_rows([("S-001", "关于完善社区公共服务设施的建议", "民政")]))
    took = time.perf_counter() - started
    t.join(timeout=300)
    if small.status_code == 201:
        stored.add("S-001")
    rep.case(
        "11.1 other imports not blocked by a bomb",
        small.status_code == 201 and took < 10,
        "a 1-row CSV while another reviewer's bomb is being read",
        f"{small.status_code} in {took:.2f} s (bomb: {result.get('bomb', httpx.Response(0)).status_code})",
    )
    path.unlink(missing_ok=True)


# Bearer tokens of the current run (replaced when a case revokes one).
TOKENS: dict[str, str] = {}


def case_2(rep: Report, upload: Callable[..., httpx.Response], view: httpx.Client,
           api: httpx.Client, rev: dict[str, str], db_url: str | None) -> None:  # fmt: skip
    """11.2: over-long ids and labels are a clean 422 with nothing personal anywhere."""
    for label, data in (
        ("2,000-character 提案号", csv_rows([("X" * 2000, "关于甲事项的建议", "教育")])),
        ("300-character 类别", csv_rows([("L-001", "关于乙事项的建议", "类" * 300)])),
        ("300-character 主办单位", (
            HEADER + f"L-002,2024,关于丙事项的建议,内容,{PROPOSER},教育,{'局' * 300},\n"
        ).encode()),
        ("600-character 案由", csv_rows([("L-003", "关于" + "长" * 600 + "的建议", "教育")])),
    ):  # fmt: skip
        r = upload("long.csv", data)
        job = view.get(f"/api/jobs/{r.json().get('job')}")
        leaked = any(p in r.text or p in job.text for p in PERSONAL)
        gone = all(
            api.get(f"/api/proposals/2024/{pid}", headers=rev).status_code == 404
            for pid in ("L-001", "L-002", "L-003")
        )
        rows = api.get("/api/proposals", headers=rev, params={"year": 2024}).text
        rep.case(
            f"11.2 {label}",
            r.status_code == 422 and not leaked and gone and "XXXXXXXXXX" not in rows,
            f"CSV with a {label}",
            f"{r.status_code}; job {job.json().get('status')} "
            f"{job.json().get('message', '')[:30]!r}; personal data in answers: {leaked}; "
            f"stored: {not gone}",
        )


def case_3(rep: Report, server: Server, tokens: dict[str, str]) -> None:
    """11.3: a huge body is refused before it is read (anonymous, viewer, over the limit)."""
    # Refused means: answered before the body is read. The kernel's socket buffers take a few
    # MB before the client sees the answer, hence the 8 MB allowance.
    cases = (
        ("anonymous, Content-Length 1000 MB", {}, 1000 * MIB, ("401", "413")),
        ("anonymous, Content-Length 15 MB (under the limit)", {}, 15 * MIB, ("401",)),
        ("viewer, Content-Length 1000 MB", bearer(tokens["view"]), 1000 * MIB, ("403", "413")),
        ("viewer, Content-Length 15 MB", bearer(tokens["view"]), 15 * MIB, ("403",)),
        ("anonymous, chunked", {}, 0, ("401",)),
        ("reviewer, Content-Length 1000 MB", bearer(tokens["rev"]), 1000 * MIB, ("413",)),
        ("reviewer, chunked, no length", bearer(tokens["rev"]), 0, ("413",)),
    )
    for label, headers, total, expect in cases:
        before = tmp_bytes(server.tmp)
        status, sent = raw_post(server.base, "/api/imports", headers, total, cap=60 * MIB)
        spilled = tmp_bytes(server.tmp) - before
        # A reviewer's chunked body is read up to the 20 MB limit, then cut off.
        limit = 28 * MIB if label.startswith("reviewer, chunked") else 8 * MIB
        rep.case(
            f"11.3 {label}",
            any(e in status for e in expect) and sent <= limit and spilled <= 22 * MIB,
            f"POST /api/imports {label}",
            f"{status!r} after {sent / MIB:.0f} MB sent; temporary files +{spilled / MIB:.1f} MB",
        )
    for size in (1000 * MIB, 15 * MIB):
        status, sent = raw_post(server.base, "/import", {}, size, cap=60 * MIB)
        rep.case(
            f"11.3 anonymous page upload, Content-Length {size // MIB} MB",
            any(e in status for e in ("303", "401", "413")) and sent <= 8 * MIB,
            f"POST /import, Content-Length {size // MIB} MB, no sign-in",
            f"{status!r} after {sent / MIB:.0f} MB sent",
        )


FORMULAS = [
    "=2+5+cmd|' /C calc'!A0",
    "=1+1",
    "+1+1",
    "-1+1",
    '=(HYPERLINK("http://evil.example/","点击"))',
    "@SUM(1+1)",
    "＝1+1",
    " =1+1",
]


def case_4(rep: Report, upload: Callable[..., httpx.Response], api: httpx.Client,
           view: httpx.Client, rev: dict[str, str], stored: set[str]) -> None:  # fmt: skip
    """11.4: one formula rule for every export, titles and reviewer-set categories alike."""
    import csv

    from model.formulas import is_formula_like

    rows = [(f"F-{i:03d}", f, "教育") for i, f in enumerate(FORMULAS, 1)]
    r = upload("formulas.csv", csv_rows(rows))
    rep.case(
        "11.4 formula titles in a CSV import",
        r.status_code == 422 or r.status_code == 201,
        f"CSV with {len(FORMULAS)} titles like {FORMULAS[0]!r}, {FORMULAS[4][:24]!r}",
        f"{r.status_code} ({len(r.json().get('errors', []))} row errors: CSV formulas are refused)",
    )
    if r.status_code == 201:
        stored |= {pid for pid, _, _ in rows}
    # A JSONL file carries the same text as plain strings: it is stored, so exports must guard it.
    lines = [
        {"提案号": pid, "年度": 2024, "案由": title, "提案内容": "正文", "提案人": PROPOSER,
         "类别": "+1+1" if pid == "F-002" else cat}
        for pid, title, cat in rows
    ]  # fmt: skip
    jsonl = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
    j = upload("formulas.jsonl", jsonl)
    if j.status_code == 201:
        stored |= {pid for pid, _, _ in rows}
    # The training export holds reviewed proposals only: a reviewer confirms a unit on each.
    for pid, _, _ in rows:
        api.post(
            f"/api/proposals/2024/{pid}/decisions",
            headers=rev,
            json={"action": "set", "field": "main_unit", "value": "市教育局"},
        )
    d = api.post(
        "/api/proposals/2024/G-004/decisions",
        headers=rev,
        json={"action": "set", "field": "category", "value": "=1+1"},
    )
    d2 = api.post(
        "/api/proposals/2024/G-004/decisions",
        headers=rev,
        json={"action": "set", "field": "main_unit", "value": "+cmd|' /C calc'!A0"},
    )
    csv_text = view.get("/api/exports/2024/training.csv").text
    cells = [c for row in csv.reader(io.StringIO(csv_text)) for c in row]
    bad_csv = [c for c in cells if is_formula_like(c)]
    guarded = sum(1 for c in cells if c.startswith("'") and is_formula_like(c[1:]))
    topics = view.get("/api/topics/2024/assignments.csv")
    topic_cells = [c for row in csv.reader(io.StringIO(topics.text)) for c in row]
    bad_topics = [c for c in topic_cells if is_formula_like(c)] if topics.status_code == 200 else []
    bad_xlsx, apostrophes = _xlsx_formulas(view.get("/api/exports/2024/assignments.xlsx").content)
    rep.case(
        "11.4 formula titles in training.csv",
        j.status_code == 201 and not bad_csv and guarded >= len(FORMULAS) and not bad_topics,
        f"JSONL import of the same {len(FORMULAS)} titles (one category '+1+1'); GET "
        "training.csv and topics/2024/assignments.csv",
        f"import {j.status_code}; {guarded} cells guarded with ', unguarded: {bad_csv[:3]}; "
        f"topics csv {topics.status_code}, unguarded {bad_topics[:2]}",
    )
    rep.case(
        "11.4 category or unit set to a formula through the API",
        d.status_code in (201, 422) and d2.status_code in (201, 422) and not bad_csv
        and not bad_xlsx,
        "POST decisions category '=1+1', main_unit \"+cmd|' /C calc'!A0\"",
        f"{d.status_code} / {d2.status_code}; unguarded: csv {len(bad_csv)}, xlsx {len(bad_xlsx)}",
    )  # fmt: skip
    rep.case(
        "11.4/11.11 XLSX export: quotePrefix, no visible apostrophe",
        not bad_xlsx and not apostrophes,
        "GET /api/exports/2024/assignments.xlsx",
        f"formula cells without quotePrefix: {bad_xlsx[:2]}; cells shown with an apostrophe: "
        f"{apostrophes[:2]}",
    )


def _xlsx_formulas(data: bytes) -> tuple[list[str], list[str]]:
    """(formula-like cells without quotePrefix or stored as formulas, cells starting with ')."""
    from openpyxl import load_workbook

    from model.formulas import is_formula_like

    bad, apostrophes = [], []
    wb = load_workbook(io.BytesIO(data))
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                v = cell.value
                if isinstance(v, str) and v.startswith("'") and is_formula_like(v.lstrip("'")):
                    apostrophes.append(v)
                if (is_formula_like(v) and not cell.quotePrefix) or cell.data_type == "f":
                    bad.append(str(v))
    return bad, apostrophes


def case_5(rep: Report, server: Server, tokens: dict[str, str], view: httpx.Client) -> None:
    """11.5: logout, password change, disable and revoke end sessions and tokens at once."""
    base = server.base
    a = signed_in(base, "rev")
    stolen = dict(a.cookies)
    token = csrf(a)["X-CSRF-Token"]
    a.post("/logout", data={"csrf_token": token})
    thief = httpx.Client(base_url=base, cookies=stolen, timeout=30)
    read = thief.get("/api/me").status_code
    write = thief.post(
        "/api/proposals/2024/G-001/decisions",
        json={"action": "set", "field": "category", "value": "教育"},
        headers={"X-CSRF-Token": token},
    ).status_code
    rep.case(
        "11.5 cookie after logout",
        read == 401 and write == 401,
        "the old session cookie after POST /logout: GET /api/me, a CSRF-protected write",
        f"read {read}, write {write}",
    )
    # Password change (the API) ends the other sessions and the tokens.
    b, c = signed_in(base, "victim"), signed_in(base, "victim")
    weak = b.post(
        "/api/me/password", json={"current": PASSWORD, "new": "12345678"}, headers=csrf(b)
    )
    r = b.post("/api/me/password", json={"current": PASSWORD, "new": NEW_PASSWORD}, headers=csrf(b))
    other = c.get("/api/me").status_code
    tok = httpx.get(f"{base}/api/me", headers=bearer(tokens["victim"])).status_code
    rep.case(
        "11.5 password change",
        weak.status_code == 422 and r.status_code == 200 and b.get("/api/me").status_code == 200
        and other == 401 and tok == 401,
        "POST /api/me/password (first '12345678', then a strong one)",
        f"weak {weak.status_code}, strong {r.status_code}; other session {other}, old token {tok}",
    )  # fmt: skip
    # Tokens made through the API expire; the CLI disables, enables, revokes and resets.
    made = b.post("/api/tokens", json={"name": "replay"}, headers=csrf(b)).json()
    listed = b.get("/api/tokens").json()
    expires = [t.get("expires_at") for t in listed if t.get("id") == made.get("id")]
    if made.get("id") is None:  # the answer holds only the token: the newest listed is it
        expires = [t.get("expires_at") for t in listed if not t.get("revoked")][-1:]
    rep.case(
        "11.5 API tokens expire",
        bool(expires) and all(expires),
        "POST /api/tokens without a lifetime, GET /api/tokens",
        f"expires_at {expires[:2]}; {'token' if made.get('token') else 'no token'} returned",
    )
    # A token revoked through the API stops working at once.
    newest = [t for t in listed if not t.get("revoked")][-1:]
    works = httpx.get(f"{base}/api/me", headers=bearer(made.get("token", ""))).status_code
    revoked = (
        b.post(f"/api/tokens/{newest[0]['id']}/revoke", headers=csrf(b)).status_code
        if newest
        else 0
    )
    after = httpx.get(f"{base}/api/me", headers=bearer(made.get("token", ""))).status_code
    rep.case(
        "11.5 API token revocation",
        works == 200 and revoked == 200 and after == 401,
        "POST /api/tokens/{id}/revoke on the new token",
        f"token before {works}; revoke {revoked}; token after {after}",
    )
    cli = _cli(server)
    d = signed_in(base, "rev2")
    rc1 = cli("disable", "rev2")
    after_disable = (d.get("/api/me").status_code, httpx.get(
        f"{base}/api/me", headers=bearer(tokens["rev2"])).status_code)  # fmt: skip
    rc2 = cli("enable", "rev2")
    d = signed_in(base, "rev2")
    rc3 = cli("revoke", "rev2")
    after_revoke = d.get("/api/me").status_code
    rc4 = cli("passwd", "rev2", stdin=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    relogin = signed_in(base, "rev2", NEW_PASSWORD).get("/api/me").status_code
    rep.case(
        "11.5 tian user disable/enable/revoke/passwd",
        (rc1, rc2, rc3, rc4) == (0, 0, 0, 0) and after_disable == (401, 401)
        and after_revoke == 401 and relogin == 200,
        "the CLI against the running server's database",
        f"rc {rc1}/{rc2}/{rc3}/{rc4}; after disable (cookie, token) {after_disable}; after "
        f"revoke {after_revoke}; sign-in with the new password {relogin}",
    )  # fmt: skip
    TOKENS["rev2"] = _new_token(server, "rev2")
    adm = signed_in(base, "admin")
    page = adm.get("/admin/users")
    v = signed_in(base, "view")
    r = adm.post(
        "/admin/users/view/disable",
        data={"csrf_token": csrf_of(page.text)},
        follow_redirects=True,
    )
    gone = v.get("/api/me").status_code
    adm.post("/admin/users/view/enable", data={"csrf_token": csrf_of(page.text)})
    rep.case(
        "11.5 admin page disables a user",
        page.status_code == 200 and "已停用用户 view" in r.text and gone == 401,
        "POST /admin/users/view/disable, then enable",
        f"page {page.status_code}, answer {r.status_code}, viewer's session then {gone}",
    )
    # The viewer's bearer token was revoked by disabling: the replay's viewer gets a new one.
    view.headers.update(bearer(_new_token(server, "view")))


def _cli(server: Server) -> Callable[..., int]:
    tian = Path(sys.executable).parent / "tian"

    def run(action: str, user: str, stdin: str | None = None) -> int:
        cmd = [str(tian), "user", "--data-dir", str(server.data_dir)]
        if server.db_url:
            cmd += ["--db", server.db_url]
        cmd += [action, user] + (["--password-stdin"] if stdin else [])
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIAN_")}
        done = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=120, env=env
        )
        if done.returncode:
            print(f"    tian user {action}: {done.stderr.strip()[-200:]}")  # noqa: T201
        return done.returncode

    return run


def _new_token(server: Server, user: str) -> str:
    tian = Path(sys.executable).parent / "tian"
    cmd = [str(tian), "user", "--data-dir", str(server.data_dir)]
    cmd += ["--db", server.db_url] if server.db_url else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIAN_")}
    out = subprocess.run(
        cmd + ["token", user], capture_output=True, text=True, timeout=120, env=env
    )
    found = re.search(r"tian_[A-Za-z0-9_\-]+", out.stdout)
    if not found:
        raise RuntimeError(f"no token for {user}: {out.stderr[-200:]}")
    return found.group(0)


def case_6(rep: Report, server: Server, api: httpx.Client) -> None:
    """11.6: sign-in is throttled per account and per address; weak passwords are refused."""
    c = httpx.Client(base_url=server.base, timeout=30)
    token = csrf_of(c.get("/login").text)
    codes = []
    started = time.perf_counter()
    for _ in range(40):
        form = {"username": "victim", "password": "wrong-guess", "csrf_token": token}
        codes.append(c.post("/login", data=form).status_code)
    form = {"username": "victim", "password": NEW_PASSWORD, "csrf_token": token}
    right = c.post("/login", data=form)
    took = time.perf_counter() - started
    rep.case(
        "11.6 40 wrong passwords, then the right one",
        right.status_code == 429 and codes.count(401) <= 5 and "锁定" in right.text,
        "40 POST /login with a wrong password, then the right one, from one address",
        f"{codes.count(401)}x401, {codes.count(429)}x429 in {took:.1f} s; the right one "
        f"{right.status_code} (Retry-After {right.headers.get('retry-after')})",
    )
    # Rotating X-Forwarded-For: the account is still locked after 20 tries from anywhere.
    codes = []
    for i in range(40):
        form = {"username": "rev", "password": "wrong-guess", "csrf_token": token}
        codes.append(
            c.post("/login", data=form, headers={"X-Forwarded-For": f"10.9.{i}.1"}).status_code
        )
    right = c.post(
        "/login",
        data={"username": "rev", "password": PASSWORD, "csrf_token": token},
        headers={"X-Forwarded-For": "10.9.200.1"},
    )
    rep.case(
        "11.6 40 wrong passwords from 40 claimed addresses",
        right.status_code == 429 and codes.count(401) <= 20,
        "40 POST /login for 'rev', X-Forwarded-For rotating, then the right one",
        f"{codes.count(401)}x401, {codes.count(429)}x429; the right one {right.status_code}",
    )
    adm = signed_in(server.base, "admin", headers={"X-Forwarded-For": "10.8.0.1"})
    weak = adm.post(
        "/api/users",
        json={"username": "digits", "password": "12345678", "role": "viewer"},
        headers=csrf(adm),
    )
    rep.case(
        "11.6 8-digit password",
        weak.status_code == 422 and "12345678" not in weak.text,
        "POST /api/users with password '12345678'",
        f"{weak.status_code} {weak.json().get('detail')!r}",
    )


def case_7(rep: Report, upload: Callable[..., httpx.Response], view: httpx.Client, base: str,
           stored: set[str]) -> None:  # fmt: skip
    """11.7: headers that look personal are kept from viewers."""
    data = (
        "提案号,年度,案由,提案内容,提案人,提案人姓名,联系电话,备注\n"
        f"P-001,2024,关于加强养老服务的建议,养老,{PROPOSER},{SECRETARY},{PHONE},公开备注\n"
    ).encode()
    r = upload("personal.csv", data)
    if r.status_code == 201:
        stored.add("P-001")
    item = view.get("/api/proposals/2024/P-001")
    page = view.get("/proposals/2024/P-001")
    listing = view.get("/api/proposals", params={"year": 2024, "limit": 500})
    leaked = [p for p in PERSONAL if any(p in x.text for x in (item, page, listing, r))]
    rep.case(
        "11.7 提案人姓名 and 联系电话 columns",
        r.status_code == 201 and item.status_code == 200 and not leaked,
        "CSV with 提案人, 提案人姓名, 联系电话 columns; viewer reads API, page and list",
        f"import {r.status_code}; viewer item {item.status_code}, page {page.status_code}; "
        f"extra shown: {item.json().get('extra') if item.status_code == 200 else '-'}; "
        f"personal values in answers: {len(leaked)}",
    )
    del base


def case_8(rep: Report, api: httpx.Client, view: httpx.Client, tokens: dict[str, str]) -> None:
    """11.8: racing decisions keep the real 原值; merges join whole groups."""
    url = "/api/proposals/2024/G-002/decisions"
    current = view.get("/api/proposals/2024/G-002").json()["category"]
    barrier = threading.Barrier(30)
    codes: list[int] = []
    lock = threading.Lock()

    def decide(i: int) -> None:
        body = {"action": "set", "field": "category", "value": f"类别{i:02d}"}
        body["previous_value"] = current
        with httpx.Client(base_url=api.base_url, timeout=120) as c:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=60)
            r = c.post(url, json=body, headers=bearer(tokens["rev" if i % 2 else "admin"]))
        with lock:
            codes.append(r.status_code)

    _threads(decide, 30)
    chain = [d for d in view.get(url).json() if d["field"] == "category"]
    broken = sum(
        1 for a, b in zip(chain, chain[1:], strict=False) if b["previous_value"] != a["new_value"]
    )
    first_ok = bool(chain) and chain[0]["previous_value"] == current
    rep.case(
        "11.8 30 reviewers set one field at once (same previous_value)",
        codes.count(201) == 1 and codes.count(409) == 29 and len(chain) == 1 and first_ok,
        "30 simultaneous POST decisions on G-002, each with the value it saw",
        f"{codes.count(201)}x201, {codes.count(409)}x409, other {sorted(set(codes) - {201, 409})}; "
        f"{len(chain)} decisions recorded",
    )
    # Without previous_value (an older client): all succeed, and each records the real 原值.
    url3 = "/api/proposals/2024/G-003/decisions"
    codes.clear()
    barrier = threading.Barrier(30)

    def blind(i: int) -> None:
        body = {"action": "set", "field": "category", "value": f"类别{i:02d}"}
        with httpx.Client(base_url=api.base_url, timeout=120) as c:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=60)
            r = c.post(url3, json=body, headers=bearer(tokens["rev" if i % 2 else "admin"]))
        with lock:
            codes.append(r.status_code)

    _threads(blind, 30)
    chain = [d for d in view.get(url3).json() if d["field"] == "category"]
    broken = sum(
        1 for a, b in zip(chain, chain[1:], strict=False) if b["previous_value"] != a["new_value"]
    )
    rep.case(
        "11.8 30 decisions at once without previous_value",
        codes.count(201) == 30 and len(chain) == 30 and broken == 0,
        "30 simultaneous POST decisions on G-003, no previous_value",
        f"{codes.count(201)}x201 {sorted(set(codes) - {201})}; {len(chain)} recorded, "
        f"{broken} with a wrong 原值",
    )
    rev = bearer(tokens["rev"])

    def merge(pid: str, value: str | list[str]) -> int:
        return api.post(
            f"/api/proposals/2024/{pid}/decisions",
            headers=rev,
            json={"action": "merge", "value": value},
        ).status_code

    def group(pid: str) -> Any:
        return view.get(f"/api/proposals/2024/{pid}").json().get("merge_group")

    codes = [merge("G-001", "G-002"), merge("G-002", "G-003")]
    groups = {p: group(p) for p in ("G-001", "G-002", "G-003")}
    rep.case(
        "11.8 A with B, then B with C",
        codes == [201, 201] and len(set(groups.values())) == 1 and None not in groups.values(),
        "merge G-001+G-002, then G-002+G-003",
        f"{codes}; groups {groups}",
    )
    code = merge("G-004", ["G-005", "G-006"])
    groups = {p: group(p) for p in ("G-004", "G-005", "G-006")}
    rep.case(
        "11.8 three-way merge at once",
        code == 201 and len(set(groups.values())) == 1 and None not in groups.values(),
        "merge G-004 with [G-005, G-006]",
        f"{code}; groups {groups}",
    )
    # Racing merges that all touch one group.
    pairs = [("G-004", "G-001"), ("G-006", "G-003"), ("P-001", "G-005"), ("S-001", "G-002")]
    barrier = threading.Barrier(len(pairs))

    def racing(i: int) -> None:
        pid, other = pairs[i]
        with httpx.Client(base_url=api.base_url, timeout=120) as c:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=60)
            c.post(f"/api/proposals/2024/{pid}/decisions", headers=rev,
                   json={"action": "merge", "value": other})  # fmt: skip

    _threads(racing, len(pairs))
    members = [p for pair in pairs for p in pair]
    groups = {p: group(p) for p in members}
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(view.get("/api/exports/2024/assignments.xlsx").content)).active
    head = [c.value for c in next(ws.iter_rows(max_row=1))]
    col_id, col_group = head.index("提案号"), head.index("并案组")
    exported = {
        r[col_id]: r[col_group]
        for r in ws.iter_rows(min_row=2, values_only=True)
        if r[col_id] in members
    }
    rep.case(
        "11.8 four merges at once into one group; the 交办 export agrees",
        len(set(groups.values())) == 1 and None not in groups.values()
        and len(set(exported.values())) == 1 and None not in exported.values(),
        "4 simultaneous merges joining G-001..G-006, P-001, S-001",
        f"{len(set(groups.values()))} group(s) via API, {len(set(exported.values()))} in "
        f"assignments.xlsx ({len(exported)} rows)",
    )  # fmt: skip


def _threads(target: Callable[[int], None], n: int) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)


def case_10(rep: Report, server: Server, upload: Callable[..., httpx.Response], api: httpx.Client,
            tokens: dict[str, str], db_url: str | None, stored: set[str]) -> None:  # fmt: skip
    """11.10: ids that break a URL, private file modes, bounded job queues."""
    ids = ["2024/001", "a?b", "c#d", "..", "e%2Ff", "../x"]
    data = csv_rows([(i, f"关于第{n}项的建议", "教育") for n, i in enumerate(ids)])
    r = upload("ids.csv", data)
    errors = r.json().get("errors", [])
    rep.case(
        "11.10 ids with / ? # .. %",
        r.status_code == 422 and len(errors) == len(ids),
        f"CSV with ids {ids}",
        f"{r.status_code}, {len(errors)} row errors",
    )
    modes = {}
    for p in [
        server.data_dir,
        *sorted(server.data_dir.glob("tian.db*")),
        server.data_dir / "secret_key",
    ]:
        if p.exists():
            modes[p.name] = stat.S_IMODE(p.stat().st_mode)
    loose = {n: f"{m:o}" for n, m in modes.items() if m & 0o077}
    rep.case(
        "11.10 private file modes",
        not loose and (db_url is not None or "tian.db" in modes),
        "stat of the data folder, database and secret key",
        ", ".join(f"{n} {m:o}" for n, m in modes.items())
        + (f"; too open: {loose}" if loose else ""),
    )
    big = big_csv(server.work / "queue.csv", 2000).read_bytes()
    h = bearer(TOKENS["rev2"])
    answers = [
        upload(f"q{i}.csv", big.replace(b"K-", b"Q%d-" % i), headers=h, wait="false")
        for i in range(6)
    ]
    codes = [a.status_code for a in answers]
    jobs = [a.json()["job"] for a in answers if a.status_code == 202]
    # At once, while those imports are still queued or running: analyses count too.
    active = [api.get(f"/api/jobs/{j}", headers=h).json().get("status") for j in jobs]
    analyses = [
        api.post("/api/analyse", params={"year": 2024}, headers=h).status_code for _ in range(8)
    ]
    other = upload("other.csv", csv_rows([("O-001", "关于改善城市交通的建议", "交通")]))
    if other.status_code == 201:
        stored.add("O-001")
    rep.case(
        "11.10 import queue bounded per user",
        codes.count(202) <= 3 and 429 in codes and other.status_code == 201,
        "6 imports of a 2,000-row CSV at once by one reviewer, then one by another",
        f"{codes}; the other reviewer's import {other.status_code}",
    )
    rep.case(
        "11.10 analysis queue bounded per user",
        429 in analyses,
        "8 POST /api/analyse by one reviewer right after its imports",
        f"{analyses} (its imports then: {active})",
    )
    # Let the queued imports finish (bounded), so the crash case starts from a quiet server.
    deadline = time.monotonic() + 300
    while jobs and time.monotonic() < deadline:
        states = [api.get(f"/api/jobs/{j}", headers=h).json().get("status") for j in jobs]
        if all(s in ("done", "failed", "interrupted") for s in states):
            break
        time.sleep(1)
    for i, a in enumerate(answers):
        if a.status_code == 202:
            done = api.get(f"/api/jobs/{a.json()['job']}", headers=h).json()
            if done.get("status") == "done":
                stored |= {f"Q{i}-{n:06d}" for n in range(2000)}


def case_11(rep: Report, server: Server, api: httpx.Client, view: httpx.Client,
            tokens: dict[str, str]) -> None:  # fmt: skip
    """11.11: offline docs, CSP and no-store, short 422s, no tracebacks for rejections."""
    docs = api.get("/docs")
    scripts = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', docs.text)
    external = [s for s in scripts if s.startswith(("http:", "https:", "//"))]
    fetched = [api.get(s).status_code for s in scripts if not s.startswith(("http", "//"))]
    rep.case(
        "11.11 /docs offline",
        docs.status_code == 200 and not external and all(c == 200 for c in fetched),
        "GET /docs and every script/style it names",
        f"{docs.status_code}; external {external}; local {fetched}",
    )
    rev = signed_in(server.base, "admin", headers={"X-Forwarded-For": "10.8.0.2"})
    page = rev.get("/queue")
    me = rev.get("/api/me")
    csp = page.headers.get("content-security-policy", "")
    rep.case(
        "11.11 CSP and Cache-Control on pages and API",
        "default-src 'self'" in csp and "cdn" not in csp
        and page.headers.get("cache-control") == "no-store"
        and me.headers.get("cache-control") == "no-store",
        "GET /queue, GET /api/me",
        f"CSP {csp[:60]!r}...; Cache-Control {page.headers.get('cache-control')!r} / "
        f"{me.headers.get('cache-control')!r}",
    )  # fmt: skip
    secret = "Sup3r-secret-passphrase-echo"
    r = rev.post(
        "/api/users", json={"username": "x2", "password": secret, "role": "root"}, headers=csrf(rev)
    )
    huge = "河" * 1_000_000
    t = rev.post("/api/suggest", json={"text": huge, "bogus": [1] * 10}, headers=csrf(rev))
    login = api.post("/login", data={"username": "rev", "password": secret * 10})
    rep.case(
        "11.11 422 answers do not echo the input",
        r.status_code == 422 and secret not in r.text and len(t.content) < 10_000
        and secret not in login.text,
        "bad role with a password; a 3 MB suggest body; a 280-char password to /login",
        f"{r.status_code} ({len(r.content)} B, password echoed: {secret in r.text}); "
        f"{t.status_code} ({len(t.content)} B); login {login.status_code} (echoed: "
        f"{secret in login.text})",
    )  # fmt: skip
    del tokens


def case_9(rep: Report, server: Server, watch: Watch, tokens: dict[str, str], view: httpx.Client,
           stored: set[str]) -> None:  # fmt: skip
    """11.9: kill -9 during an import with more queued: jobs reported, uploads cleaned."""
    rev = bearer(tokens["rev"])
    big = big_csv(server.work / "kill.csv", 12000).read_bytes()
    jobs = []
    with httpx.Client(base_url=server.base, timeout=300, headers=rev) as c:
        for prefix in (b"M-", b"N-", b"R-"):
            r = c.post(
                "/api/imports",
                files={"file": ("kill.csv", big.replace(b"K-", prefix))},
                data={"wait": "false"},
            )
            jobs.append(r.json().get("job"))
        seen: dict[str, Any] = {}
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            seen = c.get(f"/api/jobs/{jobs[0]}").json()
            if seen.get("message") == "正在写入" and 0 < seen.get("done", 0) < seen.get("total", 0):
                break
            if seen.get("status") in ("done", "failed"):
                break
            time.sleep(0.02)
    uploads = server.data_dir / "uploads"
    before = len(list(uploads.iterdir())) if uploads.exists() else 0
    watch.paused.set()
    server.kill()
    server.start()
    watch.paused.clear()
    view.base_url = server.base  # type: ignore[misc]
    after = [view.get(f"/api/jobs/{j}") for j in jobs]
    statuses = [a.json().get("status") if a.status_code == 200 else a.status_code for a in after]
    left = list(uploads.iterdir()) if uploads.exists() else []
    # Each job's report must match what is stored: done means all 12,000 rows (another import
    # may finish before the kill), interrupted means none of them.
    wrong = []
    for prefix, status in zip(("M", "N", "R"), statuses, strict=True):
        ends = [
            view.get(f"/api/proposals/2024/{prefix}-{n:06d}").status_code == 200 for n in (0, 11999)
        ]
        if status == "done" and all(ends):
            stored |= {f"{prefix}-{n:06d}" for n in range(12000)}
        elif status != "interrupted" or any(ends):
            wrong.append(f"{prefix}: {status}, first/last row stored {ends}")
    rep.case(
        "11.9 kill -9 mid-import with two imports queued",
        seen.get("message") == "正在写入" and "interrupted" in statuses and not left and not wrong,
        f"3 imports of 12,000 rows, kill -9 at {seen.get('done')}/{seen.get('total')} written",
        f"after restart jobs {statuses}; uploads {before} before, {len(left)} after; "
        f"job reports that do not match the stored rows: {wrong or 'none'}",
    )


def final_checks(rep: Report, server: Server, view: httpx.Client, viewer: Viewer,
                 stored: set[str]) -> None:  # fmt: skip
    """Nothing half-imported; no personal data to the viewer or in the log."""
    found: set[str] = set()
    for year in (2024,):
        offset = 0
        for _ in range(400):  # bounded paging
            r = view.get("/api/proposals", params={"year": year, "limit": 5000, "offset": offset})
            items = r.json().get("items", r.json()) if r.status_code == 200 else []
            if not items:
                break
            found |= {i.get("id") or i.get("pid") for i in items}
            offset += len(items)
            if len(items) < 5000:
                break
    extra = sorted(found - stored)[:5]
    missing = sorted(stored - found)[:5]
    rep.case(
        "final: nothing half-imported",
        not extra and not missing,
        f"viewer lists every 2024 proposal ({len(stored)} expected)",
        f"{len(found)} listed; unexpected {extra}; missing {missing}",
    )
    # Touch the viewer's usual pages once more, then search everything it was ever sent.
    for path in ("/queue", "/groups", "/api/imports", "/api/decisions", "/proposals/2024/P-001",
                 "/api/exports/2024/training.csv", "/api/exports/2024/assignments.xlsx",
                 "/api/exports/2024/training.jsonl"):  # fmt: skip
        view.get(path)
    hits = [(url, p) for url, text in viewer.seen for p in PERSONAL if p in text]
    rep.case(
        "final: no personal data to the viewer",
        not hits,
        f"{len(viewer.seen)} answers to the viewer searched for {PERSONAL}",
        f"{len(hits)} hits {hits[:3]}",
    )
    log = server.log.read_text(encoding="utf-8", errors="replace")
    in_log = [p for p in PERSONAL if p in log]
    tracebacks = log.count("Traceback")
    rep.case(
        "final: no personal data and no rejection tracebacks in the log",
        not in_log and tracebacks == 0 and "ERROR" not in log,
        f"server log ({len(log.splitlines())} lines)",
        f"personal values {in_log}; {tracebacks} tracebacks; "
        f"{len(re.findall(r'ERROR', log))} ERROR lines",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", help="also replay on this (throw-away) PostgreSQL database")
    parser.add_argument("--skip-sqlite", action="store_true", help="only the PostgreSQL run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders and logs")
    args = parser.parse_args()
    runs = ([] if args.skip_sqlite else [None]) + ([args.pg_url] if args.pg_url else [])
    reports = []
    for url in runs:
        started = time.perf_counter()
        TOKENS.clear()
        rep, figures = replay(url, args.keep)
        figures["seconds"] = time.perf_counter() - started
        reports.append((rep, figures))
    print()  # noqa: T201
    for rep, figures in reports:
        held = sum(ok for _, ok, _, _ in rep.rows)
        print(  # noqa: T201
            f"{rep.db}: {held}/{len(rep.rows)} held; " + json.dumps(figures, default=round)
        )
        for name, ok, _, got in rep.rows:
            if not ok:
                print(f"  NOT HELD {name}: {got}")  # noqa: T201
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()}")  # noqa: T201
    return 0 if all(ok for rep, _ in reports for _, ok, _, _ in rep.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
