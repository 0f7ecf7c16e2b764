"""`tian serve`: run the reviewer service (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.settings import Settings

log = logging.getLogger("tian.serve")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `serve` subcommand."""
    p = subparsers.add_parser(
        "serve",
        help="run the reviewer service",
        description=(
            "Serve the review pages and the JSON API. With no settings it keeps a SQLite "
            "database in ./var (or $TIAN_DATA_DIR); every option also reads TIAN_* variables."
        ),
    )
    p.add_argument(
        "--model", type=Path, metavar="DIR", help="model bundle to serve if none is live"
    )
    p.add_argument("--db", metavar="URL", help="database URL (default: SQLite in the data folder)")
    p.add_argument("--data-dir", type=Path, metavar="DIR", help="data folder (default ./var)")
    p.add_argument("--host", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument(
        "--import",
        dest="imports",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="import this proposals file before serving (idempotent; repeatable)",
    )
    p.add_argument("--topics", type=Path, metavar="FILE", help="reference topics to load first")
    p.add_argument("--topics-year", type=int, metavar="YEAR", help="year of --topics")
    p.add_argument(
        "--demo-admin",
        action="store_true",
        help="development only: create or reset the admin 'demo' and print its sign-in",
    )
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by command-line options."""
    from pydantic import ValidationError

    from service.settings import Settings
    from tian.cli import UserError

    overrides = {
        "model_dir": args.model,
        "db_url": args.db,
        "data_dir": getattr(args, "data_dir", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
    }
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise UserError(f"bad setting: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    """Entry point for `tian serve`."""
    import uvicorn

    from service.app import create_app
    from service.settings import SettingsError
    from tian.cli import UserError

    settings = settings_from_args(args)
    if args.model is not None and not (args.model / "manifest.json").is_file():
        raise UserError(f"--model {args.model}: not a model bundle (no manifest.json)")
    for path in args.imports:
        if not path.is_file():
            raise UserError(f"--import {path}: no such file")
    if args.topics is not None and not args.topics.is_file():
        raise UserError(f"--topics {args.topics}: no such file")
    if args.topics is not None and args.topics_year is None:
        raise UserError("--topics needs --topics-year (the year the topics belong to)")
    try:
        app = create_app(settings)
    except SettingsError as exc:
        raise UserError(str(exc)) from exc
    sign_in = _prepare(settings, args) if (args.imports or args.topics or args.demo_admin) else None
    address = f"http://{settings.host}:{settings.port}"
    print(f"tian is serving on {address}", file=sys.stderr)  # noqa: T201
    if sign_in:
        print(f"sign in as {sign_in[0]} / {sign_in[1]}", file=sys.stderr)  # noqa: T201
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", workers=1)
    return 0


def _prepare(settings: Settings, args: argparse.Namespace) -> tuple[str, str] | None:
    """Demo admin, imports, topics and analysis before serving; returns the demo sign-in."""
    import time

    from service.app import build_state
    from service.bootstrap import DEMO_USER, ensure_demo_admin, prepare
    from service.importer import ImportRejected
    from tian.cli import UserError

    started = time.perf_counter()
    state = build_state(settings)
    try:
        sign_in = None
        user_id = None
        if args.demo_admin:
            try:
                user_id, password = ensure_demo_admin(state)
            except ValueError as exc:
                raise UserError(str(exc)) from exc
            sign_in = (DEMO_USER, password)
        if args.imports or args.topics:
            if user_id is None:
                user_id = _first_admin(state)
            state.runtime.start()
            try:
                prepare(
                    state,
                    user_id=user_id,
                    imports=args.imports,
                    topics=args.topics,
                    topics_year=args.topics_year,
                    log=lambda message: print(message, file=sys.stderr),  # noqa: T201
                )
            except ImportRejected as exc:
                lines = [f"{exc.file_name}: rejected, nothing was stored"] + [
                    f"  row {i.row or '-'} {i.column or ''}: {i.message}" for i in exc.issues[:20]
                ]
                raise UserError("\n".join(lines)) from exc
            except ValueError as exc:
                raise UserError(str(exc)) from exc
        log.info("prepared in %.1f s", time.perf_counter() - started)
        print(f"prepared in {time.perf_counter() - started:.1f} s", file=sys.stderr)  # noqa: T201
        return sign_in
    finally:
        state.jobs.shutdown()
        state.engine.dispose()


def _first_admin(state: object) -> int:
    """The user an import is recorded under when no demo admin is made."""
    from sqlalchemy import select

    from service.models import User
    from tian.cli import UserError

    with state.factory() as session:  # type: ignore[attr-defined]
        user_id = session.scalar(select(User.id).where(User.role == "admin").order_by(User.id))
    if user_id is None:
        raise UserError("--import needs an admin: run `tian user add NAME --role admin` first")
    return int(user_id)
