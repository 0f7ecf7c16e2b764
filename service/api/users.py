"""Who am I, users (admins manage them) and API tokens."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from service.auth import AuthError, create_token, create_user, csrf_token
from service.deps import AdminUser, CurrentUser, SessionDep
from service.models import User

router = APIRouter(prefix="/api", tags=["users"])


def user_dict(u: User) -> dict[str, Any]:
    return {"username": u.username, "role": u.role, "active": u.active}


@router.get("/me")
def me(request: Request, user: CurrentUser) -> dict[str, Any]:
    """The signed-in user; with a session cookie also the CSRF token for API writes."""
    out = user_dict(user)
    if getattr(request.state, "auth", "") == "session":
        out["csrf_token"] = csrf_token(request.session)
    return out


class UserIn(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=8, max_length=200)
    role: Literal["admin", "reviewer", "viewer"]


@router.get("/users")
def list_users(session: SessionDep, user: AdminUser) -> list[dict[str, Any]]:
    return [user_dict(u) for u in session.scalars(select(User).order_by(User.username))]


@router.post("/users", status_code=201)
def add_user(body: UserIn, session: SessionDep, user: AdminUser) -> dict[str, Any]:
    try:
        new = create_user(session, body.username, body.password, body.role)
    except AuthError as exc:
        session.rollback()
        raise HTTPException(422, str(exc)) from None
    session.commit()
    return user_dict(new)


class TokenIn(BaseModel):
    name: str = Field(default="", max_length=100)


@router.post("/tokens", status_code=201)
def new_token(body: TokenIn, session: SessionDep, user: CurrentUser) -> dict[str, str]:
    """A new bearer token for the signed-in user (shown once)."""
    token = create_token(session, user, body.name)
    session.commit()
    return {"token": token}
