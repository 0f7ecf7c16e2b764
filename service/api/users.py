"""Who am I, users (admins manage them), passwords and API tokens."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth import (
    AuthError,
    change_password,
    create_token,
    create_user,
    csrf_token,
    find_user,
    revoke_all,
    set_active,
    verify_password,
)
from service.deps import AdminUser, CurrentUser, SessionDep, StateDep
from service.models import ApiToken, User
from service.schemas import TokenCreated, TokenOut, TokenRevoked, UserOut

router = APIRouter(prefix="/api", tags=["users"])


def user_dict(u: User) -> dict[str, Any]:
    return {"username": u.username, "role": u.role, "active": u.active}


@router.get("/me", response_model=UserOut, response_model_exclude_unset=True)
def me(request: Request, user: CurrentUser) -> dict[str, Any]:
    """The signed-in user; with a session cookie also the CSRF token for API writes."""
    out = user_dict(user)
    if getattr(request.state, "auth", "") == "session":
        out["csrf_token"] = csrf_token(request.session)
    return out


class UserIn(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    # The policy (service.auth.check_password) gives the reasons; here only a hard bound.
    password: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "reviewer", "viewer"]


class PasswordIn(BaseModel):
    current: str = Field(min_length=1, max_length=200)
    new: str = Field(min_length=1, max_length=200)


class ResetIn(BaseModel):
    password: str = Field(min_length=1, max_length=200)


def _fail(session: Session, exc: AuthError, status: int = 422) -> HTTPException:
    session.rollback()
    return HTTPException(status, str(exc))


@router.get("/users", response_model=list[UserOut], response_model_exclude_unset=True)
def list_users(session: SessionDep, user: AdminUser) -> list[dict[str, Any]]:
    return [user_dict(u) for u in session.scalars(select(User).order_by(User.username))]


@router.post("/users", status_code=201, response_model=UserOut, response_model_exclude_unset=True)
def add_user(body: UserIn, session: SessionDep, user: AdminUser) -> dict[str, Any]:
    try:
        new = create_user(session, body.username, body.password, body.role)
    except AuthError as exc:
        raise _fail(session, exc) from None
    session.commit()
    return user_dict(new)


def _other(session: Session, username: str, admin: User, action: str) -> User:
    try:
        target = find_user(session, username)
    except AuthError as exc:
        raise _fail(session, exc, 404) from None
    if target.id == admin.id and action in ("disable", "revoke"):
        # An admin locking themselves out would leave nobody to undo it from the page.
        raise HTTPException(422, "不能停用或吊销自己的账号；请由另一位管理员操作")
    return target


@router.post(
    "/users/{username}/password", response_model=UserOut, response_model_exclude_unset=True
)
def reset_password(
    username: str, body: ResetIn, session: SessionDep, user: AdminUser
) -> dict[str, Any]:
    """Set another user's password; that user's sessions and tokens end."""
    target = _other(session, username, user, "password")
    try:
        change_password(session, target, body.password)
    except AuthError as exc:
        raise _fail(session, exc) from None
    session.commit()
    return user_dict(target)


@router.post(
    "/users/{username}/{action}", response_model=UserOut, response_model_exclude_unset=True
)
def manage_user(
    username: str,
    action: Literal["disable", "enable", "revoke"],
    session: SessionDep,
    user: AdminUser,
) -> dict[str, Any]:
    """Disable (ends sessions, revokes tokens), enable, or revoke every session and token."""
    target = _other(session, username, user, action)
    if action == "revoke":
        revoke_all(session, target)
    else:
        set_active(session, target, action == "enable")
    session.commit()
    return user_dict(target)


@router.post("/me/password", response_model=UserOut, response_model_exclude_unset=True)
def my_password(
    request: Request, body: PasswordIn, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Change one's own password; other sessions and all tokens end, this session stays."""
    if not verify_password(body.current, user.password_hash):
        raise HTTPException(403, "当前密码不正确")
    try:
        change_password(session, user, body.new, keep_sid=getattr(request.state, "sid", None))
    except AuthError as exc:
        raise _fail(session, exc) from None
    session.commit()
    return user_dict(user)


class TokenIn(BaseModel):
    name: str = Field(default="", max_length=100)
    days: int | None = Field(default=None, ge=1, le=3650, description="lifetime in days")


@router.post(
    "/tokens", status_code=201, response_model=TokenCreated, response_model_exclude_unset=True
)
def new_token(
    body: TokenIn, session: SessionDep, state: StateDep, user: CurrentUser
) -> dict[str, str]:
    """A new bearer token for the signed-in user (shown once); it expires after ``days``."""
    days = body.days or state.settings.token_max_age_days or None
    token = create_token(session, user, body.name, days=days)
    session.commit()
    return {"token": token}


@router.get("/tokens", response_model=list[TokenOut], response_model_exclude_unset=True)
def list_tokens(session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """The signed-in user's tokens (never the token itself)."""
    rows = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    )
    return [
        {
            "id": t.id,
            "name": t.name,
            "created_at": t.created_at.isoformat(),
            "expires_at": t.expires_at.isoformat() if t.expires_at else None,
            "revoked": t.revoked,
        }
        for t in rows
    ]


@router.post(
    "/tokens/{token_id}/revoke", response_model=TokenRevoked, response_model_exclude_unset=True
)
def revoke_token(token_id: int, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Revoke one of the signed-in user's tokens."""
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise HTTPException(404, f"没有编号为 {token_id} 的令牌")
    row.revoked = True
    session.commit()
    return {"id": row.id, "revoked": True}
