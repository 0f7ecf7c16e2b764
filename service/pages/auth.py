"""Sign-in and sign-out pages."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.auth import authenticate, csrf_ok
from service.deps import SessionDep
from service.pages.common import render

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    # Only local paths: an open redirect would let a link send reviewers elsewhere.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


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
    if not csrf_ok(request.session, csrf_token):
        return render(
            request, "login.html", 403, next=_safe_next(next), error="页面已过期，请重新登录。"
        )
    user = authenticate(session, username.strip(), password)
    if user is None:
        return render(request, "login.html", 401, next=_safe_next(next), error="用户名或密码错误。")
    request.session.clear()  # a fresh session (and CSRF token) at every sign-in
    request.session["user_id"] = user.id
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form(default="")) -> Response:
    if csrf_ok(request.session, csrf_token):
        request.session.clear()
    return RedirectResponse("/login", status_code=303)
