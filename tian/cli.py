"""The `tian` command line: one console script, one module per subcommand.

Each module in `tian.commands` exposes `register(subparsers)`, which adds its parser and
sets `func` to a callable taking the parsed arguments and returning an exit code. Modules
import their heavy dependencies inside `func`, so `tian --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from tian import __version__
from tian.errors import UserError

__all__ = ["UserError", "build_parser", "main"]  # UserError: kept importable from here

COMMAND_MODULES = (
    "train",
    "predict",
    "evaluate",
    "dedup",
    "topics",
    "backbone",
    "serve",
    "user",
    "models",
    "compare",
    "export_training",
    "check_draft",
    "fit",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tian", description="Proposal review assistant: classify, deduplicate, match topics."
    )
    parser.add_argument("--version", action="version", version=f"tian {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"tian.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"tian.commands.{name}":
                continue  # command not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"tian {args.command}: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except ValueError as exc:
        # Record readers raise ValueError subclasses whose message names file, row and column.
        print(f"tian {args.command}: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except FileNotFoundError as exc:
        print(f"tian {args.command}: error: file not found: {exc.filename}", file=sys.stderr)  # noqa: T201
        return 2


if __name__ == "__main__":
    sys.exit(main())
