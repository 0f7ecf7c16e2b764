"""Decisions under concurrency, merges and sessions on a real PostgreSQL server (row locks)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_helpers import TOY_ROWS, Service, api_csrf, proposals_csv, running_service
from test_decision_races import _decide_in_threads

PG_URL = os.environ.get("TIAN_TEST_PG_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="TIAN_TEST_PG_URL is not set (see .ci/postgres.sh)"),
]


@pytest.fixture
def pg_imported(
    tmp_path: Path, baseline_bundle: Path, tiny_backbone_dir: Path
) -> Iterator[Service]:
    from sqlalchemy import create_engine, text

    engine = create_engine(str(PG_URL))
    with engine.begin() as conn:  # a clean schema for every test
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    with running_service(tmp_path, baseline_bundle, tiny_backbone_dir, str(PG_URL)) as svc:
        rev = svc.client_for("rev")
        f = {"file": ("p.csv", proposals_csv(TOY_ROWS))}
        assert rev.post("/api/imports", files=f, headers=api_csrf(rev)).status_code == 201
        svc.state.jobs.wait_idle()
        yield svc


def test_races_merges_sessions_and_throttle_on_postgres(pg_imported):
    values = [f"类别{i:02d}" for i in range(10)]
    _decide_in_threads(
        pg_imported.state,
        [("A-003", {"action": "set", "field_name": "category", "value": v}) for v in values],
    )
    rev = pg_imported.client_for("rev")
    chain = [
        d for d in rev.get("/api/proposals/2024/A-003/decisions").json() if d["field"] == "category"
    ]
    assert len(chain) == len(values) and chain[0]["previous_value"] is None
    for before, after in zip(chain, chain[1:], strict=False):
        assert after["previous_value"] == before["new_value"]

    _decide_in_threads(
        pg_imported.state,
        [
            ("A-001", {"action": "merge", "value": "A-002"}),
            ("A-003", {"action": "merge", "value": "A-002"}),
            ("A-004", {"action": "merge", "value": ["A-003", "A-005"]}),
        ],
    )
    groups = {
        rev.get(f"/api/proposals/2024/{p}").json()["merge_group"]
        for p in ("A-001", "A-002", "A-003", "A-004", "A-005")
    }
    assert len(groups) == 1 and None not in groups

    r = rev.post(
        "/api/proposals/2024/A-003/decisions",
        json={"action": "set", "field": "category", "value": "教育", "previous_value": "旧值"},
        headers=api_csrf(rev),
    )
    assert r.status_code == 409

    token = rev.get("/api/me").json()["csrf_token"]
    rev.post("/logout", data={"csrf_token": token})
    assert rev.get("/api/me").status_code == 401

    c = pg_imported.client
    from service_helpers import PASSWORD, csrf_of

    login = csrf_of(c.get("/login").text)
    for _ in range(5):
        c.post("/login", data={"username": "view", "password": "wrong", "csrf_token": login})
    r = c.post("/login", data={"username": "view", "password": PASSWORD, "csrf_token": login})
    assert r.status_code == 429
