"""Assemble the API routers."""

from __future__ import annotations

from fastapi import APIRouter

from service.api import (
    decisions,
    drafts,
    duplicates,
    exports,
    health,
    imports,
    models,
    proposals,
    suggest,
    topics,
    users,
)

api_router = APIRouter()
for module in (
    health,
    suggest,
    proposals,
    decisions,
    imports,
    duplicates,
    topics,
    exports,
    models,
    users,
    drafts,
):
    api_router.include_router(module.router)
