"""What `tian serve --import --topics --demo-admin` does before serving (idempotent)."""

from __future__ import annotations

import pytest
from service_helpers import TOY_ROWS, proposals_csv


def test_demo_admin_is_reset_at_each_start(service):
    from service.auth import authenticate
    from service.bootstrap import DEMO_USER, ensure_demo_admin

    uid, first = ensure_demo_admin(service.state)
    uid2, second = ensure_demo_admin(service.state)
    assert uid == uid2 and first != second and len(second) >= 12
    with service.state.factory() as s:
        assert authenticate(s, DEMO_USER, first) is None
        user = authenticate(s, DEMO_USER, second)
        assert user is not None and user.role == "admin"


def test_no_demo_admin_in_production(service, monkeypatch):
    from service.bootstrap import ensure_demo_admin

    monkeypatch.setattr(service.state.settings, "environment", "production")
    with pytest.raises(ValueError, match="development"):
        ensure_demo_admin(service.state)


def test_prepare_imports_topics_and_analyses_once(service, tmp_path):
    from sqlalchemy import func, select

    from service.bootstrap import ensure_demo_admin, prepare
    from service.models import Proposal, Suggestion, Topic

    data = tmp_path / "p.csv"
    data.write_bytes(proposals_csv(TOY_ROWS))
    topics = tmp_path / "t.csv"
    topics.write_text("topic_id,topic\nT1,关于河湖生态环境保护的研究\n", encoding="utf-8")
    uid, _ = ensure_demo_admin(service.state)
    out = prepare(service.state, user_id=uid, imports=[data], topics=topics, topics_year=2024)
    assert out["imports"][0]["added"] == 5 and out["analysis"]["suggestions"] == 5
    again = prepare(service.state, user_id=uid, imports=[data], topics=topics, topics_year=2024)
    assert again["imports"][0]["added"] == 0 and again["analysis"]["suggestions"] == 0
    with service.state.factory() as s:
        assert s.scalar(select(func.count()).select_from(Proposal)) == 5
        assert s.scalar(select(func.count()).select_from(Topic)) == 1
        assert s.scalar(select(func.count()).select_from(Suggestion)) == 5
    with pytest.raises(ValueError, match="topics-year"):
        prepare(service.state, user_id=uid, topics=topics)


def test_serve_refuses_bad_arguments(tmp_path, monkeypatch):
    import argparse

    from tian.cli import UserError
    from tian.commands import serve

    monkeypatch.setenv("TIAN_DATA_DIR", str(tmp_path / "var"))
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--import", str(tmp_path / "missing.csv")])
    with pytest.raises(UserError, match="no such file"):
        args.func(args)
    topics = tmp_path / "t.csv"
    topics.write_text("topic_id,topic\nT1,x\n", encoding="utf-8")
    args = parser.parse_args(["serve", "--topics", str(topics)])
    with pytest.raises(UserError, match="--topics-year"):
        args.func(args)
