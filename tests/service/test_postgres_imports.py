"""Imports and jobs on a real PostgreSQL server (run `eval "$(.ci/postgres.sh)"` first).

PostgreSQL enforces VARCHAR lengths where SQLite does not: the validator's limits keep
over-long ids out, and a database error that still happens becomes a clean rejection whose
message, job and log hold no values.
"""

from __future__ import annotations

import logging
import os

import pytest
from service_helpers import TOY_ROWS, api_csrf, proposals_csv

PG_URL = os.environ.get("TIAN_TEST_PG_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="TIAN_TEST_PG_URL is not set (see .ci/postgres.sh)"),
]
NAME = "钱秘密"


def test_over_long_id_is_a_clean_422_on_postgres(pg_service, caplog):
    rev = pg_service.client_for("rev")
    caplog.set_level(logging.INFO)
    data = ("提案号,年度,案由,提案人\n" + "X" * 2000 + f",2024,关于甲的建议,{NAME}\n").encode()
    r = rev.post("/api/imports", files={"file": ("long.csv", data)}, headers=api_csrf(rev))
    assert r.status_code == 422
    assert "超过 100 个字符的上限" in r.json()["errors"][0]["message"]
    view = pg_service.client_for("view")
    job = view.get(f"/api/jobs/{r.json()['job']}")
    for text in (r.text, job.text, caplog.text):
        assert NAME not in text and "X" * 200 not in text


def test_a_database_error_hides_its_values_on_postgres(pg_service, monkeypatch, caplog):
    """Bypass the validator: PostgreSQL itself refuses the over-long id."""
    import service.importer as importer
    from model.records import Proposal

    real = importer.read_upload

    def too_long(*args, **kwargs):
        records = real(*args, **kwargs)
        return [
            *records,
            Proposal(id="Y" * 150, title="关于乙", content="", year=2024, proposer=NAME),
        ]

    monkeypatch.setattr(importer, "read_upload", too_long)
    rev = pg_service.client_for("rev")
    caplog.set_level(logging.INFO)
    r = rev.post(
        "/api/imports", files={"file": ("p.csv", proposals_csv(TOY_ROWS))}, headers=api_csrf(rev)
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["code"] == "database"
    job = pg_service.client_for("view").get(f"/api/jobs/{r.json()['job']}").json()
    assert job["status"] == "failed"
    for text in (r.text, str(job), caplog.text):
        assert NAME not in text and "Y" * 150 not in text
    assert "StringDataRightTruncation" in caplog.text  # the log names the error type only
    assert rev.get("/api/proposals/2024/A-001").status_code == 404  # nothing half-imported


def test_jobs_are_shared_by_workers_on_postgres(pg_service):
    from service.jobs import JobRunner

    rev = pg_service.client_for("rev")
    r = rev.post(
        "/api/imports",
        files={"file": ("p.csv", proposals_csv(TOY_ROWS))},
        data={"wait": "false"},
        headers=api_csrf(rev),
    )
    assert r.status_code == 202
    other = JobRunner(pg_service.state.factory, background=False)  # a second worker
    job = other.get(r.json()["job"])
    assert job is not None and job.status == "done" and job.result["added"] == len(TOY_ROWS)
