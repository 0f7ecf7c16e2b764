"""`tian dedup` and the service's analysis give the same 并案 groups, with the same ids.

Both call `model.duplicates.find_duplicates`; what could still differ is what each feeds it
(row order, ids, which proposals are searched against, the vectors). Checked on the demo's
2024 against its earlier years, and on a synthetic year with planted near-copies (600
proposals here, 5,000 with TIAN_AGREE_SIZE=5000), with the same stand-in encoder on both sides (e5's narrow cosine band over hashed
character bigrams: the random tiny backbone puts every pair near 1 and groups everything).
"""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest

from model.records import Proposal, read_proposals, write_proposals
from tests.model.fake_vectors import BigramEncoder
from tian.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    import tian.commands.dedup as dedup_cmd

    monkeypatch.setattr(dedup_cmd, "load_cli_encoder", lambda args: BigramEncoder())


def _service_groups(tmp_path: Path, records: list[Proposal], year: int, encoder) -> dict:
    """The groups the service's analysis stores for `year`: label -> (representative, members)."""
    from sqlalchemy import select

    from service.analysis import find_duplicates
    from service.db import make_engine, make_session_factory, upgrade
    from service.models import DuplicateGroup, ImportBatch, User
    from service.models import Proposal as Row

    engine = make_engine(f"sqlite:///{tmp_path / 'tian.db'}")
    upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as s, s.begin():
        user = User(username="loader", password_hash="-", role="admin")
        s.add(user)
        s.flush()
        batch = ImportBatch(
            file_name="x.csv", sha256="0" * 64, rows=0, added=0, updated=0, unchanged=0,
            user_id=user.id,
        )  # fmt: skip
        s.add(batch)
        s.flush()
        for r in records:
            s.add(Row(year=r.year, pid=r.id, title=r.title, content=r.content, batch_id=batch.id))
    find_duplicates(factory, encoder, year)
    with factory() as s:
        rows = list(s.scalars(select(DuplicateGroup).where(DuplicateGroup.year == year)))
        pid = {p.id: p.pid for p in s.scalars(select(Row))}
        out = {
            g.label: (pid[g.representative_id], frozenset(pid[m] for m in g.members)) for g in rows
        }
    engine.dispose()
    return out


def _cli_groups(tmp_path: Path, records: list[Proposal], year: int) -> dict:
    this, earlier = tmp_path / "this.csv", tmp_path / "earlier.csv"
    write_proposals(this, [r for r in records if r.year == year])
    write_proposals(earlier, [r for r in records if r.year < year])
    groups = tmp_path / "groups.csv"
    argv = ["dedup", "--data", str(this), "--against", str(earlier), "--out"]
    argv += [str(tmp_path / "pairs.csv"), "--groups", str(groups)]
    assert main([*argv, "--no-progress"]) == 0
    members: dict[str, set[str]] = {}
    reps: dict[str, str] = {}
    with groups.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            members.setdefault(row["group_id"], set()).add(row["id"])
            if row["is_representative"] == "1":
                reps[row["group_id"]] = row["id"]
    return {g: (reps[g], frozenset(m)) for g, m in members.items()}


def _agree(tmp_path: Path, records: list[Proposal], year: int) -> dict:
    (tmp_path / "cli").mkdir()
    (tmp_path / "service").mkdir()
    cli = _cli_groups(tmp_path / "cli", records, year)
    # The service stores what an import reads from the same files (normalised text).
    read = [
        *read_proposals(tmp_path / "cli" / "earlier.csv"),
        *read_proposals(tmp_path / "cli" / "this.csv"),
    ]
    service = _service_groups(tmp_path / "service", read, year, BigramEncoder())
    assert cli == service
    return cli


def test_demo_2024_gives_the_same_groups(tmp_path: Path) -> None:
    groups = _agree(tmp_path, read_proposals(ROOT / "data" / "demo" / "proposals.csv"), 2024)
    assert len(groups) >= 3, groups  # the demo's planted copies
    assert max(len(m) for _, m in groups.values()) <= 6, "one chained blob says nothing"


def _synthetic_year(n: int, earlier: int, seed: int = 0) -> list[Proposal]:
    """`n` proposals of 2024 and `earlier` of 2023, each three random sentences of the demo's
    proposals (real wording, so that unrelated ones share little); every tenth of 2024 is a
    near-copy of an earlier proposal (its end reworded), some of those copied again."""
    import re

    rng = random.Random(seed)
    demo = read_proposals(ROOT / "data" / "demo" / "proposals.csv")
    sentences = sorted(
        {x for p in demo for x in re.split(r"(?<=[。；！？])", p.content) if len(x) > 8}
    )
    titles = sorted({p.title for p in demo})

    def text() -> tuple[str, str]:
        return rng.choice(titles), "".join(rng.sample(sentences, 3))

    out = [Proposal(id=f"P23-{i:05d}", year=2023, title=t, content=c) for i, (t, c) in
           enumerate(text() for _ in range(earlier))]  # fmt: skip
    for i in range(n):
        if i % 10 == 0 and len(out) > 1:
            src = rng.choice(out)
            title, content = src.title, src.content[:-6] + "切实加以解决"
        else:
            title, content = text()
        out.append(Proposal(id=f"P24-{i:05d}", year=2024, title=title, content=content))
    return out


def test_a_synthetic_year_gives_the_same_groups(tmp_path: Path) -> None:
    # 600 by default; TIAN_AGREE_SIZE=5000 for the full-size check (about 10 minutes).
    size = int(os.environ.get("TIAN_AGREE_SIZE", "600"))
    groups = _agree(tmp_path, _synthetic_year(size, size // 10), 2024)
    assert len(groups) >= size // 50, len(groups)  # a planted copy in ten: many groups
