"""Downloads: the 交办 list (XLSX) and reviewed decisions as training data (CSV / JSONL)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response

from service.deps import CurrentUser, SessionDep
from service.exporter import assignments_xlsx, training_file
from service.queries import YearPath
from service.schemas import file_response

router = APIRouter(prefix="/api/exports", tags=["exports"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}


@router.get(
    "/{year}/assignments.xlsx",
    response_class=Response,
    responses=file_response(XLSX, "the 交办 list as an Excel workbook"),
)
def export_assignments(year: YearPath, session: SessionDep, user: CurrentUser) -> Response:
    """The year's 交办 list: proposal, category, main unit, co-units, merge group, status."""
    data = assignments_xlsx(session, year)
    return Response(data, media_type=XLSX, headers=_attachment(f"{year}年交办清单.xlsx"))


@router.get(
    "/{year}/training.{fmt}",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
            "description": "reviewed labels as CSV or JSON lines",
        }
    },
)
def export_training(
    year: YearPath, fmt: Literal["csv", "jsonl"], session: SessionDep, user: CurrentUser
) -> Response:
    """Reviewer-confirmed labels in the proposal record format (no proposer)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = training_file(session, year, fmt, Path(tmp))
        data = path.read_bytes()
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    return Response(data, media_type=media, headers=_attachment(f"training_{year}.{fmt}"))
