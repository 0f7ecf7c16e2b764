"""`tian models`: the model registry from the command line (list, add, promote, rollback)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


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
    ls = actions.add_parser("list", help="registered versions, newest first")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add = actions.add_parser("add", help="copy a bundle into the registry as a new version")
    add.add_argument("bundle", metavar="BUNDLE", help="bundle folder written by `tian train`")
    add.add_argument("--version", default=None, help="version name (default: the manifest's)")
    add.add_argument("--promote", action="store_true", help="make it live straight away")
    promote = actions.add_parser("promote", help="make a version live")
    promote.add_argument("version", metavar="VERSION")
    actions.add_parser("rollback", help="go back to the version live before the current one")
    actions.add_parser("history", help="every add, promote and rollback, oldest first")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from model.registry import ModelRegistry, RegistryError
    from tian.cli import UserError

    registry = ModelRegistry(Path(args.root) if args.root else default_root())
    try:
        if args.action == "list":
            entries = registry.list()
            if args.json:
                _print_json([_summary(e) for e in entries])
            else:
                sys.stdout.write(_table(entries, registry.root))
        elif args.action == "add":
            if not Path(args.bundle).is_dir():
                raise UserError(f"{args.bundle}: no such bundle folder")
            entry = registry.add(Path(args.bundle), version=args.version)
            if args.promote:
                entry = registry.promote(entry.version)
            _print_json(_summary(entry))
        elif args.action == "promote":
            _print_json(_summary(registry.promote(args.version)))
        elif args.action == "rollback":
            _print_json(_summary(registry.rollback()))
        elif args.action == "history":
            _print_json(registry.history())
    except RegistryError as exc:  # unknown versions included
        raise UserError(str(exc)) from exc
    return 0


def _summary(entry: Any) -> dict[str, Any]:
    """What a person needs to pick a version: lineage and headline metrics, no label lists."""
    m = entry.manifest
    data = m.get("training_data") or {}
    return {
        "version": entry.version,
        "live": entry.is_live,
        "kind": entry.kind,
        "created": entry.created,
        "path": str(entry.path),
        "base_model": m.get("base_model"),
        "training_rows": data.get("rows"),
        "training_years": sorted(data.get("years") or {}),
        "training_files": data.get("files"),
        "aliases": m.get("aliases"),
        "metrics": m.get("metrics"),
        "registry": m.get("registry"),
    }


def _table(entries: list[Any], root: Path) -> str:
    if not entries:
        return f"no model versions in {root}; add one with `tian models add BUNDLE`\n"
    lines = [f"{'':2}{'version':<24}{'kind':<12}{'created':<27}{'rows':>6}  years"]
    for e in entries:
        s = _summary(e)
        lines.append(
            f"{'*' if e.is_live else ' ':2}{e.version:<24}{e.kind:<12}{e.created:<27}"
            f"{s['training_rows'] if s['training_rows'] is not None else '-':>6}  "
            f"{','.join(s['training_years']) or '-'}"
        )
    lines.append("(* = live)")
    return "\n".join(lines) + "\n"


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
