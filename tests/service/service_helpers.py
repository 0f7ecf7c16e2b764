"""Helpers for the service tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASSWORD = "correct-horse-battery"
CSV_HEADER = "提案号,年度,案由,提案内容,提案人,类别,主办单位,协办单位\n"


@dataclass
class Service:
    """A running test app with its state and one signed-in client per role."""

    app: Any
    state: Any
    client: Any  # anonymous
    tmp: Path

    def client_for(self, username: str) -> Any:
        """A new TestClient signed in (session cookie) as ``username``."""
        from fastapi.testclient import TestClient

        c = TestClient(self.app)
        login(c, username)
        return c

    def token_for(self, username: str) -> str:
        from sqlalchemy import select

        from service.auth import create_token
        from service.models import User

        with self.state.factory() as s, s.begin():
            return create_token(s, s.scalar(select(User).where(User.username == username)))


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def login(client: Any, username: str, password: str = PASSWORD) -> None:
    page = client.get("/login")
    r = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def api_csrf(client: Any) -> dict[str, str]:
    """Headers for a cookie-authenticated API write."""
    return {"X-CSRF-Token": client.get("/api/me").json()["csrf_token"]}


def proposals_csv(rows: list[tuple[str, ...]], year: int = 2024) -> bytes:
    """A CSV upload: rows of (id, title, content[, category, main_unit, co_units])."""
    lines = [CSV_HEADER]
    for r in rows:
        pid, title, content, *labels = r
        labels = list(labels) + [""] * (3 - len(labels))
        lines.append(f"{pid},{year},{title},{content},某委员,{labels[0]},{labels[1]},{labels[2]}\n")
    return "".join(lines).encode("utf-8")


TOY_ROWS = [
    ("A-001", "关于推进工业园区制造企业发展的建议", "工业制造企业园区发展改革推进建设工作落实"),
    ("A-002", "关于加强河湖生态环境保护的建议", "生态环境河湖污染水土保持流域治理工作"),
    ("A-003", "关于提升基层医院医疗卫生服务的建议", "医疗卫生医院健康疾病药品服务提升"),
    ("A-004", "关于完善学校教育课程的建议", "教育学校学生教师课程建设完善"),
    ("A-005", "关于加强河湖生态环境保护的建议", "生态环境河湖污染水土保持流域治理工作"),
]


@contextmanager
def running_service(
    tmp_path: Path, bundle: Path, backbone: Path, db_url: str | None = None
) -> Iterator[Service]:
    """The app on ``db_url`` (default: fresh SQLite), jobs inline, ``bundle`` live."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.auth import create_user
    from service.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "var",
        db_url=db_url or f"sqlite:///{tmp_path / 'var' / 'tian.db'}",
        model_dir=bundle,
        encoder=str(backbone),
        background_jobs=False,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        state = app.state.tian
        with state.factory() as s, s.begin():
            for name, role in (("admin", "admin"), ("rev", "reviewer"), ("view", "viewer")):
                create_user(s, name, PASSWORD, role)
        yield Service(app=app, state=state, client=client, tmp=tmp_path)


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(tmp_path: Path, bundle: Path | None, encoder: str) -> Iterator[tuple[str, Any]]:
    """Uvicorn serving the app on a free loopback port in a thread; yields (base URL, state).

    Background jobs are on, as in production, so pages show real progress.
    """
    import threading
    import time

    import uvicorn

    from service.app import create_app
    from service.auth import create_user
    from service.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "var",
        db_url=f"sqlite:///{tmp_path / 'var' / 'tian.db'}",
        model_dir=bundle,
        encoder=encoder,
        background_jobs=True,
    )
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    state = app.state.tian
    with state.factory() as s, s.begin():
        for name, role in (("admin", "admin"), ("rev", "reviewer"), ("view", "viewer")):
            create_user(s, name, PASSWORD, role)
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def wait_until_healthy(proc: Any, base: str, stop: Any, timeout: float = 60.0) -> None:
    """Poll ``base``/healthz until the server process ``proc`` answers; ``stop(proc)`` and fail
    if it exits or the time runs out."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise AssertionError("the service did not start")
        time.sleep(0.2)
