"""Health (process is up) and readiness (database reachable, model loaded or knowingly none)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.db import ping
from service.deps import StateDep
from service.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
def healthz() -> dict[str, str]:
    """Always ok while the process serves requests."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "the database does not answer"}},
)
def readyz(state: StateDep) -> JSONResponse:
    """503 until the database answers; reports the live model or that none is deployed."""
    db_ok = ping(state.engine)
    live = state.runtime.current
    body = {
        "status": "ready" if db_ok else "not ready",
        "database": "ok" if db_ok else "unreachable",
        "model": live.version if live else None,
        "notice": state.runtime.notice,
    }
    return JSONResponse(body, status_code=200 if db_ok else 503)
