"""`tian user`: create users and API tokens for the reviewer service."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `user` subcommand with `add` and `token`."""
    p = subparsers.add_parser("user", help="manage reviewer service users")
    p.add_argument("--db", metavar="URL", help="database URL (default: SQLite in the data folder)")
    p.add_argument("--data-dir", type=Path, metavar="DIR", help="data folder (default ./var)")
    sub = p.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="create a user (the first admin, for example)")
    add.add_argument("username")
    add.add_argument("--role", choices=("admin", "reviewer", "viewer"), default="reviewer")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=run_add)
    tok = sub.add_parser("token", help="create an API bearer token for a user (printed once)")
    tok.add_argument("username")
    tok.add_argument("--name", default="", help="a note saying what the token is for")
    tok.set_defaults(func=run_token)


def _factory(args: argparse.Namespace) -> Any:
    from service.db import make_engine, make_session_factory, upgrade
    from tian.commands.serve import settings_from_args

    args.model = None
    settings = settings_from_args(args)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return make_session_factory(engine)


def _password(args: argparse.Namespace) -> str:
    from tian.cli import UserError

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the two passwords differ")
    if not password:
        raise UserError("empty password")
    return password


def run_add(args: argparse.Namespace) -> int:
    """Entry point for `tian user add`."""
    from service.auth import AuthError, create_user
    from tian.cli import UserError

    password = _password(args)
    factory = _factory(args)
    try:
        with factory() as session, session.begin():
            create_user(session, args.username, password, args.role)
    except AuthError as exc:
        raise UserError(str(exc)) from exc
    print(f"user {args.username} ({args.role}) created", file=sys.stderr)  # noqa: T201
    return 0


def run_token(args: argparse.Namespace) -> int:
    """Entry point for `tian user token`."""
    from sqlalchemy import select

    from service.auth import create_token
    from service.models import User
    from tian.cli import UserError

    factory = _factory(args)
    with factory() as session, session.begin():
        user = session.scalar(select(User).where(User.username == args.username))
        if user is None or not user.active:
            raise UserError(f"no active user {args.username!r}")
        token = create_token(session, user, args.name)
    print(token)  # noqa: T201
    return 0
