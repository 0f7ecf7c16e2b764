"""`tian models`: the model registry from the command line (list, add, promote, rollback)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tian.errors import UserError


def default_root() -> Path:
    """The service's registry: `$TIAN_REGISTRY_DIR`, else `$TIAN_DATA_DIR/models`, else
    ./var/models."""
    if os.environ.get("TIAN_REGISTRY_DIR"):
        return Path(os.environ["TIAN_REGISTRY_DIR"])
    data_dir = os.environ.get("TIAN_DATA_DIR")
    return Path(data_dir) / "models" if data_dir else Path("var") / "models"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list, add, promote and roll back model versions")
    p.add_argument(
        "--root",
        metavar="DIR",
        default=None,
        help="registry folder (default $TIAN_REGISTRY_DIR, else $TIAN_DATA_DIR/models, else ./var/models)",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("--json", action="store_true", help="print JSON instead of a summary")
        return sub

    action("list", "registered versions, newest first")
    add = action("add", "copy a bundle into the registry as a new version")
    add.add_argument("bundle", metavar="BUNDLE", help="bundle folder written by `tian train`")
    add.add_argument("--version", default=None, help="version name (default: the manifest's)")
    add.add_argument("--promote", action="store_true", help="make it live straight away")
    promote = action("promote", "make a version live")
    promote.add_argument("version", metavar="VERSION")
    action("rollback", "go back to the version live before the current one")
    action("history", "every add, promote and rollback, oldest first")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from model.registry import ModelRegistry, RegistryError, describe, one_line

    registry = ModelRegistry(Path(args.root) if args.root else default_root())
    as_json = getattr(args, "json", False)

    def report(entry: Any, verb: str) -> None:
        if as_json:
            _print_json(describe(entry, registry.rollback_target()))
        else:
            sys.stdout.write(f"{verb} {one_line(entry)}\n")

    try:
        if args.action == "list":
            entries = registry.list()
            if as_json:
                target = registry.rollback_target()
                _print_json([describe(e, target) for e in entries])
            else:
                sys.stdout.write(_table(entries, registry.root, registry.rollback_target()))
        elif args.action == "add":
            if not Path(args.bundle).is_dir():
                raise UserError(f"{args.bundle}: no such bundle folder")
            entry = registry.add(Path(args.bundle), version=args.version)
            if args.promote:
                entry = registry.promote(entry.version)
            report(entry, "added and promoted" if args.promote else "added")
        elif args.action == "promote":
            before = registry.live_version()
            entry = registry.promote(args.version)
            report(entry, "promoted")
            if not as_json:
                sys.stdout.write(
                    f"rollback would return to {before}; a running service switches within "
                    "its next request\n"
                    if before
                    else "a running service switches within its next request\n"
                )
        elif args.action == "rollback":
            report(registry.rollback(), "rolled back to")
        elif args.action == "history":
            events = registry.history()
            if as_json:
                _print_json(events)
            else:
                for e in events:
                    sys.stdout.write(
                        f"{e.get('at', '')}  {e.get('action', ''):<9} {e.get('version', '')}\n"
                    )
    except RegistryError as exc:  # unknown versions included
        raise UserError(str(exc)) from exc
    return 0


def _table(entries: list[Any], root: Path, target: str | None) -> str:
    from model.registry import describe

    if not entries:
        return f"no model versions in {root}; add one with `tian models add BUNDLE`\n"
    lines = [f"{'':2}{'version':<24}{'kind':<13}{'created':<27}{'rows':>6}  {'years':<16}metrics"]
    for e in entries:
        s = describe(e, target)
        mark = "*" if e.is_live else ("<" if s["rollback_target"] else " ")
        figures = "; ".join(
            f"{h['head'] or ''} {h['metric']} {h['value']:.3f}".strip() for h in s["headline"][:4]
        )
        lines.append(
            f"{mark:2}{e.version:<24}{e.kind:<13}{e.created:<27}"
            f"{s['training_rows'] if s['training_rows'] is not None else '-':>6}  "
            f"{','.join(s['training_years']) or '-':<16}{figures or 'not recorded'}"
        )
    lines.append("(* = live, < = rollback target)")
    return "\n".join(lines) + "\n"


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
