"""Model bundles: list, promote (hot swap without failed requests), roll back. Admins only.

Errors answer ``{"detail": {"code": "...", "message": "..."}}``: an English machine code and the
Chinese sentence the pages show.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from service.deps import AdminUser, CurrentUser, StateDep
from service.registry_runtime import ModelUnavailable, UnknownModel
from service.schemas import LiveModelOut, ModelsOut
from service.state import AppState

router = APIRouter(prefix="/api/models", tags=["models"])


def _live(state: AppState) -> dict[str, Any]:
    live = state.runtime.current
    return {
        "live": live.version if live else None,
        "kind": live.kind if live else None,
        # What a rollback would go back to, as the registry says (shared with `tian models`).
        "previous": state.runtime.rollback_target(),
        "notice": state.runtime.notice,
    }


def _error(status: int, exc: ModelUnavailable) -> HTTPException:
    return HTTPException(status, {"code": exc.code, "message": str(exc)})


@router.get("", response_model=ModelsOut, response_model_exclude_unset=True)
def list_models(state: StateDep, user: CurrentUser) -> dict[str, Any]:
    """Bundles in the registry (newest first) and the model loaded now."""
    note: str | None = None
    try:
        bundles = state.runtime.list()
    except ModelUnavailable as exc:
        bundles, note = [], str(exc)
    return {**_live(state), "bundles": bundles, "registry_notice": note}


@router.post("/{version}/promote", response_model=LiveModelOut, response_model_exclude_unset=True)
async def promote(version: str, state: StateDep, user: AdminUser) -> dict[str, Any]:
    """Load ``version`` fully, then swap it in; the previous model stays for rollback."""
    try:
        await run_in_threadpool(state.runtime.promote, version)
    except UnknownModel as exc:
        raise _error(404, exc) from None
    except ModelUnavailable as exc:
        raise _error(409, exc) from None
    return _live(state)


@router.post("/rollback", response_model=LiveModelOut, response_model_exclude_unset=True)
async def rollback(state: StateDep, user: AdminUser) -> dict[str, Any]:
    """Back to the previously live model."""
    try:
        await run_in_threadpool(state.runtime.rollback)
    except ModelUnavailable as exc:
        raise _error(409, exc) from None
    return _live(state)
