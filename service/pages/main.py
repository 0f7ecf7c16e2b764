"""Assemble the page routers."""

from __future__ import annotations

from fastapi import APIRouter

from service.pages import auth, drafts, groups, imports, models, review, topics, users

pages_router = APIRouter(include_in_schema=False)
for module in (auth, review, groups, topics, imports, models, users, drafts):
    pages_router.include_router(module.router)
