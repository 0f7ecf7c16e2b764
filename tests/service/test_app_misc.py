"""Settings, migrations, dependency direction, topics, pages, the `tian user` command."""

from __future__ import annotations

import subprocess
import sys

import pytest
from service_helpers import api_csrf


def test_service_never_imports_training_or_datasets():
    code = (
        "import sys, service.app, service.analysis, service.api.main;"
        "bad=[m for m in ('training','datasets') if m in sys.modules];"
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_placeholder_secret_refused_in_production(tmp_path):
    from service.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="placeholder"):
        Settings(environment="production", data_dir=tmp_path).resolved_secret_key()
    key = Settings(data_dir=tmp_path).resolved_secret_key()
    assert len(key) > 30 and Settings(data_dir=tmp_path).resolved_secret_key() == key


def test_migrations_are_idempotent(service):
    from service.db import upgrade

    upgrade(service.state.engine)
    upgrade(service.state.engine)


def test_topics_upload_and_coverage(imported):
    rev = imported.client_for("rev")
    data = "topic_id,topic\nT1,河湖生态环境保护研究\nT2,基层医疗卫生服务\nT3,航天发射\n".encode()
    r = rev.post(
        "/api/topics", data={"year": "2024"}, files={"file": ("t.csv", data)}, headers=api_csrf(rev)
    )
    assert r.status_code == 201 and r.json()["added"] == 3
    imported.state.jobs.wait_idle()
    assert len(rev.get("/api/topics?year=2024").json()) == 3
    cov = rev.get("/api/topics/coverage?year=2024").json()
    assert {t["topic_id"] for t in cov["topics"]} == {"T1", "T2", "T3"}
    assert rev.get("/api/proposals/2024/A-002").json()["topics"]
    assert "参考题目覆盖" in rev.get("/topics?year=2024").text
    bad = rev.post(
        "/api/topics", data={"year": "2024"}, files={"file": ("t.csv", b"")}, headers=api_csrf(rev)
    )
    assert bad.status_code == 422


def test_pages_render_for_every_role(imported):
    for name in ("admin", "rev", "view"):
        c = imported.client_for(name)
        assert "审核队列" in c.get("/queue").text
        page = c.get("/proposals/2024/A-002").text
        assert "模型建议" in page and "疑似重复提案" in page and "某委员" not in page
    assert imported.client_for("rev").get("/proposals/2024/NOPE").status_code == 404
    assert imported.client.get("/openapi.json").json()["paths"]["/api/suggest"]


def test_cli_user_add_and_token(tmp_path, monkeypatch):
    import argparse
    import io

    from tian.commands import user as user_cmd

    parser = argparse.ArgumentParser()
    user_cmd.register(parser.add_subparsers())
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    args = parser.parse_args(
        ["user", "--data-dir", str(tmp_path), "add", "boss", "--role", "admin", "--password-stdin"]
    )
    assert args.func(args) == 0
    args = parser.parse_args(["user", "--data-dir", str(tmp_path), "token", "boss"])
    assert args.func(args) == 0
    from tian.cli import UserError

    args = parser.parse_args(["user", "--data-dir", str(tmp_path), "token", "nobody"])
    with pytest.raises(UserError):
        args.func(args)
