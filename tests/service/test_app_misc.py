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
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]  # no temp file left


def _schema(engine) -> dict:
    """Every table's columns, indexes, unique constraints and foreign keys, as plain data."""
    from sqlalchemy import inspect

    insp = inspect(engine)
    return {
        table: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)
            ],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table)
            ),
            "unique": sorted(
                str(sorted(u["column_names"])) for u in insp.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(str(sorted(fk.items())) for fk in insp.get_foreign_keys(table)),
        }
        for table in insp.get_table_names()
    }


def test_migrations_are_idempotent(service):
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from service.db import MIGRATIONS, upgrade

    engine = service.state.engine
    upgrade(engine)
    before = _schema(engine)
    upgrade(engine)
    assert _schema(engine) == before
    assert {"alembic_version", "proposals"} <= set(before)
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert versions == [ScriptDirectory(str(MIGRATIONS)).get_current_head()]


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
    monkeypatch.setattr("sys.stdin", io.StringIO("Chief-long-password-7\n"))
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


def test_cli_user_disable_enable_passwd_revoke(tmp_path, monkeypatch, capsys):
    import argparse
    import io

    from sqlalchemy import select

    from service.auth import user_for_token
    from service.db import make_engine, make_session_factory
    from service.models import User
    from tian.cli import UserError
    from tian.commands import user as user_cmd

    parser = argparse.ArgumentParser()
    user_cmd.register(parser.add_subparsers())

    def run(*argv: str) -> int:
        args = parser.parse_args(["user", "--data-dir", str(tmp_path), *argv])
        return int(args.func(args))

    monkeypatch.setattr("sys.stdin", io.StringIO("Chief-long-password-7\n"))
    run("add", "lead", "--password-stdin")
    capsys.readouterr()
    run("token", "lead", "--days", "30")
    token = capsys.readouterr().out.strip()
    factory = make_session_factory(make_engine(f"sqlite:///{(tmp_path / 'tian.db').resolve()}"))

    def token_works() -> bool:
        with factory() as s:
            return user_for_token(s, token) is not None

    assert token_works()
    assert run("disable", "lead") == 0 and not token_works()
    with factory() as s:
        assert s.scalar(select(User.active).where(User.username == "lead")) is False
    assert run("enable", "lead") == 0
    with factory() as s:
        assert s.scalar(select(User.active).where(User.username == "lead")) is True
    run("token", "lead")
    token = capsys.readouterr().out.strip()
    assert token_works() and run("revoke", "lead") == 0 and not token_works()
    monkeypatch.setattr("sys.stdin", io.StringIO("1234567890123\n"))
    with pytest.raises(UserError, match="数字"):
        run("passwd", "lead", "--password-stdin")
    monkeypatch.setattr("sys.stdin", io.StringIO("Brand-new-passphrase-8\n"))
    assert run("passwd", "lead", "--password-stdin") == 0
    with pytest.raises(UserError):
        run("disable", "nobody")
