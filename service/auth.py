"""Users, passwords (argon2), sessions, bearer tokens, sign-in throttling and CSRF tokens.

Pages sign in with a session: the signed cookie (Starlette's SessionMiddleware: HttpOnly,
SameSite=Lax) holds a random session id, and the database holds its SHA-256 with an expiry
(:class:`service.models.AuthSession`). Every request looks the session up, so logout, a
password change, disabling a user and ``tian user revoke`` end sessions at once, in every
worker. The API also accepts ``Authorization: Bearer <token>``; only a token's SHA-256 is
stored, and tokens expire and can be revoked. Every form POST carries the session's CSRF token
in a hidden ``csrf_token`` field, and cookie-authenticated API writes send it in the
``X-CSRF-Token`` header.

Sign-in is throttled in the database (shared by all workers): :data:`PAIR_LIMIT` failures of
one account from one address within :data:`WINDOW` lock that pair, for a delay that doubles
with each lockout; an address failing on many accounts, or an account failing from many
addresses, is locked the same way at a higher count. Passwords follow :func:`check_password`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from typing import Any

from pwdlib import PasswordHash
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.models import ROLES, ApiToken, AuthSession, SigninFailure, User, utcnow

TOKEN_PREFIX = "tian_"
_USERNAME = re.compile(r"^[A-Za-z0-9_.\-]{2,64}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 200
# zxcvbn's score (0-4): below 3 means a guess-list or pattern attack finds it quickly.
MIN_STRENGTH = 3

WINDOW = dt.timedelta(minutes=15)
PAIR_LIMIT = 5  # failures of one account from one address
WIDE_LIMIT = 20  # failures from one address (any account) or of one account (any address)
FIRST_LOCK = dt.timedelta(minutes=1)
MAX_LOCK = dt.timedelta(hours=1)
ANY = "*"

_hasher = PasswordHash.recommended()  # argon2id with the library's current parameters
# Verifying against this keeps the time of a failed sign-in the same for unknown users.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class AuthError(ValueError):
    """A user-fixable problem with a username, role, password or token (message in Chinese)."""


def hash_password(password: str) -> str:
    """The argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (a damaged hash never matches)."""
    try:
        return bool(_hasher.verify(password, password_hash))
    except Exception:  # a damaged hash is a failed sign-in, never a server error
        return False


def check_role(role: str) -> str:
    """``role`` when it is one of :data:`ROLES`, else AuthError."""
    if role not in ROLES:
        raise AuthError(f"未知角色 {role!r}；可用 {', '.join(ROLES)}")
    return role


def check_password(password: str, username: str) -> None:
    """Refuse a weak password: under 12 characters, all digits, the user name, or guessable.

    "Guessable" is zxcvbn's estimate (common-password lists, keyboard patterns, repeats and
    the user name); the message never repeats the password.
    """
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"密码至少需要 {MIN_PASSWORD} 个字符")
    if len(password) > MAX_PASSWORD:
        raise AuthError(f"密码不能超过 {MAX_PASSWORD} 个字符")
    if password.isdigit():
        raise AuthError("密码不能全是数字")
    if username and username.lower() in password.lower():
        raise AuthError("密码不能包含用户名")
    from zxcvbn import zxcvbn

    # zxcvbn's cost grows with length; the first 100 characters decide the estimate.
    if zxcvbn(password[:100], user_inputs=[username])["score"] < MIN_STRENGTH:
        raise AuthError("密码太常见或太容易猜到，请换一个更长、更不规则的密码")


def create_user(session: Session, username: str, password: str, role: str) -> User:
    """Add a user (the caller commits). Raises AuthError for a bad name, role or password."""
    if not _USERNAME.match(username):
        raise AuthError("用户名应为 2-64 个字母、数字、'_'、'.' 或 '-'")
    check_role(role)
    check_password(password, username)
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise AuthError(f"用户 {username!r} 已存在")
    user = User(username=username, password_hash=hash_password(password), role=role, active=True)
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, username: str) -> User:
    """The user called ``username``, else AuthError."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise AuthError(f"没有用户 {username!r}")
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


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


# --- sessions ---------------------------------------------------------------------------


def start_session(session: Session, user: User, max_age_s: int) -> str:
    """A new server-side session for ``user``; returns the id to keep in the cookie.

    Also forgets sessions that expired a day ago and sign-in failures nobody is locked by.
    """
    now = utcnow()
    session.execute(delete(AuthSession).where(AuthSession.expires_at < now - dt.timedelta(days=1)))
    session.execute(
        delete(SigninFailure).where(
            SigninFailure.first_at < now - WINDOW,
            (SigninFailure.locked_until.is_(None)) | (SigninFailure.locked_until < now - MAX_LOCK),
        )
    )
    sid = secrets.token_urlsafe(32)
    session.add(
        AuthSession(
            sid_hash=_digest(sid),
            user_id=user.id,
            expires_at=utcnow() + dt.timedelta(seconds=max_age_s),
        )
    )
    session.flush()
    return sid


def user_for_session(session: Session, sid: str) -> User | None:
    """The active user of an unexpired, unrevoked session, else None."""
    row = session.scalar(
        select(AuthSession).where(
            AuthSession.sid_hash == _digest(sid),
            AuthSession.revoked.is_(False),
            AuthSession.expires_at > utcnow(),
        )
    )
    if row is None:
        return None
    user = session.get(User, row.user_id)
    return user if user is not None and user.active else None


def end_session(session: Session, sid: str) -> None:
    """Revoke one session (logout)."""
    session.execute(
        update(AuthSession).where(AuthSession.sid_hash == _digest(sid)).values(revoked=True)
    )


def end_sessions(session: Session, user: User, keep_sid: str | None = None) -> None:
    """Revoke every session of ``user`` (except ``keep_sid``, the one making the change)."""
    query = update(AuthSession).where(AuthSession.user_id == user.id)
    if keep_sid:
        query = query.where(AuthSession.sid_hash != _digest(keep_sid))
    session.execute(query.values(revoked=True))


# --- tokens -----------------------------------------------------------------------------


def create_token(session: Session, user: User, name: str = "", days: int | None = None) -> str:
    """A new bearer token for ``user``; the plain token is returned once and never stored.

    ``days``: lifetime (None: until revoked).
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(days=days) if days else None
    session.add(
        ApiToken(user_id=user.id, token_hash=_digest(token), name=name[:100], expires_at=expires)
    )
    session.flush()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    """The active user an unexpired, unrevoked bearer token belongs to, else None."""
    row = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _digest(token), ApiToken.revoked.is_(False))
    )
    if row is None or not row.user.active:
        return None
    if row.expires_at is not None and _aware(row.expires_at) <= utcnow():
        return None
    return row.user


def revoke_tokens(session: Session, user: User) -> None:
    """Revoke every bearer token of ``user``."""
    session.execute(update(ApiToken).where(ApiToken.user_id == user.id).values(revoked=True))


def revoke_all(session: Session, user: User) -> None:
    """End every session and revoke every token of ``user`` (a stolen sign-in, say)."""
    end_sessions(session, user)
    revoke_tokens(session, user)


def set_active(session: Session, user: User, active: bool) -> None:
    """Enable or disable ``user``; disabling also ends its sessions and revokes its tokens."""
    user.active = active
    if not active:
        revoke_all(session, user)
    session.flush()


def change_password(
    session: Session, user: User, new_password: str, keep_sid: str | None = None
) -> None:
    """Set a new password (policy-checked); ends the other sessions and revokes the tokens."""
    check_password(new_password, user.username)
    user.password_hash = hash_password(new_password)
    end_sessions(session, user, keep_sid)
    revoke_tokens(session, user)
    session.flush()


# --- sign-in throttling -----------------------------------------------------------------


def _keys(username: str, address: str) -> list[tuple[str, str, int]]:
    username, address = username[:64], address[:64]
    return [
        (username, address, PAIR_LIMIT),
        (ANY, address, WIDE_LIMIT),
        (username, ANY, WIDE_LIMIT),
    ]


def signin_wait(
    session: Session, username: str, address: str, now: dt.datetime | None = None
) -> int:
    """Seconds until ``username`` may try to sign in from ``address`` again (0: now)."""
    now = now or utcnow()
    wait = 0.0
    for user_key, addr_key, _ in _keys(username, address):
        row = session.scalar(
            select(SigninFailure).where(
                SigninFailure.username == user_key, SigninFailure.address == addr_key
            )
        )
        if row is not None and row.locked_until is not None:
            wait = max(wait, (_aware(row.locked_until) - now).total_seconds())
    return int(wait + 0.999) if wait > 0 else 0


def record_failure(
    session: Session, username: str, address: str, now: dt.datetime | None = None
) -> None:
    """Count a failed sign-in; a key reaching its limit within the window is locked."""
    now = now or utcnow()
    for user_key, addr_key, limit in _keys(username, address):
        for attempt in range(2):  # a second worker may insert the same key at the same time
            try:
                with session.begin_nested():
                    _count(session, user_key, addr_key, limit, now)
                break
            except IntegrityError:
                if attempt:
                    raise


def _count(session: Session, user_key: str, addr_key: str, limit: int, now: dt.datetime) -> None:
    row = session.scalar(
        select(SigninFailure)
        .where(SigninFailure.username == user_key, SigninFailure.address == addr_key)
        .with_for_update()
    )
    if row is None:
        row = SigninFailure(username=user_key, address=addr_key, failures=0, lockouts=0)
        row.first_at = now
        session.add(row)
    elif now - _aware(row.first_at) > WINDOW:
        row.failures, row.first_at = 0, now
    row.failures += 1
    if row.failures >= limit:
        # The delay doubles with each lockout of this key: 1, 2, 4 ... 60 minutes.
        delay = min(FIRST_LOCK * (2 ** min(row.lockouts, 12)), MAX_LOCK)
        row.lockouts += 1
        row.locked_until = now + delay
        row.failures, row.first_at = 0, now
    session.flush()


def record_success(session: Session, username: str, address: str) -> None:
    """Forget the failures of this account from this address after a good sign-in."""
    session.execute(
        delete(SigninFailure).where(
            SigninFailure.username == username[:64], SigninFailure.address == address[:64]
        )
    )


# --- CSRF -------------------------------------------------------------------------------


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
    """Reviewers and admins may change things; viewers only read."""
    return user.role in ("admin", "reviewer")
