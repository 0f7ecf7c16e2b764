"""`tian user`: users of the reviewer service: add, token, disable, enable, passwd, revoke."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from tian.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `user` subcommand: add, token, disable, enable, passwd, revoke."""
    p = subparsers.add_parser("user", help="manage reviewer service users")
    p.add_argument("--db", metavar="URL", help="database URL (default: SQLite in the data folder)")
    p.add_argument("--data-dir", type=Path, metavar="DIR", help="data folder (default ./var)")
    sub = p.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="create a user (the first admin, for example)")
    add.add_argument("username")
    add.add_argument(
        "--role", choices=("admin", "reviewer", "viewer", "member"), default="reviewer"
    )
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=run_add)
    tok = sub.add_parser("token", help="create an API bearer token for a user (printed once)")
    tok.add_argument("username")
    tok.add_argument("--name", default="", help="a note saying what the token is for")
    tok.add_argument(
        "--days", type=int, default=90, help="lifetime in days (default 90; 0: until revoked)"
    )
    tok.set_defaults(func=run_token)
    for action, text in (
        ("disable", "disable a user: ends its sessions and revokes its tokens"),
        ("enable", "enable a disabled user again"),
        ("revoke", "end every session and revoke every API token of a user"),
    ):
        one = sub.add_parser(action, help=text)
        one.add_argument("username")
        one.set_defaults(func=run_manage, action=action)
    pw = sub.add_parser("passwd", help="set a user's password (ends its sessions and tokens)")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    pw.set_defaults(func=run_passwd)


def _factory(args: argparse.Namespace) -> Any:
    from service.db import make_engine, make_session_factory, upgrade
    from tian.commands.serve import settings_from_args

    args.model = None
    settings = settings_from_args(args)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return make_session_factory(engine)


def _password(args: argparse.Namespace) -> str:

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

    if args.days < 0:
        raise UserError("--days must be 0 or more")
    factory = _factory(args)
    with factory() as session, session.begin():
        user = session.scalar(select(User).where(User.username == args.username))
        if user is None or not user.active:
            raise UserError(f"no active user {args.username!r}")
        token = create_token(session, user, args.name, days=args.days or None)
    print(token)  # noqa: T201
    return 0


def run_manage(args: argparse.Namespace) -> int:
    """Entry point for `tian user disable|enable|revoke`."""
    from service.auth import AuthError, find_user, revoke_all, set_active

    factory = _factory(args)
    try:
        with factory() as session, session.begin():
            user = find_user(session, args.username)
            if args.action == "revoke":
                revoke_all(session, user)
            else:
                set_active(session, user, args.action == "enable")
    except AuthError as exc:
        raise UserError(str(exc)) from exc
    done = {
        "disable": "disabled; its sessions and tokens ended",
        "enable": "enabled",
        "revoke": "every session and token revoked",
    }
    print(f"user {args.username}: {done[args.action]}", file=sys.stderr)  # noqa: T201
    return 0


def run_passwd(args: argparse.Namespace) -> int:
    """Entry point for `tian user passwd`."""
    from service.auth import AuthError, change_password, find_user

    password = _password(args)
    factory = _factory(args)
    try:
        with factory() as session, session.begin():
            change_password(session, find_user(session, args.username), password)
    except AuthError as exc:
        raise UserError(str(exc)) from exc
    print(  # noqa: T201
        f"user {args.username}: password changed; its sessions and tokens ended", file=sys.stderr
    )
    return 0
