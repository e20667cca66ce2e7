"""One row of a measured-runs CSV, read cell by cell: typed values, and one-line errors that
name the file, the line and the column."""

from __future__ import annotations

import datetime
import math

from moebench.errors import InputError


class CsvRow:
    """Typed access to one CSV row with errors naming file, line and column."""

    def __init__(self, cells: dict[str, str], where: str, line: int) -> None:
        self.cells, self.where, self.line = cells, where, line

    def _err(self, column: str, message: str) -> InputError:
        return InputError(self.where, f"line {self.line}, column {column}", message)

    def text(self, column: str) -> str | None:
        value = (self.cells.get(column) or "").strip()
        return value or None

    def required(self, column: str) -> str:
        value = self.text(column)
        if value is None:
            raise self._err(column, "is empty; this column is required")
        return value

    def _float(self, column: str, required: bool, noun: str) -> tuple[str, float] | None:
        """The cell as written and as a float (None when empty and not required)."""
        raw = self.required(column) if required else self.text(column)
        if raw is None:
            return None
        try:
            return raw, float(raw)
        except ValueError:
            raise self._err(column, f"expected a {noun}, got {raw!r}") from None

    def integer(self, column: str, required: bool = False) -> int | None:
        cell = self._float(column, required, "whole number")
        if cell is None:
            return None
        raw, value = cell
        if not value.is_integer() or value <= 0:
            raise self._err(column, f"expected a positive whole number, got {raw!r}")
        return int(value)

    def number(self, column: str, required: bool = False) -> float | None:
        cell = self._float(column, required, "number")
        if cell is None:
            return None
        raw, value = cell
        if not (math.isfinite(value) and value > 0):
            raise self._err(column, f"expected a positive number, got {raw!r}")
        return value

    def fraction(self, column: str) -> float:
        """A fraction from 0 to 1; an empty cell is 0 (published runs keep state on device)."""
        raw = self.text(column)
        if raw is None:
            return 0.0
        try:
            value = float(raw)
        except ValueError:
            raise self._err(column, f"expected a fraction from 0 to 1, got {raw!r}") from None
        if not 0.0 <= value <= 1.0:
            raise self._err(column, f"expected a fraction from 0 to 1, got {raw!r}")
        return value

    def date(self, column: str) -> datetime.date | None:
        raw = self.text(column)
        if raw is None:
            return None
        try:
            return datetime.date.fromisoformat(raw)
        except ValueError:
            raise self._err(column, f"expected a date YYYY-MM-DD, got {raw!r}") from None

    def flag(self, column: str) -> bool | None:
        raw = self.text(column)
        if raw is None:
            return None
        if raw.lower() not in ("true", "false"):
            raise self._err(column, f"expected true or false, got {raw!r}")
        return raw.lower() == "true"

    def choice(self, column: str, allowed: tuple[str, ...], required: bool = False
               ) -> str | None:
        raw = self.required(column) if required else self.text(column)
        if raw is not None and raw not in allowed:
            raise self._err(column, f"expected one of {', '.join(allowed)}, got {raw!r}")
        return raw
