"""Models: list, promote (hot swap without failed requests), roll back; suggest."""

from __future__ import annotations

import threading

from service_helpers import api_csrf


def test_suggest(service):
    rev = service.client_for("rev")
    h = api_csrf(rev)
    r = rev.post(
        "/api/suggest", json={"title": "关于河湖治理", "content": "生态环境污染流域"}, headers=h
    )
    assert r.status_code == 200
    body = r.json()
    assert body["category"][0]["label"] == "生态环境" and body["model_version"] == "toy-1"
    assert set(body["abstain"]) >= {"category", "main_unit"}
    assert rev.post("/api/suggest", json={}, headers=h).status_code == 422
    assert rev.post("/api/suggest", json={"text": "x" * 50_000}, headers=h).status_code == 422


def test_no_model_gives_a_clear_notice(service):
    service.state.runtime.use(None)
    rev = service.client_for("rev")
    r = rev.post("/api/suggest", json={"text": "河湖"}, headers=api_csrf(rev))
    assert r.status_code == 503 and "模型" in r.json()["detail"]
    assert service.client.get("/readyz").json()["model"] is None
    assert "尚未部署模型" in rev.get("/queue").text


def test_promote_and_rollback_hot_swap(service, baseline_bundle_2):
    from model.registry import ModelRegistry

    ModelRegistry(service.state.settings.registry_root).add(baseline_bundle_2)
    adm = service.client_for("admin")
    h = api_csrf(adm)
    listing = adm.get("/api/models").json()
    assert listing["live"] == "toy-1" and {b["version"] for b in listing["bundles"]} == {
        "toy-1",
        "toy-2",
    }

    token = service.token_for("rev")
    auth = {"Authorization": f"Bearer {token}"}
    failures, seen, stop = [], set(), threading.Event()

    def hammer() -> None:
        from fastapi.testclient import TestClient

        c = TestClient(service.app)
        while not stop.is_set():
            r = c.post("/api/suggest", json={"text": "河湖生态环境"}, headers=auth)
            if r.status_code != 200:
                failures.append(r.status_code)
            else:
                seen.add(r.json()["model_version"])

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        r = adm.post("/api/models/toy-2/promote", headers=h)
        assert (
            r.status_code == 200 and r.json()["live"] == "toy-2" and r.json()["previous"] == "toy-1"
        )
        r = adm.post("/api/models/rollback", headers=h)
        assert r.status_code == 200 and r.json()["live"] == "toy-1"
        r = adm.post("/api/models/toy-2/promote", headers=h)
        assert r.status_code == 200
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert seen  # requests ran during the swaps
    assert adm.post("/api/models/nope/promote", headers=h).status_code == 404
    assert adm.post("/api/models/toy-2/promote", headers=h).status_code == 409  # already live
    assert ModelRegistry(service.state.settings.registry_root).live().version == "toy-2"
