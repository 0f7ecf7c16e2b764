"""`tian dedup` and `tian topics` end to end on small files with the tiny backbone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tian.cli import main

ELEVATOR = (
    "东城区幸福小区建于上世纪九十年代，共有住宅楼十二栋，多为六层无电梯。居民中六十岁以上老人占四成，"
    "上下楼十分困难。建议区住建局牵头，简化审批流程，对加装电梯给予补贴，并协调低层住户意见。"
)
RIVER = "白河县城区污水管网老化，雨季污水直排白河，下游水质下降。建议排查管网，实施雨污分流改造。"
SCHOOL = (
    "市第三中学食堂价格偏高，学生意见较大。建议教育局加强学校食堂监管，公开成本，保障学生就餐。"
)
TRAFFIC = "城区早晚高峰交通拥堵严重，公交线路重复。建议优化公交线网，增设公交专用道，发展地铁。"


def _write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    data = _write_csv(
        tmp_path / "2024.csv",
        [
            {
                "id": "2024-001",
                "year": 2024,
                "title": "关于老旧小区加装电梯的建议",
                "content": ELEVATOR,
            },
            {
                "id": "2024-002",
                "year": 2024,
                "title": "关于老旧小区加装电梯的建议",
                "content": "各位委员：" + ELEVATOR.replace("十分困难", "非常困难"),
            },
            {"id": "2024-003", "year": 2024, "title": "关于学校食堂的建议", "content": SCHOOL},
            {"id": "2024-004", "year": 2024, "title": "关于缓解交通拥堵的建议", "content": TRAFFIC},
        ],
    )
    earlier = _write_csv(
        tmp_path / "2023.csv",
        [
            {"id": "2023-001", "year": 2023, "title": "关于白河污水治理的建议", "content": RIVER},
            {"id": "2023-002", "year": 2023, "title": "关于学校食堂的建议", "content": SCHOOL},
            {"id": "2023-003", "year": 2023, "title": "关于白河污水治理的建议", "content": RIVER},
        ],
    )
    topics = tmp_path / "topics.txt"
    topics.write_text("推进老旧小区加装电梯\n加强学校食堂监管\n发展乡村旅游\n", encoding="utf-8")
    return {"data": data, "earlier": earlier, "topics": topics, "dir": tmp_path}


def _read_out(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_dedup_finds_copies_across_years_with_groups_and_evidence(
    files: dict[str, Path], tiny_backbone_dir: Path
) -> None:
    out, groups, evidence = (files["dir"] / n for n in ("pairs.csv", "groups.csv", "ev.jsonl"))
    rc = main(
        [
            "dedup",
            "--data",
            str(files["data"]),
            "--against",
            str(files["earlier"]),
            "--out",
            str(out),
            "--groups",
            str(groups),
            "--evidence",
            str(evidence),
            "--base-model",
            str(tiny_backbone_dir),
            "--no-progress",
        ]
    )
    assert rc == 0
    rows = _read_out(out)
    found = {(r["id_a"], r["id_b"]): r for r in rows}
    assert found[("2024-001", "2024-002")]["kind"] == "near"
    assert found[("2024-003", "2023-002")]["kind"] == "exact"  # id_a from --data
    assert ("2023-001", "2023-003") not in found  # both from --against: not searched
    from model.dedup import DedupCalibration

    assert rows and all(float(r["score"]) >= DedupCalibration.load().threshold for r in rows)
    group_rows = _read_out(groups)
    assert {r["id"] for r in group_rows} >= {"2024-001", "2024-002", "2024-003", "2023-002"}
    assert sum(int(r["is_representative"]) for r in group_rows) == len(
        {r["group_id"] for r in group_rows}
    )
    ev = [json.loads(line) for line in evidence.read_text(encoding="utf-8").splitlines()]
    assert len(ev) == len(rows)
    # The tiny random backbone makes every text look alike, so only copies are sure to share text.
    near = next(e for e in ev if (e["id_a"], e["id_b"]) == ("2024-001", "2024-002"))
    assert near["passages"] and near["kind"] == "near"


def test_dedup_pairs_mode_keeps_order(files: dict[str, Path], tiny_backbone_dir: Path) -> None:
    pairs = _write_csv(
        files["dir"] / "pairs.csv",
        [
            {"id_a": "2024-004", "id_b": "2024-001"},
            {"id_a": "2024-001", "id_b": "2024-002"},
            {"id_a": "2024-003", "id_b": "2024-001"},
        ],
    )
    out = files["dir"] / "scored.csv"
    rc = main(
        [
            "dedup",
            "--data",
            str(files["data"]),
            "--pairs",
            str(pairs),
            "--out",
            str(out),
            "--base-model",
            str(tiny_backbone_dir),
            "--no-progress",
        ]
    )
    assert rc == 0
    rows = _read_out(out)
    assert [(r["id_a"], r["id_b"]) for r in rows] == [
        ("2024-004", "2024-001"),
        ("2024-001", "2024-002"),
        ("2024-003", "2024-001"),
    ]
    assert rows[1]["kind"] == "near"
    # The tiny random backbone gives every pair a cosine near 1, so only the copy's own
    # score is meaningful here: it is flagged.
    from model.dedup import DedupCalibration

    assert float(rows[1]["score"]) >= DedupCalibration.load().threshold


def test_dedup_pairs_encodes_only_the_texts_it_scores(
    files: dict[str, Path], tiny_backbone_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tian.commands.dedup as dedup_cmd

    encoded: list[str] = []
    real = dedup_cmd.encode_texts

    def spy(encoder, ids, texts, **kwargs):  # type: ignore[no-untyped-def]
        encoded.extend(ids)
        return real(encoder, ids, texts, **kwargs)

    monkeypatch.setattr(dedup_cmd, "encode_texts", spy)
    pairs = _write_csv(files["dir"] / "two.csv", [{"id_a": "2024-001", "id_b": "2024-002"}])
    rc = main(
        [
            "dedup",
            "--data",
            str(files["data"]),
            "--pairs",
            str(pairs),
            "--out",
            str(files["dir"] / "two_scored.csv"),
            "--base-model",
            str(tiny_backbone_dir),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert sorted(encoded) == ["2024-001", "2024-002"]  # not the other two proposals
    assert len(_read_out(files["dir"] / "two_scored.csv")) == 1


def test_dedup_pairs_unknown_ids_are_named(
    files: dict[str, Path], tiny_backbone_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = _write_csv(files["dir"] / "p.csv", [{"id_a": "2024-001", "id_b": "9999-999"}])
    rc = main(
        [
            "dedup",
            "--data",
            str(files["data"]),
            "--pairs",
            str(pairs),
            "--out",
            str(files["dir"] / "o.csv"),
            "--base-model",
            str(tiny_backbone_dir),
        ]
    )
    assert rc == 2
    assert "9999-999" in capsys.readouterr().err


def test_dedup_bad_inputs(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["dedup", "--data", str(files["dir"] / "missing.csv"), "--out", "x.csv"])
    assert rc == 2 and "missing.csv" in capsys.readouterr().err
    bad_pairs = files["dir"] / "bad.csv"
    bad_pairs.write_text("a,b\n1,2\n", encoding="utf-8")
    rc = main(
        [
            "dedup",
            "--data",
            str(files["data"]),
            "--pairs",
            str(bad_pairs),
            "--out",
            "x.csv",
            "--threshold",
            "1.5",
        ]
    )
    assert rc == 2 and "--threshold" in capsys.readouterr().err
    # The same ids in --data and --against are refused, naming the ids.
    rc = main(
        [
            "dedup",
            "--data",
            str(files["data"]),
            "--against",
            str(files["data"]),
            "--out",
            str(files["dir"] / "o.csv"),
        ]
    )
    assert rc == 2 and "2024-001" in capsys.readouterr().err


def test_dedup_with_model_bundle_manifest(files: dict[str, Path], tiny_backbone_dir: Path) -> None:
    bundle = files["dir"] / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({"base_model": str(tiny_backbone_dir)}))
    out = files["dir"] / "o.csv"
    assert (
        main(
            [
                "dedup",
                "--model",
                str(bundle),
                "--data",
                str(files["data"]),
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert _read_out(out)
    assert (
        main(
            ["dedup", "--model", str(files["dir"]), "--data", str(files["data"]), "--out", str(out)]
        )
        == 2
    )


def test_topics_end_to_end(files: dict[str, Path], tiny_backbone_dir: Path) -> None:
    out, cov = files["dir"] / "topics.jsonl", files["dir"] / "coverage.json"
    rc = main(
        [
            "topics",
            "--topics",
            str(files["topics"]),
            "--data",
            str(files["data"]),
            "--out",
            str(out),
            "--coverage",
            str(cov),
            "--top-k",
            "2",
            "--base-model",
            str(tiny_backbone_dir),
            "--no-progress",
        ]
    )
    assert rc == 0
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == ["2024-001", "2024-002", "2024-003", "2024-004"]
    for x in lines:
        assert len(x["topics"]) == 2 and isinstance(x["no_topic"], bool)
        assert {t["topic_id"] for t in x["topics"]} <= {"T001", "T002", "T003"}
    report = json.loads(cov.read_text(encoding="utf-8"))
    assert {r["topic_id"] for r in report["topics"]} == {"T001", "T002", "T003"}


def test_topics_bad_topics_file(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    bad = files["dir"] / "topics.csv"
    bad.write_text("name\nx\n", encoding="utf-8")
    rc = main(["topics", "--topics", str(bad), "--data", str(files["data"]), "--out", "o.jsonl"])
    assert rc == 2 and "topic" in capsys.readouterr().err
