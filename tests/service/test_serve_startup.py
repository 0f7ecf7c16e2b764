"""`tian serve --import ...`: progress per stage while it prepares, the sign-in printed last."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from service_helpers import TOY_ROWS, proposals_csv


class FakeServer:
    """Stands in for uvicorn.Server: starts, logs like uvicorn does, then stops."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.started = False
        self.should_exit = False

    def run(self) -> None:
        import sys
        import time

        print("INFO:     Uvicorn running on http://127.0.0.1:8000", file=sys.stderr)  # noqa: T201
        self.started = True
        time.sleep(0.5)  # the banner thread prints while the server runs


def test_progress_then_sign_in_last(
    tmp_path: Path, baseline_bundle: Path, monkeypatch: pytest.MonkeyPatch, capfd: Any
) -> None:
    import uvicorn

    from tian.cli import main

    for var in ("TIAN_DB_URL", "TIAN_SECRET_KEY", "TIAN_ENVIRONMENT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TIAN_ENCODER", "none")  # no duplicate or topic search: fast
    monkeypatch.setattr(uvicorn, "Server", FakeServer)
    data = tmp_path / "p.csv"
    data.write_bytes(proposals_csv(TOY_ROWS))
    args = ["serve", "--data-dir", str(tmp_path / "var"), "--model", str(baseline_bundle)]
    assert main([*args, "--import", str(data), "--demo-admin"]) == 0
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    stages = [line for line in lines if line.startswith("[")]
    assert [s[:5] for s in stages] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert any("正在生成建议 5/5" in line for line in lines)
    assert any(line.startswith("prepared in") for line in lines)
    # The banner is the last thing printed, after uvicorn's own lines.
    assert lines[-1].startswith("=" * 20)
    assert lines[-4].startswith("tian 提案审核服务已启动")
    assert lines[-3].startswith("登录 (sign in): 用户名 demo  密码 ")
    assert err.index("Uvicorn running") < err.index("登录 (sign in)")


def test_long_stages_are_never_silent() -> None:
    import time

    from tian.commands.serve import ConsoleProgress

    said: list[str] = []
    with ConsoleProgress(said.append, every=0.0) as progress:
        progress.progress(0, None, "2024 年：查找重复提案")
        time.sleep(1.3)  # one heartbeat tick
    assert said[0] == "  2024 年：查找重复提案"
    assert any("仍在进行" in line for line in said[1:])


def test_several_workers_are_refused_on_sqlite(tmp_path: Path, capfd: Any) -> None:
    from tian.cli import main

    assert main(["serve", "--data-dir", str(tmp_path / "var"), "--workers", "2"]) == 2
    err = capfd.readouterr().err
    assert "--workers 2 needs PostgreSQL" in err
    assert not (tmp_path / "var" / "tian.db").exists()  # refused before touching anything


def test_several_workers_start_up_once_then_uvicorn_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrations run once in the parent; uvicorn gets an import string and N workers."""
    import os

    import uvicorn

    import tian.commands.serve as serve
    from tian.cli import main

    for var in ("TIAN_DB_URL", "TIAN_DATA_DIR", "TIAN_HOST", "TIAN_PORT", "TIAN_SECRET_KEY"):
        # setenv first so that monkeypatch removes what `serve` exports once the test ends.
        monkeypatch.setenv(var, "x")
        monkeypatch.delenv(var)
    monkeypatch.delenv("TIAN_ENVIRONMENT", raising=False)
    migrated: list[str] = []
    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(serve, "_migrate_once", lambda s: migrated.append(s.database_url))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: runs.append({"app": app, **kw}))
    url = "postgresql+psycopg://tian@127.0.0.1:1/tian"
    args = ["serve", "--data-dir", str(tmp_path / "var"), "--db", url, "--workers", "3"]
    assert main([*args, "--port", "8123"]) == 0
    assert migrated == [url]
    assert len(runs) == 1
    assert runs[0]["app"] == "service.app:create_worker_app" and runs[0]["factory"] is True
    assert runs[0]["workers"] == 3 and runs[0]["port"] == 8123
    # The workers read the parent's settings from the environment.
    assert os.environ["TIAN_DB_URL"] == url
    assert os.environ["TIAN_DATA_DIR"] == str((tmp_path / "var").resolve())
