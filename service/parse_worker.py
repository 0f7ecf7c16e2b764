"""Parse one uploaded file in a child process with a memory and CPU limit.

Run by :func:`service.importer.parse_upload` as ``python -m service.parse_worker IN OUT
MEMORY_MB CPU_S``. A hostile or runaway file can then exhaust only this process, which the
service stops, instead of the server itself. The child reads with
:func:`model.records.read_proposals` (案由 required) and writes JSON to ``OUT``:
``{"records": [...]}`` or ``{"issues": [...], "more": N}``. Exit status 3 means it ran out of
memory. Nothing is printed: the records hold personal data.
"""

from __future__ import annotations

import json
import os
import resource
import sys

MEMORY_EXIT = 3


def _limit(memory_mb: int, cpu_s: int) -> None:
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))


def main(argv: list[str]) -> int:
    source, target, memory_mb, cpu_s = argv[0], argv[1], int(argv[2]), int(argv[3])
    _limit(memory_mb, cpu_s)
    try:
        from model.records import read_proposals
        from model.tables import RecordError

        try:
            records = read_proposals(source, max_rows=200_000, require_title=True)
            payload: dict[str, object] = {"records": [r.to_dict() for r in records]}
        except RecordError as exc:
            payload = {
                "issues": [
                    {"row": i.row, "column": i.column, "message": i.message} for i in exc.issues
                ],
                "more": exc.more,
            }
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(payload, out, ensure_ascii=False)
    except MemoryError:
        return MEMORY_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
