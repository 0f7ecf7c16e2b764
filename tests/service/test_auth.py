"""Sign-in, roles, bearer tokens and CSRF."""

from __future__ import annotations

from service_helpers import PASSWORD, csrf_of


def test_health_routes_need_no_sign_in(service):
    assert service.client.get("/healthz").json() == {"status": "ok"}
    r = service.client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["database"] == "ok" and r.json()["model"] == "toy-1"


def test_anonymous_api_is_401_and_pages_redirect(service):
    for path in ("/api/me", "/api/proposals?year=2024", "/api/models", "/api/decisions?year=2024"):
        assert service.client.get(path).status_code == 401, path
    r = service.client.post("/api/suggest", json={"text": "关于河湖治理的建议"})
    assert r.status_code == 401
    r = service.client.get("/queue?year=2024", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/queue")


def test_wrong_password_and_unknown_user_fail(service):
    c = service.client
    token = csrf_of(c.get("/login").text)
    for user, pw in (("rev", "wrong-password"), ("nobody", PASSWORD)):
        r = c.post("/login", data={"username": user, "password": pw, "csrf_token": token})
        assert r.status_code == 401 and "用户名或密码错误" in r.text
    assert c.get("/api/me").status_code == 401


def test_login_without_csrf_is_rejected(service):
    r = service.client.post("/login", data={"username": "rev", "password": PASSWORD})
    assert r.status_code == 403
    assert service.client.get("/api/me").status_code == 401


def test_session_sign_in_and_logout(service):
    c = service.client_for("rev")
    me = c.get("/api/me").json()
    assert me["username"] == "rev" and me["role"] == "reviewer" and me["csrf_token"]
    c.post("/logout", data={"csrf_token": me["csrf_token"]})
    assert c.get("/api/me").status_code == 401


def test_open_redirect_is_refused(service):
    c = service.client
    token = csrf_of(c.get("/login").text)
    r = c.post(
        "/login",
        data={
            "username": "rev",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"


def test_bearer_token(service):
    token = service.token_for("rev")
    h = {"Authorization": f"Bearer {token}"}
    assert service.client.get("/api/me", headers=h).json()["username"] == "rev"
    # A bearer token needs no CSRF header for writes.
    r = service.client.post("/api/suggest", json={"text": "河湖生态环境污染治理"}, headers=h)
    assert r.status_code == 200
    bad = {"Authorization": "Bearer tian_not-a-token"}
    assert service.client.get("/api/me", headers=bad).status_code == 401


def test_token_is_stored_hashed(service):
    from sqlalchemy import select

    from service.models import ApiToken

    token = service.token_for("rev")
    with service.state.factory() as s:
        stored = s.scalars(select(ApiToken.token_hash)).all()
    assert token not in stored and all(len(h) == 64 for h in stored)


def test_cookie_api_write_needs_csrf_header(service):
    c = service.client_for("rev")
    r = c.post("/api/suggest", json={"text": "河湖"})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = c.post("/api/suggest", json={"text": "河湖"}, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403


def test_form_post_without_or_with_wrong_csrf_is_rejected(imported):
    c = imported.client_for("rev")
    for data in ({"action": "accept"}, {"action": "accept", "csrf_token": "wrong"}):
        r = c.post("/proposals/2024/A-001/decide", data=data, follow_redirects=False)
        assert r.status_code == 403
    assert c.get("/api/proposals/2024/A-001").json()["decisions"] == []


def test_viewer_cannot_change_anything(imported):
    v = imported.client_for("view")
    h = {"X-CSRF-Token": v.get("/api/me").json()["csrf_token"]}
    assert v.get("/api/proposals?year=2024").status_code == 200
    writes = [
        ("/api/proposals/2024/A-001/decisions", {"json": {"action": "accept"}}),
        ("/api/imports", {"files": {"file": ("p.csv", b"id,title\n1,x\n")}}),
        ("/api/models/toy-1/promote", {}),
        ("/api/models/rollback", {}),
        (
            "/api/users",
            {"json": {"username": "x1", "password": "Long-enough-pw-2024", "role": "admin"}},
        ),
        ("/api/analyse?year=2024", {}),
    ]
    for path, kw in writes:
        assert v.post(path, headers=h, **kw).status_code == 403, path
    token = csrf_of(v.get("/proposals/2024/A-001").text)
    r = v.post("/proposals/2024/A-001/decide", data={"action": "accept", "csrf_token": token})
    assert r.status_code == 403
    assert v.get("/import").status_code == 403


def test_only_admins_manage_users_and_models(service):
    rev = service.client_for("rev")
    h = {"X-CSRF-Token": rev.get("/api/me").json()["csrf_token"]}
    assert rev.get("/api/users").status_code == 403
    assert rev.post("/api/models/rollback", headers=h).status_code == 403
    adm = service.client_for("admin")
    h = {"X-CSRF-Token": adm.get("/api/me").json()["csrf_token"]}
    r = adm.post(
        "/api/users",
        json={"username": "new1", "password": "Long-enough-pw-2024", "role": "viewer"},
        headers=h,
    )
    assert r.status_code == 201
    r = adm.post(
        "/api/users",
        json={"username": "new1", "password": "Long-enough-pw-2024", "role": "viewer"},
        headers=h,
    )
    assert r.status_code == 422 and "已存在" in r.json()["detail"]
    assert {u["username"] for u in adm.get("/api/users").json()} >= {"admin", "new1"}


def test_passwords_are_argon2(service):
    from sqlalchemy import select

    from service.models import User

    with service.state.factory() as s:
        hashes = s.scalars(select(User.password_hash)).all()
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)


def test_new_token_via_api(service):
    c = service.client_for("view")
    h = {"X-CSRF-Token": c.get("/api/me").json()["csrf_token"]}
    token = c.post("/api/tokens", json={"name": "script"}, headers=h).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert service.client.get("/api/me", headers=bearer).status_code == 200
    mine = c.get("/api/tokens").json()
    assert [t["name"] for t in mine] == ["script"] and mine[0]["expires_at"]  # 90 days
    assert token not in str(mine)
    assert c.post(f"/api/tokens/{mine[0]['id']}/revoke", headers=h).status_code == 200
    assert service.client.get("/api/me", headers=bearer).status_code == 401
    assert c.post("/api/tokens/9999/revoke", headers=h).status_code == 404
