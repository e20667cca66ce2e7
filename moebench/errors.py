"""The one error type that reaches users: a bad input, reported on one line."""

from __future__ import annotations


class InputError(Exception):
    """Bad input: names the file (or option), the field and what is expected.

    The CLI turns it into one line on stderr and exit code 2. Library code raises it; it never
    prints.
    """

    def __init__(self, where: str, field: str | None, message: str) -> None:
        self.where = where
        self.field = field
        self.message = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        field = f": {self.field}" if self.field else ""
        return f"{self.where}{field}: {self.message}".replace("\n", " ")
