"""ASGI middleware that checks a request's size and sign-in before its body is read.

Without it, an anonymous client could make the server write a gigabyte multipart body to a
temporary file before the route's 401 or 403. Here an upload route (:data:`UPLOAD_PATHS`)
answers 401 / 403 before a single body byte is received, any request whose ``Content-Length``
is over its limit gets 413 at once, and a body sent without a length (chunked) is counted as it
streams and cut off with 413 as soon as it passes the limit.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth import can_write, user_for_session, user_for_token

# Routes that take file uploads: only a signed-in reviewer or admin may send them a body.
UPLOAD_PATHS = frozenset({"/api/imports", "/import", "/api/topics"})
# Room for the multipart boundaries and the small form fields around the file.
MULTIPART_OVERHEAD = 64 * 1024


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its limit."""


class UploadGuard:
    """Size limits for every request and sign-in checks for uploads, before the body is read.

    Must sit inside Starlette's SessionMiddleware (so the session cookie is decoded) and reads
    the database through ``app.state.tian`` as the routes do.
    """

    def __init__(self, app: ASGIApp, *, max_upload_bytes: int, max_body_bytes: int) -> None:
        self.app = app
        self.max_upload = max_upload_bytes + MULTIPART_OVERHEAD
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        upload = scope["method"] == "POST" and path in UPLOAD_PATHS
        limit = self.max_upload if upload else self.max_body
        length = Headers(scope=scope).get("content-length")
        if length is not None:
            if not length.isdigit():
                await _send(scope, receive, send, _error(path, 400, "Content-Length 无效"))
                return
            if int(length) > limit:
                await _send(scope, receive, send, _too_large(path, limit))
                return
        if upload:
            refusal = await run_in_threadpool(_refusal, scope)
            if refusal is not None:
                await _send(scope, receive, send, refusal)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(413, _limit_text(limit))
            return message

        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if started:
                raise
            await _send(scope, receive, send, _too_large(path, limit))


def _limit_text(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"请求内容超过 {limit // (1024 * 1024)} MB 的上限"
    return f"请求内容超过 {max(limit // 1024, 1)} KB 的上限"


def _too_large(path: str, limit: int) -> Response:
    return _error(path, 413, _limit_text(limit))


def _error(path: str, status: int, message: str) -> Response:
    if path.startswith("/api/"):
        return JSONResponse({"detail": message}, status_code=status)
    return PlainTextResponse(message, status_code=status)


def _refusal(scope: Scope) -> Response | None:
    """401 / 403 for an upload from someone who may not send one, else None (runs in a thread)."""
    path: str = scope["path"]
    state: Any = scope["app"].state.tian
    headers = Headers(scope=scope)
    bearer = headers.get("authorization", "")
    with state.factory() as db:
        if bearer.lower().startswith("bearer "):
            user = user_for_token(db, bearer[7:].strip())
        else:
            sid = scope.get("session", {}).get("sid")
            user = user_for_session(db, sid) if isinstance(sid, str) else None
        role_ok = user is not None and can_write(user)
    if user is None:
        if path.startswith("/api/"):
            return JSONResponse(
                {"detail": "sign in first (session cookie or bearer token)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return RedirectResponse(f"/login?next={quote(path)}", status_code=303)
    if not role_ok:
        return _error(
            path,
            403,
            "只读用户不能上传文件"
            if not path.startswith("/api/")
            else "viewers cannot change anything",
        )
    return None


async def _send(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
    # The body is never read: the server closes the connection after this answer.
    response.headers["Connection"] = "close"
    await response(scope, receive, send)
