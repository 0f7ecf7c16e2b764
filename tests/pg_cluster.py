"""A throwaway PostgreSQL cluster for the test run, when PostgreSQL's binaries are installed.

`make test` then runs the PostgreSQL tests on any machine that has the server binaries
(Debian's `postgresql` package), not only in CI, where `.ci/postgres.sh` starts one and sets
TIAN_TEST_PG_URL itself. The cluster lives in a temporary folder on a free loopback port and
is stopped and removed when the run ends.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start() -> tuple[str, Callable[[], None]] | None:
    """Start a cluster; returns its SQLAlchemy URL and a stop function, or None if impossible."""
    bindir = _bin_dir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        return None
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="tian-test-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            return None
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "tian", "--auth=trust", "-E", "UTF8")
        run(
            str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w",
            "-o", f"-c listen_addresses=127.0.0.1 -c port={port} -k {folder}", "start",
        )  # fmt: skip
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "tian", "tian_test")
    except (subprocess.SubprocessError, OSError):
        shutil.rmtree(folder, ignore_errors=True)
        return None

    def stop() -> None:
        try:
            run(str(bindir / "pg_ctl"), "-D", str(data), "stop", "-m", "immediate")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return f"postgresql+psycopg://tian@127.0.0.1:{port}/tian_test", stop
