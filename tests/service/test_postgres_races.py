"""Decisions under concurrency, merges and sessions on a real PostgreSQL server (row locks)."""

from __future__ import annotations

import os

import pytest
from service_helpers import TOY_ROWS, Service, api_csrf, proposals_csv
from test_decision_races import _decide_in_threads

PG_URL = os.environ.get("TIAN_TEST_PG_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="TIAN_TEST_PG_URL is not set (see .ci/postgres.sh)"),
]


@pytest.fixture
def pg_imported(pg_service: Service) -> Service:
    """The PostgreSQL service with the toy rows imported and analysed."""
    rev = pg_service.client_for("rev")
    f = {"file": ("p.csv", proposals_csv(TOY_ROWS))}
    assert rev.post("/api/imports", files=f, headers=api_csrf(rev)).status_code == 201
    pg_service.state.jobs.wait_idle()
    return pg_service


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
