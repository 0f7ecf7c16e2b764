"""Issue 11: uploads checked before their body is read, sessions that end, throttled sign-in,
a password policy, headers, offline docs and 422 answers that do not echo the input."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from service_helpers import PASSWORD, api_csrf, csrf_of

STRONG = "Another-long-passphrase-9"


def _asgi_post(app, path, headers, chunks):
    """POST ``chunks`` to the app at ASGI level; returns (status, bytes the app asked for)."""
    asked = 0
    pending = list(chunks)
    status: list[int] = []

    async def receive():
        nonlocal asked
        if not pending:
            return {"type": "http.request", "body": b"", "more_body": False}
        body = pending.pop(0)
        asked += len(body)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    return status[0], asked


def test_uploads_are_refused_before_the_body_is_read(service):
    """Anonymous, viewer and oversized uploads never have their body read."""
    mb = b"x" * (1 << 20)
    head = (
        b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n"
    )
    big = [head] + [mb] * 40  # 40 MB, twice the 20 MB limit
    multipart = {"content-type": "multipart/form-data; boundary=zz"}
    for path in ("/api/imports", "/import", "/api/topics"):
        status, asked = _asgi_post(service.app, path, multipart, big)
        assert status in (401, 303) and asked == 0, path
    viewer = {**multipart, "authorization": f"Bearer {service.token_for('view')}"}
    status, asked = _asgi_post(service.app, "/api/imports", viewer, big)
    assert (status, asked) == (403, 0)
    reviewer = {**multipart, "authorization": f"Bearer {service.token_for('rev')}"}
    declared = {**reviewer, "content-length": str(40 << 20)}
    assert _asgi_post(service.app, "/api/imports", declared, big) == (413, 0)
    # Without a Content-Length (chunked), the body is counted as it streams and cut off.
    status, asked = _asgi_post(service.app, "/api/imports", reviewer, big)
    assert status == 413 and asked <= (21 << 20) + (1 << 20)
    # Any other request has a small body limit too.
    status, asked = _asgi_post(
        service.app, "/api/suggest", {**reviewer, "content-type": "application/json"}, big
    )
    assert status == 413 and asked <= 4 << 20
    assert not list((service.tmp / "var" / "uploads").glob("*"))


def test_logout_password_change_disable_and_revoke_end_sessions(service):
    """The old cookie stops working at once; tokens expire and can be revoked."""
    a = service.client_for("rev")
    stolen = dict(a.cookies)
    token = a.get("/api/me").json()["csrf_token"]
    a.post("/logout", data={"csrf_token": token})
    from fastapi.testclient import TestClient

    thief = TestClient(service.app, cookies=stolen)
    assert thief.get("/api/me").status_code == 401
    r = thief.post(
        "/api/proposals/2024/X/decisions",
        json={"action": "accept"},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 401

    # Password change: this session stays, the other sessions and the tokens end.
    b, c = service.client_for("rev"), service.client_for("rev")
    bearer = {"Authorization": f"Bearer {service.token_for('rev')}"}
    assert service.client.get("/api/me", headers=bearer).status_code == 200
    weak = b.post(
        "/api/me/password", json={"current": PASSWORD, "new": "12345678901234"}, headers=api_csrf(b)
    )
    assert weak.status_code == 422 and "数字" in weak.json()["detail"]
    assert "12345678901234" not in weak.text
    r = b.post("/api/me/password", json={"current": PASSWORD, "new": STRONG}, headers=api_csrf(b))
    assert r.status_code == 200, r.text
    assert b.get("/api/me").status_code == 200
    assert c.get("/api/me").status_code == 401
    assert service.client.get("/api/me", headers=bearer).status_code == 401

    # Expired tokens stop working.
    from sqlalchemy import update

    from service.models import ApiToken

    bearer = {"Authorization": f"Bearer {service.token_for('view')}"}
    assert service.client.get("/api/me", headers=bearer).status_code == 200
    with service.state.factory() as s, s.begin():
        past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        s.execute(update(ApiToken).values(expires_at=past))
    assert service.client.get("/api/me", headers=bearer).status_code == 401

    # An admin disables, enables and revokes on the users page.
    adm = service.client_for("admin")
    view = service.client_for("view")
    page = adm.get("/admin/users")
    assert page.status_code == 200 and "用户管理" in page.text
    r = adm.post("/admin/users/view/disable", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 200 and "已停用用户 view" in r.text
    assert view.get("/api/me").status_code == 401
    adm.post("/admin/users/view/enable", data={"csrf_token": csrf_of(page.text)})
    view = service.client_for("view")
    r = adm.post("/admin/users/view/revoke", data={"csrf_token": csrf_of(page.text)})
    assert "已吊销" in r.text and view.get("/api/me").status_code == 401
    assert service.client_for("view").get("/api/me").status_code == 200
    # Only admins reach the users page.
    assert service.client_for("view").get("/admin/users").status_code == 403
    # The same through the API; an admin cannot lock themselves out.
    h = api_csrf(adm)
    assert adm.post("/api/users/admin/disable", headers=h).status_code == 422
    view = service.client_for("view")
    r = adm.post("/api/users/view/disable", headers=h)
    assert r.status_code == 200 and r.json()["active"] is False
    assert view.get("/api/me").status_code == 401
    assert adm.post("/api/users/view/enable", headers=h).json()["active"] is True
    r = adm.post("/api/users/view/password", json={"password": "short"}, headers=h)
    assert r.status_code == 422 and "short" not in r.text
    r = adm.post("/api/users/view/password", json={"password": STRONG}, headers=h)
    assert r.status_code == 200
    assert adm.post("/api/users/nobody/revoke", headers=h).status_code == 404


def test_sign_in_is_throttled(service):
    """Five failures lock the account from that address, even for the right password."""
    c = service.client
    token = csrf_of(c.get("/login").text)
    for _ in range(5):
        r = c.post("/login", data={"username": "rev", "password": "wrong", "csrf_token": token})
        assert r.status_code == 401
    r = c.post("/login", data={"username": "rev", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 429 and "锁定" in r.text and int(r.headers["retry-after"]) > 0
    assert c.get("/api/me").status_code == 401
    # Another account from the same address is not locked by these five.
    r = c.post(
        "/login",
        data={"username": "view", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303


def test_throttle_delay_grows_and_is_kept_in_the_database(service):
    from service.auth import record_failure, record_success, signin_wait

    t0 = dt.datetime.now(dt.UTC)
    factory = service.state.factory
    with factory() as s:
        for i in range(5):
            record_failure(s, "rev", "10.0.0.9", now=t0 + dt.timedelta(seconds=i))
        s.commit()
    with factory() as s:  # a second worker reads the same lock
        first = signin_wait(s, "rev", "10.0.0.9", now=t0 + dt.timedelta(seconds=5))
        assert 50 <= first <= 60
        assert signin_wait(s, "rev", "10.0.0.10", now=t0) == 0  # another address
        later = t0 + dt.timedelta(minutes=2)
        assert signin_wait(s, "rev", "10.0.0.9", now=later) == 0
        for i in range(5):
            record_failure(s, "rev", "10.0.0.9", now=later + dt.timedelta(seconds=i))
        second = signin_wait(s, "rev", "10.0.0.9", now=later + dt.timedelta(seconds=5))
        assert second > first + 50  # the delay doubled
        record_success(s, "rev", "10.0.0.9")
        assert signin_wait(s, "rev", "10.0.0.9", now=later + dt.timedelta(seconds=5)) == 0
        # Spraying many accounts from one address locks the address.
        for i in range(20):
            record_failure(s, f"user{i}", "10.0.0.66", now=later)
        assert signin_wait(s, "someone", "10.0.0.66", now=later) > 0
        s.commit()


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-pw-1", "12"),
        ("123456789012345", "数字"),
        ("my-rev-password-x", "用户名"),
        ("passwordpassword", "常见"),
        ("qwertyuiopasdf", "常见"),
        ("password1234", "常见"),
    ],
)
def test_password_policy(password, reason):
    from service.auth import AuthError, check_password

    with pytest.raises(AuthError, match=reason) as info:
        check_password(password, "rev")
    assert password not in str(info.value)


def test_strong_passwords_pass_the_policy():
    from service.auth import check_password

    for password in (PASSWORD, STRONG, "tian-demo-admin-2026"):
        check_password(password, "rev")


def test_headers_docs_and_validation_answers(service):
    """CSP and no-store on pages, /docs from installed files, 422 without the input."""
    rev = service.client_for("rev")
    page = rev.get("/queue")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert page.headers["cache-control"] == "no-store"
    assert rev.get("/api/me").headers["cache-control"] == "no-store"
    assert "no-store" not in rev.get("/static/style.css").headers.get("cache-control", "")
    docs = service.client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    assert "/docs-static/swagger-ui-bundle.js" in docs.text
    assert service.client.get("/docs-static/swagger-ui-bundle.js").status_code == 200
    assert service.client.get("/static/docs.js").status_code == 200

    secret = "Sup3r-secret-passphrase"
    adm = service.client_for("admin")
    r = adm.post(
        "/api/users",
        json={"username": "x2", "password": secret, "role": "root"},
        headers=api_csrf(adm),
    )
    assert r.status_code == 422 and secret not in r.text
    huge = "河" * 1_000_000
    r = rev.post("/api/suggest", json={"text": huge, "bogus": [1] * 10}, headers=api_csrf(rev))
    assert r.status_code in (413, 422) and len(r.content) < 10_000
    r = service.client.post("/login", data={"username": "rev", "password": "p" * 300})
    assert r.status_code in (403, 422) and "p" * 300 not in r.text


def test_password_change_page(service):
    me, other = service.client_for("rev"), service.client_for("rev")
    page = me.get("/account/password")
    assert page.status_code == 200 and "修改密码" in page.text
    form = {"csrf_token": csrf_of(page.text), "current": "wrong", "new": STRONG, "again": STRONG}
    r = me.post("/account/password", data=form)
    assert r.status_code == 403 and "当前密码不正确" in r.text
    r = me.post("/account/password", data={**form, "current": PASSWORD, "new": "rev-rev-rev-rev"})
    assert r.status_code == 422
    r = me.post("/account/password", data={**form, "current": PASSWORD, "again": STRONG + "x"})
    assert r.status_code == 422 and "不一致" in r.text
    r = me.post("/account/password", data={**form, "current": PASSWORD})
    assert r.status_code == 200 and "已保存新密码" in r.text  # the flash, on the queue
    assert me.get("/api/me").status_code == 200 and other.get("/api/me").status_code == 401
    from service_helpers import login

    login(service.client, "rev", STRONG)
