"""Users, passwords (argon2), bearer tokens, sessions and CSRF tokens.

Pages sign in with a signed session cookie (Starlette's SessionMiddleware: HttpOnly,
SameSite=Lax); the API also accepts ``Authorization: Bearer <token>``. Only a token's SHA-256
is stored. Every form POST carries the session's CSRF token in a hidden ``csrf_token`` field,
and cookie-authenticated API writes send it in the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from pwdlib import PasswordHash
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import ROLES, ApiToken, User

TOKEN_PREFIX = "tian_"
_USERNAME = re.compile(r"^[A-Za-z0-9_.\-]{2,64}$")
MIN_PASSWORD = 8

_hasher = PasswordHash.recommended()  # argon2id with the library's current parameters
# Verifying against this keeps the time of a failed sign-in the same for unknown users.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class AuthError(ValueError):
    """A user-fixable problem with a username, role, password or token."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bool(_hasher.verify(password, password_hash))
    except Exception:  # a damaged hash is a failed sign-in, never a server error
        return False


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role


def create_user(session: Session, username: str, password: str, role: str) -> User:
    """Add a user (the caller commits). Raises AuthError for a bad name, role or password."""
    if not _USERNAME.match(username):
        raise AuthError("username must be 2-64 letters, digits, '_', '.' or '-'")
    check_role(role)
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"password must have at least {MIN_PASSWORD} characters")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise AuthError(f"user {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), role=role, active=True)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this name and password, else None."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        verify_password(password, _DUMMY_HASH)
        return None
    if not verify_password(password, user.password_hash) or not user.active:
        return None
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, user: User, name: str = "") -> str:
    """A new bearer token for ``user``; the plain token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=_token_hash(token), name=name[:100]))
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a bearer token belongs to, else None."""
    row = session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == _token_hash(token), ApiToken.revoked.is_(False)
        )
    )
    if row is None or not row.user.active:
        return None
    return row.user


def csrf_token(session_data: dict[str, Any]) -> str:
    """The session's CSRF token, created on first use."""
    token = session_data.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session_data["csrf"] = token
    return token


def csrf_ok(session_data: dict[str, Any], sent: str | None) -> bool:
    """Whether ``sent`` matches the session's CSRF token (constant-time compare)."""
    expected = session_data.get("csrf")
    return bool(sent) and isinstance(expected, str) and hmac.compare_digest(expected, str(sent))


def can_write(user: User) -> bool:
    return user.role in ("admin", "reviewer")
