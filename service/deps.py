"""Request dependencies as ``Annotated`` aliases: the database session and the signed-in user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from service.auth import can_write, csrf_ok, user_for_session, user_for_token
from service.models import User
from service.state import AppState

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# The only routes a ``member`` (a 委员 checking drafts) may use: the office's data is not theirs.
MEMBER_PATHS = frozenset({"/drafts", "/api/drafts/check", "/api/me", "/account/password"})


class NotAuthenticated(Exception):
    """No valid sign-in: pages redirect to the sign-in page, the API answers 401."""


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.tian
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_db(state: StateDep) -> Iterator[Session]:
    """One session per request; routes commit what they change."""
    with state.factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]


def current_user(request: Request, session: SessionDep) -> User:
    """The user of a bearer token, else of the session cookie.

    Cookie-authenticated API writes must also send the session's CSRF token in
    ``X-CSRF-Token`` (a bearer token cannot be sent by another site, a cookie can).
    """
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        user = user_for_token(session, header[7:].strip())
        if user is None:
            raise HTTPException(
                401, "invalid, expired or revoked token", {"WWW-Authenticate": "Bearer"}
            )
        request.state.auth = "token"
        return member_gate(request, user)
    sid = request.session.get("sid")
    # The session id is looked up on every request, so logout and revocation take effect now.
    user = user_for_session(session, sid) if isinstance(sid, str) else None
    if user is None:
        request.session.pop("sid", None)
        raise NotAuthenticated()
    request.state.auth = "session"
    request.state.sid = sid
    if (
        request.method in UNSAFE
        and request.url.path.startswith("/api/")
        and not csrf_ok(request.session, request.headers.get("x-csrf-token"))
    ):
        raise HTTPException(403, "missing or wrong CSRF token (send it in X-CSRF-Token)")
    return member_gate(request, user)


def member_gate(request: Request, user: User) -> User:
    """Refuse a ``member`` everything but the draft check (the home page leads there)."""
    if user.role != "member" or request.url.path in MEMBER_PATHS:
        return user
    # The pages other pages send people to (home, queue after a password change) lead on.
    if request.url.path in ("/", "/queue") and request.method == "GET":
        raise HTTPException(303, "see the draft check", {"Location": "/drafts"})
    raise HTTPException(403, "委员账号只能使用提案预审（/drafts）。")


CurrentUser = Annotated[User, Depends(current_user)]


def writer(user: CurrentUser) -> User:
    """Reviewers and admins; viewers may only read."""
    if not can_write(user):
        raise HTTPException(403, "viewers cannot change anything")
    return user


WriterUser = Annotated[User, Depends(writer)]


def admin(user: CurrentUser) -> User:
    if user.role != "admin":
        raise HTTPException(403, "only an admin can do this")
    return user


AdminUser = Annotated[User, Depends(admin)]


async def form_csrf(request: Request) -> None:
    """Reject a form POST whose ``csrf_token`` field does not match the session's token."""
    form = await request.form()
    sent = form.get("csrf_token")
    if not csrf_ok(request.session, sent if isinstance(sent, str) else None):
        raise HTTPException(403, "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试。")


FormCsrf = Depends(form_csrf)
