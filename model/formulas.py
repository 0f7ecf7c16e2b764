"""One rule for spreadsheet formula injection, shared by every CSV and XLSX writer.

A spreadsheet program runs a cell as a formula when its text starts with ``=``, ``+``, ``-``
or ``@`` (and some treat a leading tab or carriage return the same way). Spaces before the
character and the full-width forms Chinese input methods type (``＝``, ``＋``, ``－``, ``＠``)
do not protect a cell, since programs trim or fold them. Following OWASP's advice, such a cell
is written with a leading apostrophe in CSV; in XLSX the cell keeps its text and gets the
``quotePrefix`` style instead, which shows no apostrophe but is never evaluated.
"""

from __future__ import annotations

import unicodedata

FORMULA_CHARS = frozenset("=+-@\t\r")
# Characters a spreadsheet may skip before it looks for a formula: spaces of every width.
_SKIPPED = " \u3000\u00a0"


def is_formula_like(value: object) -> bool:
    """Whether ``value`` is text a spreadsheet could read as a formula."""
    if not isinstance(value, str) or not value:
        return False
    if value[0] in FORMULA_CHARS:
        return True
    stripped = value.lstrip(_SKIPPED)
    if not stripped:
        return False
    # NFKC folds the full-width forms (＝＋－＠) into their ASCII characters.
    return unicodedata.normalize("NFKC", stripped[0])[:1] in FORMULA_CHARS


def neutralise(value: str) -> str:
    """``value`` safe for a CSV cell: formula-like text gets a leading apostrophe.

    Text that already starts with apostrophes before formula-like text gets one more, so
    :func:`unneutralise` always gives back exactly what was written.
    """
    return "'" + value if is_formula_like(value.lstrip("'")) else value


def neutralise_cell(value: object) -> object:
    """:func:`neutralise` for any cell value (numbers and empty cells pass unchanged)."""
    return neutralise(value) if isinstance(value, str) else value


def unneutralise(value: str) -> str:
    """Undo :func:`neutralise` when reading back a CSV this project wrote."""
    if value.startswith("'") and is_formula_like(value.lstrip("'")):
        return value[1:]
    return value


def protect_xlsx_cell(cell: object) -> None:
    """Give an openpyxl cell holding formula-like text the ``quotePrefix`` style.

    The text stays as it is (no visible apostrophe) and is stored as a string, so neither
    Excel nor LibreOffice evaluates it.
    """
    value = getattr(cell, "value", None)
    if is_formula_like(value):
        cell.data_type = "s"  # type: ignore[attr-defined]
        cell.quotePrefix = True  # type: ignore[attr-defined]
