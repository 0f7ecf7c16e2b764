"""Assemble the page routers."""

from __future__ import annotations

from fastapi import APIRouter

from service.pages import auth, imports, models, review

pages_router = APIRouter(include_in_schema=False)
for module in (auth, review, imports, models):
    pages_router.include_router(module.router)
