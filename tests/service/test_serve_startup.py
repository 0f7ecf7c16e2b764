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
