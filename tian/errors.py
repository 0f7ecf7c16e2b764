"""Errors the command line reports to the user (kept apart from `tian.cli` so that the
subcommands can import them without importing the CLI that imports them)."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A problem the user can fix (bad file, missing model); printed without a traceback."""
