"""The README's yearly loop, run as written: the commands come from the README's own fenced
block, so a step that the README gets wrong fails here.

Only what must change is substituted: the stand-in file names (``history.csv``,
``holdout.csv``) become demo files in a temporary folder, ``data/units.csv`` the repository's
file, and ``tian train`` gets ``--members baseline directory`` so the `auto` model trains in
seconds (no transformer). The service's data folder is a temporary ``./var`` with 2024's demo
proposals imported and reviewed through the service's API.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REVIEWED = 30  # proposals of 2024 a reviewer labels before the export
PASSWORD = "correct-horse-battery"


def yearly_loop_commands(readme: str) -> list[list[str]]:
    """The `tian ...` commands of the fenced block under '### The yearly loop', comments cut."""
    section = readme.split("### The yearly loop", 1)[1].split("\n#", 1)[0]
    blocks = re.findall(r"```[^\n]*\n(.*?)```", section, flags=re.S)
    assert blocks, "the yearly-loop section of the README has no fenced block"
    commands = []
    for line in "\n".join(blocks).splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "tian", f"not a tian command in the README: {line}"
            commands.append(words)
    return commands


def _substitute(words: list[str], files: dict[str, str]) -> list[str]:
    out = [files.get(w, w) for w in words]
    if out[1] == "train":
        out += ["--members", "baseline", "directory"]  # tiny: no transformer member
    return out


def _reviewed_service_data(
    var: Path, live: Path, encoder: Path, demo_2024: list[Any]
) -> dict[str, Any]:
    """Import 2024 without labels into a service on ``var`` and label ``REVIEWED`` proposals by
    hand through the API; returns what the reviewer set, by id."""
    from fastapi.testclient import TestClient

    from model.records import write_proposals
    from service.app import create_app
    from service.auth import create_user
    from service.settings import Settings

    upload = var.parent / "import_2024.csv"
    unlabelled = [
        p.__class__(id=p.id, year=p.year, title=p.title, content=p.content) for p in demo_2024
    ]
    write_proposals(upload, unlabelled)
    settings = Settings(data_dir=var, model_dir=live, encoder=str(encoder), background_jobs=False)
    app = create_app(settings)
    given: dict[str, Any] = {}
    with TestClient(app) as client:
        state = app.state.tian
        with state.factory() as s, s.begin():
            create_user(s, "rev", PASSWORD, "reviewer")
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        r = client.post(
            "/login",
            data={"username": "rev", "password": PASSWORD, "csrf_token": token.group(1)},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        headers = {"X-CSRF-Token": client.get("/api/me").json()["csrf_token"]}
        r = client.post(
            "/api/imports",
            files={"file": ("2024.csv", upload.read_bytes())},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        state.jobs.wait_idle()
        for p in demo_2024[:REVIEWED]:
            values = {"category": p.category, "main_unit": p.main_unit, "co_units": p.co_units}
            for field, value in values.items():
                if value in (None, []):
                    continue
                r = client.post(
                    f"/api/proposals/2024/{p.id}/decisions",
                    json={"action": "set", "field": field, "value": value},
                    headers=headers,
                )
                assert r.status_code == 201, r.text
            given[p.id] = values
    return given


def _run(words: list[str], cwd: Path, env: dict[str, str]) -> str:
    exe = Path(sys.executable).with_name("tian")
    proc = subprocess.run(
        [str(exe), *words[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, (" ".join(words), proc.stdout[-2000:], proc.stderr[-4000:])
    return proc.stdout


def test_readme_yearly_loop_runs_as_written(tmp_path: Path, tiny_backbone_dir: Path) -> None:
    pytest.importorskip("fastapi")
    from model.bundle import save_bundle
    from model.records import read_proposals, write_proposals
    from model.registry import ModelRegistry
    from training.baseline import fit_baseline

    commands = yearly_loop_commands(README.read_text(encoding="utf-8"))
    verbs = [w[1] if w[1] != "models" else f"models {w[2]}" for w in commands]
    assert verbs == [
        "export-training",
        "train",
        "models add",
        "compare",
        "models promote",
        "models rollback",
    ]

    demo = read_proposals(ROOT / "data" / "demo" / "proposals.csv")
    history, holdout = tmp_path / "history.csv", tmp_path / "holdout.csv"
    write_proposals(history, [p for p in demo if p.year < 2024])
    demo_2024 = [p for p in demo if p.year == 2024]
    write_proposals(holdout, demo_2024)
    live = tmp_path / "live_2024"
    save_bundle(fit_baseline([p for p in demo if p.year < 2024]), live, {"version": "2024-01"})
    var = tmp_path / "var"
    given = _reviewed_service_data(var, live, tiny_backbone_dir, demo_2024)
    assert len(given) == REVIEWED

    env = {
        **os.environ,
        "TIAN_DATA_DIR": str(var),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    for var_name in ("TIAN_DB_URL", "TIAN_REGISTRY_DIR", "TIAN_MODEL_DIR"):
        env.pop(var_name, None)
    # The service registered and serves its start-up model: the live model before the loop.
    registry = ModelRegistry(var / "models")
    assert registry.live_version() == "2024-01"

    files = {
        "history.csv": str(history),
        "holdout.csv": str(holdout),
        "data/units.csv": str(ROOT / "data" / "units.csv"),
    }
    outputs = {}
    for words in commands:
        verb = " ".join(words[1:3]) if words[1] == "models" else words[1]
        outputs[verb] = _run(_substitute(words, files), tmp_path, env)
        if verb == "export-training":
            # Every label the reviewer set is in the export, and nothing else was exported.
            exported = {p.id: p for p in read_proposals(tmp_path / "decisions_2024.csv")}
            assert set(exported) == set(given)
            for pid, values in given.items():
                p = exported[pid]
                got = {"category": p.category, "main_unit": p.main_unit, "co_units": p.co_units}
                assert got == {k: v if v is not None else got[k] for k, v in values.items()}, pid
        if verb == "train":
            manifest = json.loads((tmp_path / "new_model" / "manifest.json").read_text("utf-8"))
            assert manifest["kind"] == "auto"
            assert manifest["training_data"]["rows"] == len(read_proposals(history)) + REVIEWED
            assert manifest["metrics"], "the bundle records no metrics from its training run"
        if verb == "models add":
            assert registry.get("2025-01") is not None
            assert registry.live_version() == "2024-01"
        if verb == "compare":
            assert (tmp_path / "compare" / "report.json").is_file()
            assert outputs[verb].strip() and len(outputs[verb].splitlines()) < 60  # a summary
        if verb == "models promote":
            assert registry.live_version() == "2025-01"
        if verb == "models rollback":
            assert registry.live_version() == "2024-01"
    for verb, text in outputs.items():
        assert "Traceback" not in text, verb
