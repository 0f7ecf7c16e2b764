"""`tian serve`: run the reviewer service (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tian.errors import UserError

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
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes (default 1; more than one needs a PostgreSQL --db)",
    )
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
    from service.app import create_app
    from service.settings import SettingsError

    # Every path first: a missing file is reported before anything slow happens.
    if args.model is not None and not (args.model / "manifest.json").is_file():
        raise UserError(f"--model {args.model}: not a model bundle (no manifest.json)")
    for path in args.imports:
        if not path.is_file():
            raise UserError(f"--import {path}: no such file")
    if args.topics is not None and not args.topics.is_file():
        raise UserError(f"--topics {args.topics}: no such file")
    if args.topics is not None and args.topics_year is None:
        raise UserError("--topics needs --topics-year (the year the topics belong to)")
    if not getattr(args, "verbose", False):
        # Migration chatter would bury the stage lines and the sign-in (-v shows it).
        logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = settings_from_args(args)
    workers = int(getattr(args, "workers", 1) or 1)
    check_workers(workers, settings.database_url)
    try:
        app = create_app(settings)
    except SettingsError as exc:
        raise UserError(str(exc)) from exc
    verbose = bool(getattr(args, "verbose", False))
    if args.imports or args.topics or args.demo_admin:
        sign_in = _prepare(settings, args)
    else:
        sign_in = None
        if workers > 1:
            _migrate_once(settings)
    if workers > 1:
        _serve_workers(settings, workers, sign_in, verbose=verbose)
    else:
        _serve(app, settings, sign_in, verbose=verbose)
    return 0


def check_workers(workers: int, database_url: str) -> None:
    """Refuse a worker count the database cannot take (SQLite: one process only)."""
    if workers < 1:
        raise UserError(f"--workers {workers}: needs at least 1")
    if workers > 1 and not database_url.startswith("postgresql"):
        raise UserError(
            f"--workers {workers} needs PostgreSQL (--db postgresql+psycopg://...): SQLite "
            "allows one writer at a time, so it serves with one worker process"
        )


def _migrate_once(settings: Settings) -> None:
    """Migrations and the start-up sweep of dead jobs, once, before any worker starts."""
    from service.app import build_state

    _say("opening the database and running migrations")
    state = build_state(settings)
    state.jobs.shutdown()
    state.engine.dispose()


def worker_environment(settings: Settings) -> dict[str, str]:
    """The ``TIAN_*`` variables that give every worker the parent's settings."""
    env = {
        "TIAN_DB_URL": settings.database_url,
        "TIAN_DATA_DIR": str(Path(settings.data_dir).resolve()),
        "TIAN_HOST": settings.host,
        "TIAN_PORT": str(settings.port),
    }
    if settings.model_dir is not None:
        env["TIAN_MODEL_DIR"] = str(Path(settings.model_dir).resolve())
    return env


def _serve_workers(
    settings: Settings, workers: int, sign_in: tuple[str, str] | None, verbose: bool
) -> None:
    """Run ``workers`` uvicorn processes; uvicorn's supervisor restarts any that dies."""
    import os
    import threading
    import time

    import httpx
    import uvicorn

    os.environ.update(worker_environment(settings))
    address = f"http://{settings.host}:{settings.port}"
    _say(f"starting {workers} worker processes (each loads the live model) ...")

    def announce() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{address}/healthz", timeout=2).status_code == 200:
                    _say(banner(address, sign_in))
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)

    threading.Thread(target=announce, name="tian-banner", daemon=True).start()
    uvicorn.run(
        "service.app:create_worker_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level="info" if verbose else "warning",
    )


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # noqa: T201


def banner(address: str, sign_in: tuple[str, str] | None) -> str:
    """The lines printed once the service is ready, last of all, so they are easy to find."""
    rule = "=" * 64
    lines = [rule, f"tian 提案审核服务已启动 (serving): {address}"]
    if sign_in:
        lines.append(f"登录 (sign in): 用户名 {sign_in[0]}  密码 {sign_in[1]}")
    lines += ["按 Ctrl+C 停止 (stop with Ctrl+C)", rule]
    return "\n".join(lines)


def _serve(app: object, settings: Settings, sign_in: tuple[str, str] | None, verbose: bool) -> None:
    """Run uvicorn; print the address and sign-in only once it is accepting connections."""
    import threading
    import time

    import uvicorn

    _say("starting the web server (loading the live model) ...")
    server = uvicorn.Server(
        uvicorn.Config(
            app,  # type: ignore[arg-type]
            host=settings.host,
            port=settings.port,
            log_level="info" if verbose else "warning",
            workers=1,
        )
    )

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.1)
        if server.started:
            _say(banner(f"http://{settings.host}:{settings.port}", sign_in))

    threading.Thread(target=announce, name="tian-banner", daemon=True).start()
    server.run()


class ConsoleProgress:
    """Prints the analysis's progress as lines (what a background job records in the service).

    A line when the stage changes, and while a stage runs (encoding every proposal can take
    minutes on a small CPU) a "still working" line every ``every`` seconds, so start-up is
    never silent. Use as a context manager: the heartbeat stops on exit.
    """

    def __init__(self, say: Callable[[str], None] = _say, every: float = 15.0) -> None:
        import threading
        import time

        self.done, self.total, self.message = 0, None, ""
        self._say = say
        self._every = every
        self._last = self._stage_started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, name="tian-progress", daemon=True)

    def __enter__(self) -> ConsoleProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=1)

    def _heartbeat(self) -> None:
        import time

        while not self._stop.wait(1.0):
            now = time.monotonic()
            if self.message and now - self._last >= self._every:
                self._last = now
                self._say(
                    f"  {self.message} …（已用 {now - self._stage_started:.0f} 秒，仍在进行）"
                )

    def progress(self, done: int, total: int | None = None, message: str | None = None) -> None:
        import time

        self.done = done
        if total is not None:
            self.total = total
        now = time.monotonic()
        new_stage = message is not None and message != self.message
        if message is not None:
            self.message = message
        if new_stage:
            self._stage_started = now
        if new_stage or now - self._last >= 5.0 or (self.total and done >= self.total):
            self._last = now
            count = f" {done}/{self.total}" if self.total and "正在生成建议" in self.message else ""
            self._say(f"  {self.message}{count}")


def _prepare(settings: Settings, args: argparse.Namespace) -> tuple[str, str] | None:
    """Demo admin, imports, topics and analysis before serving; returns the demo sign-in."""
    import time

    from service.app import build_state
    from service.bootstrap import DEMO_USER, ensure_demo_admin, prepare
    from service.importer import ImportRejected

    started = time.perf_counter()
    steps = 2 + bool(args.imports or args.topics) * 2
    step = iter(range(1, steps + 1))

    def stage(text: str) -> None:
        _say(f"[{next(step)}/{steps}] {text} ({time.perf_counter() - started:.0f} s)")

    stage("opening the database and running migrations")
    state = build_state(settings)
    try:
        sign_in = None
        user_id = None
        stage("demo sign-in" if args.demo_admin else "checking accounts")
        if args.demo_admin:
            try:
                user_id, password = ensure_demo_admin(state)
            except ValueError as exc:
                raise UserError(str(exc)) from exc
            sign_in = (DEMO_USER, password)
        if args.imports or args.topics:
            if user_id is None:
                user_id = _first_admin(state)
            stage("loading the live model and the text encoder")
            state.runtime.start()
            state.encoders.get()  # loaded here so that its time shows as its own stage
            stage("importing, then suggestions, duplicates and topics (first run: minutes)")
            try:
                with ConsoleProgress() as progress:
                    prepare(
                        state,
                        user_id=user_id,
                        imports=args.imports,
                        topics=args.topics,
                        topics_year=args.topics_year,
                        log=lambda message: _say(f"  {message}"),
                        job=progress,
                    )
            except ImportRejected as exc:
                lines = [f"{exc.file_name}: rejected, nothing was stored"] + [
                    f"  row {i.row or '-'} {i.column or ''}: {i.message}" for i in exc.issues[:20]
                ]
                raise UserError("\n".join(lines)) from exc
            except ValueError as exc:
                raise UserError(str(exc)) from exc
        log.info("prepared in %.1f s", time.perf_counter() - started)
        _say(f"prepared in {time.perf_counter() - started:.1f} s")
        return sign_in
    finally:
        state.jobs.shutdown()
        state.engine.dispose()


def _first_admin(state: object) -> int:
    """The user an import is recorded under when no demo admin is made."""
    from sqlalchemy import select

    from service.models import User

    with state.factory() as session:  # type: ignore[attr-defined]
        user_id = session.scalar(select(User.id).where(User.role == "admin").order_by(User.id))
    if user_id is None:
        raise UserError("--import needs an admin: run `tian user add NAME --role admin` first")
    return int(user_id)
