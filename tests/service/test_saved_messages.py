"""Every action on the reviewer pages ends on a page that says, in Chinese, what it saved."""

from __future__ import annotations

import re
from typing import Any

from service_helpers import csrf_of

# The one status line that base.html shows after an action (flash), or a page's own.
SAVED = re.compile(r'<p class="(?:saved|ok-msg)" role="status"[^>]*>([^<]+)</p>')


def _saved(html: str) -> str:
    m = SAVED.search(html)
    assert m, "no saved message on the page"
    return m.group(1)


# (proposal, form, the message's start): one proposal each, so each starts from the import.
DECISIONS = [
    (
        "A-001",
        {"action": "set", "field": "category", "value": "教育科技"},
        "已保存：类别为“教育科技”",
    ),
    (
        "A-002",
        {"action": "set", "field": "main_unit", "value": "市教育局"},
        "已保存：主办单位为“市教育局”",
    ),
    (
        "A-003",
        {"action": "set", "field": "co_units", "value": "市财政局、市民政局"},
        "已保存：协办单位为“市财政局、市民政局”",
    ),
    ("A-004", {"action": "accept"}, "已保存："),
    ("A-002", {"action": "merge", "value": "A-005"}, "已保存：并入并案组"),
    ("A-002", {"action": "unmerge"}, "已保存：已取消并案。"),
    ("A-003", {"action": "set", "field": "co_units", "value": ""}, "已保存：协办单位为“—”。"),
]


def test_each_decision_on_the_page_says_what_it_saved(imported: Any) -> None:
    rev = imported.client_for("rev")
    for pid, form, expected in DECISIONS:
        url = f"/proposals/2024/{pid}"
        token = csrf_of(rev.get(url).text)
        r = rev.post(f"{url}/decide", data={"csrf_token": token, **form})
        assert r.status_code == 200, r.text
        if 'id="confirm-accept"' in r.text:  # 一键采纳 asked first: confirm
            data = {"csrf_token": token, "action": "accept", "confirm": "1"}
            r = rev.post(f"{url}/decide", data=data)
        assert _saved(r.text).startswith(expected), (form, _saved(r.text))
        # Shown once: the next page load carries no stale message.
        assert not SAVED.search(rev.get(url).text), form


def test_user_management_says_what_it_did(imported: Any) -> None:
    adm = imported.client_for("admin")
    token = csrf_of(adm.get("/admin/users").text)
    r = adm.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "username": "wei",
            "password": "another-long-passphrase",
            "role": "viewer",
        },
    )
    assert _saved(r.text) == "已添加用户 wei。"
    for action in ("disable", "enable", "revoke"):
        r = adm.post(f"/admin/users/wei/{action}", data={"csrf_token": token})
        assert r.status_code == 200 and "wei" in _saved(r.text), action
