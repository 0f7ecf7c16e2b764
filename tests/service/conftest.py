"""Service fixtures: a temporary SQLite database, a tiny baseline bundle, signed-in clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from service_helpers import Service, running_service


@pytest.fixture(scope="session")
def baseline_bundle(tmp_path_factory: pytest.TempPathFactory, toy_proposals: list) -> Path:
    """A baseline bundle trained in-process on the toy proposals (version ``toy-1``)."""
    from model.bundle import save_bundle
    from training.baseline import fit_baseline

    out = tmp_path_factory.mktemp("bundles") / "toy-1"
    save_bundle(fit_baseline(toy_proposals), out, {"version": "toy-1"})
    return out


@pytest.fixture(scope="session")
def baseline_bundle_2(tmp_path_factory: pytest.TempPathFactory, toy_proposals: list) -> Path:
    """A second bundle (trained on fewer rows) to promote and roll back."""
    from model.bundle import save_bundle
    from training.baseline import fit_baseline

    out = tmp_path_factory.mktemp("bundles") / "toy-2"
    save_bundle(fit_baseline(toy_proposals[:40]), out, {"version": "toy-2"})
    return out


@pytest.fixture
def service(
    tmp_path: Path, baseline_bundle: Path, tiny_backbone_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    """The app on a fresh SQLite database, jobs inline, the toy bundle live, tiny encoder."""
    for var in ("TIAN_DB_URL", "TIAN_SECRET_KEY", "TIAN_ENVIRONMENT"):
        monkeypatch.delenv(var, raising=False)
    with running_service(tmp_path, baseline_bundle, tiny_backbone_dir) as svc:
        yield svc


_stop_pg = None


def pytest_configure(config: pytest.Config) -> None:
    """Markers; and a throwaway PostgreSQL cluster when its binaries exist and none is given."""
    global _stop_pg
    import os

    import pg_cluster

    if not os.environ.get("TIAN_TEST_PG_URL") and os.environ.get("TIAN_TEST_NO_PG") != "1":
        started = pg_cluster.start()
        if started is not None:
            os.environ["TIAN_TEST_PG_URL"], _stop_pg = started
    config.addinivalue_line(
        "markers", "postgres: needs a PostgreSQL server (TIAN_TEST_PG_URL); skipped without"
    )
    config.addinivalue_line(
        "markers", "browser: drives headless Chromium (/usr/bin/chromium); skipped without"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    if _stop_pg is not None:
        _stop_pg()


@pytest.fixture
def pg_service(tmp_path: Path, baseline_bundle: Path, tiny_backbone_dir: Path) -> Iterator[Service]:
    """The app on the test PostgreSQL server (TIAN_TEST_PG_URL), on a freshly emptied schema."""
    import os

    from sqlalchemy import create_engine, text

    url = os.environ.get("TIAN_TEST_PG_URL")
    if not url:
        pytest.skip("TIAN_TEST_PG_URL is not set and no PostgreSQL binaries were found")
    engine = create_engine(url)
    with engine.begin() as conn:  # a clean schema for every test
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    with running_service(tmp_path, baseline_bundle, tiny_backbone_dir, url) as svc:
        yield svc


@pytest.fixture
def imported(service: Service) -> Service:
    """The service with TOY_ROWS imported for 2024 and analysed."""
    from service_helpers import TOY_ROWS, api_csrf, proposals_csv

    rev = service.client_for("rev")
    r = rev.post(
        "/api/imports", files={"file": ("p.csv", proposals_csv(TOY_ROWS))}, headers=api_csrf(rev)
    )
    assert r.status_code == 201, r.text
    service.state.jobs.wait_idle()
    return service


@pytest.fixture(autouse=True, scope="session")
def _fast_argon2() -> Iterator[None]:
    """Cheap argon2id parameters in tests (the product keeps the library's defaults)."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    import service.auth as auth

    saved = auth._hasher
    auth._hasher = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    yield
    auth._hasher = saved
