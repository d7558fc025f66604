"""Cells of the CSV files the app hands out (年度集計, 開示請求), which people open in a spreadsheet.

A spreadsheet runs a cell that begins with "=", "+", "-" or "@" (or a tab or carriage return before one) as
a formula, and a formula can reach outside the file (a link, a lookup). Text the app writes there — a name
an administrator typed, a label from a code list — is kept as text by a leading apostrophe, which the
spreadsheet shows as nothing: the cell reads as it was written.
"""
from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value):
    """`value` as a CSV cell: text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def row(values) -> list:
    return [cell(v) for v in values]
