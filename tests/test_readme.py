"""The README speaks of this repository only: every file it names is here, no path points
outside it, and its command table lists exactly the commands `tian` has."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TOP = ("docs", "data", "benchmarks", "model", "service", "training", "tian", "notebooks", "tests")


def test_no_path_outside_the_repository() -> None:
    assert "../" not in README
    outside = re.findall(r"(?<![\w.~])/(?:work|home|root|mnt|tmp|srv|opt)/[^\s`)]*", README)
    assert not outside, outside


def test_every_repository_path_it_names_exists() -> None:
    named = set(re.findall(rf"\b(?:{'|'.join(TOP)})/[\w./-]*\w", README))
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, missing
    assert (ROOT / "docs" / "DESIGN.md").is_file()


def test_command_table_matches_the_commands() -> None:
    from tian.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    commands = set(sub.choices)
    section = README.split("## Command line", 1)[1].split("\n## ", 1)[0]
    table = set(re.findall(r"^\| `tian ([a-z-]+)", section, flags=re.M))
    assert table == commands, (sorted(table - commands), sorted(commands - table))
