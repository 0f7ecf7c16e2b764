"""The admins' users page: add users, disable or enable them, reset passwords, revoke sign-ins."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from service.auth import AuthError, change_password, create_user, find_user, revoke_all, set_active
from service.deps import AdminUser, FormCsrf, SessionDep
from service.models import User
from service.pages.common import flash, render

router = APIRouter(include_in_schema=False)

DONE = {
    "disable": "已停用用户 {name}，其登录和 API 令牌已失效。",
    "enable": "已启用用户 {name}。",
    "revoke": "已吊销用户 {name} 的全部登录和 API 令牌。",
    "password": "已为用户 {name} 设置新密码，其原有登录和 API 令牌已失效。",
}


def _page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    status: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    users = list(session.scalars(select(User).order_by(User.username)))
    return render(request, "users.html", status, user=user, users=users, error=error)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, session: SessionDep, user: AdminUser) -> HTMLResponse:
    return _page(request, session, user)


@router.post("/admin/users", dependencies=[FormCsrf])
def add_user(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    username: str = Form(..., max_length=64),
    password: str = Form(..., max_length=200),
    role: str = Form(...),
) -> Response:
    try:
        create_user(session, username.strip(), password, role)
    except AuthError as exc:
        session.rollback()
        return _page(request, session, user, 422, f"未添加：{exc}。")
    session.commit()
    flash(request, f"已添加用户 {username.strip()}。")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{username}/{action}", dependencies=[FormCsrf])
def manage_user(
    request: Request,
    username: str,
    action: str,
    session: SessionDep,
    user: AdminUser,
    password: str = Form(default="", max_length=200),
) -> Response:
    try:
        target = find_user(session, username)
        if action not in DONE:
            raise AuthError(f"未知操作 {action!r}")
        if target.id == user.id and action in ("disable", "revoke"):
            raise AuthError("不能停用或吊销自己的账号；请由另一位管理员操作")
        if action == "password":
            change_password(session, target, password)
        elif action == "revoke":
            revoke_all(session, target)
        else:
            set_active(session, target, action == "enable")
    except AuthError as exc:
        session.rollback()
        return _page(request, session, user, 422, f"操作未完成：{exc}。")
    session.commit()
    flash(request, DONE[action].format(name=target.username))
    return RedirectResponse("/admin/users", status_code=303)
