"""The same storage paths on a real PostgreSQL server (run `eval "$(.ci/postgres.sh)"` first)."""

from __future__ import annotations

import os

import pytest
from service_helpers import TOY_ROWS, api_csrf, proposals_csv

PG_URL = os.environ.get("TIAN_TEST_PG_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="TIAN_TEST_PG_URL is not set (see .ci/postgres.sh)"),
]


def test_import_decide_export_on_postgres(pg_service):
    rev = pg_service.client_for("rev")
    f = {"file": ("p.csv", proposals_csv(TOY_ROWS))}
    assert rev.post("/api/imports", files=f, headers=api_csrf(rev)).status_code == 201
    assert rev.post("/api/imports", files=f, headers=api_csrf(rev)).json()["added"] == 0
    pg_service.state.jobs.wait_idle()
    bad = {"file": ("b.csv", proposals_csv([("Z1", "", "")]))}
    assert rev.post("/api/imports", files=bad, headers=api_csrf(rev)).status_code == 422
    r = rev.post(
        "/api/proposals/2024/A-002/decisions", json={"action": "accept"}, headers=api_csrf(rev)
    )
    assert r.status_code == 201
    assert (
        rev.get("/api/proposals", params={"year": 2024, "status": "reviewed"}).json()["total"] == 1
    )
    assert rev.get("/api/proposals/2024/A-002/duplicates").json()["duplicates"]
    assert rev.get("/api/exports/2024/assignments.xlsx").status_code == 200
    assert pg_service.client.get("/readyz").json()["database"] == "ok"


def test_decisions_trigger_on_postgres(pg_service):
    from sqlalchemy import text

    rev = pg_service.client_for("rev")
    rev.post(
        "/api/imports", files={"file": ("p.csv", proposals_csv(TOY_ROWS))}, headers=api_csrf(rev)
    )
    rev.post(
        "/api/proposals/2024/A-001/decisions", json={"action": "accept"}, headers=api_csrf(rev)
    )
    with pg_service.state.engine.connect() as conn:
        for sql in ("UPDATE decisions SET note = 'x'", "DELETE FROM decisions"):
            with pytest.raises(Exception, match="append-only"):
                conn.execute(text(sql))
            conn.rollback()
