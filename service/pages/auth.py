"""Sign-in, sign-out and password change pages."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.auth import (
    AuthError,
    authenticate,
    change_password,
    csrf_ok,
    end_session,
    record_failure,
    record_success,
    signin_wait,
    start_session,
    verify_password,
)
from service.deps import CurrentUser, FormCsrf, SessionDep
from service.pages.common import flash, render

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect would let a link send reviewers elsewhere.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def client_address(request: Request) -> str:
    """The peer's address, the key of per-address sign-in throttling."""
    return (request.client.host if request.client else "") or "unknown"


def wait_text(seconds: int) -> str:
    """A lockout's remaining time in words."""
    minutes = (seconds + 59) // 60
    return f"{minutes} 分钟" if minutes > 1 else "1 分钟"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", next=_safe_next(next), error=None)


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    username: str = Form(..., max_length=64),
    password: str = Form(..., max_length=200),
    csrf_token: str = Form(default=""),
    next: str = Form(default="/"),
) -> Response:
    target = _safe_next(next)
    if not csrf_ok(request.session, csrf_token):
        return render(request, "login.html", 403, next=target, error="页面已过期，请重新登录。")
    name, address = username.strip(), client_address(request)
    wait = signin_wait(session, name, address)
    if wait:
        # Locked: the password is not even checked, so guessing gains nothing.
        response = render(
            request,
            "login.html",
            429,
            next=target,
            error=f"登录失败次数过多，已暂时锁定，请 {wait_text(wait)}后再试。",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    user = authenticate(session, name, password)
    if user is None:
        record_failure(session, name, address)
        session.commit()
        return render(request, "login.html", 401, next=target, error="用户名或密码错误。")
    record_success(session, name, address)
    sid = start_session(session, user, request.app.state.tian.settings.session_max_age_s)
    session.commit()
    request.session.clear()  # a fresh session (and CSRF token) at every sign-in
    request.session["sid"] = sid
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request, session: SessionDep, csrf_token: str = Form(default="")) -> Response:
    if csrf_ok(request.session, csrf_token):
        sid = request.session.get("sid")
        if isinstance(sid, str):
            end_session(session, sid)  # the old cookie no longer signs anyone in
            session.commit()
        request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/account/password", response_class=HTMLResponse)
def password_page(request: Request, user: CurrentUser) -> HTMLResponse:
    return render(request, "password.html", user=user, error=None)


@router.post("/account/password", dependencies=[FormCsrf])
def password_change(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    current: str = Form(..., max_length=200),
    new: str = Form(..., max_length=200),
    again: str = Form(..., max_length=200),
) -> Response:
    def fail(message: str, status: int = 422) -> HTMLResponse:
        return render(request, "password.html", status, user=user, error=message)

    if not verify_password(current, user.password_hash):
        return fail("当前密码不正确。", 403)
    if new != again:
        return fail("两次输入的新密码不一致。")
    try:
        change_password(session, user, new, keep_sid=getattr(request.state, "sid", None))
    except AuthError as exc:
        session.rollback()
        return fail(f"{exc}。")
    session.commit()
    flash(request, "已保存新密码；其他设备上的登录和 API 令牌已失效。")
    return RedirectResponse("/queue", status_code=303)
