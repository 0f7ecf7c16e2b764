"""Template rendering shared by the pages."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from service.auth import csrf_token

templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))

ROLE_TEXT = {"admin": "管理员", "reviewer": "审核员", "viewer": "只读", "member": "委员（预审）"}
FIELD_TEXT = {
    "category": "类别",
    "main_unit": "主办单位",
    "co_units": "协办单位",
    "merge_group": "并案组",
    "topic": "参考题目",
}
ACTION_TEXT = {"accept": "采纳建议", "set": "修改", "merge": "并案", "unmerge": "取消并案"}
templates.env.globals.update(ROLE_TEXT=ROLE_TEXT, FIELD_TEXT=FIELD_TEXT, ACTION_TEXT=ACTION_TEXT)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def show(value: object) -> str:
    """A decision value for people: lists joined with 、, nothing as a dash."""
    if value is None or value == [] or value == "":
        return "—"
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    return str(value)


templates.env.filters["pct"] = pct
templates.env.globals["show"] = show


def this_year() -> int:
    return dt.date.today().year


def flash(request: Request, message: str) -> None:
    """A saved message (已保存 …) shown once, on the next page rendered for this session."""
    request.session["flash"] = message[:300]


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with the CSRF token, the signed-in user, the model notice and any flash."""
    state = request.app.state.tian
    context.setdefault("user", None)
    context.setdefault("flash", request.session.pop("flash", None))
    context["csrf_token"] = csrf_token(request.session)
    context["model_notice"] = state.runtime.notice
    return templates.TemplateResponse(request, name, context, status_code=status_code)
