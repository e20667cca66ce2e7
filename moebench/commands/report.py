"""Results -> one DataFrame -> one rendering (rich table, JSON, CSV or Markdown), written whole.

Every command that prints rows builds a :class:`Report` and calls :func:`emit`. JSON renders the
report's structured payload (nested objects kept); the other formats render its table.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from moebench.errors import InputError


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


@dataclass(frozen=True)
class Report:
    title: str
    table: pd.DataFrame
    """Columns named in snake_case (what CSV and JSON carry)."""
    payload: Any
    footer: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    """Shorter headers for the terminal and Markdown tables, by column."""
    hidden: tuple[str, ...] = ()
    """Columns CSV carries but tables leave out (said in a header or the footer)."""

    def shown(self) -> pd.DataFrame:
        """The table as people read it: hidden columns dropped, headers relabelled."""
        df = self.table.drop(columns=[c for c in self.hidden if c in self.table.columns])
        return df.rename(columns=self.labels)


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars to Python, non-finite floats refused."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite number in output: {value}")
    return value


def format_cell(value: Any) -> str:
    """Human formatting for tables: thousands separators, three significant figures."""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            return "-"
        if v == 0:
            return "0"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3g}"
    return "-" if value is None else str(value)


def to_json(report: Report) -> str:
    return json.dumps(_plain(report.payload), indent=2, allow_nan=False) + "\n"


def to_csv(report: Report) -> str:
    return report.table.to_csv(index=False, lineterminator="\n")


def to_markdown(report: Report) -> str:
    table = report.shown()
    cols = [str(c) for c in table.columns]
    lines = [f"### {report.title}", "", "| " + " | ".join(cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for row in table.itertuples(index=False):
        cells = [format_cell(v).replace("|", "\\|") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {f}" for f in report.footer]
    return "\n".join(lines) + "\n"


def rich_table(report: Report) -> Table:
    shown = report.shown()
    table = Table(title=report.title, caption="\n".join(report.footer) or None,
                  caption_justify="left")
    for col in shown.columns:
        numeric = pd.api.types.is_numeric_dtype(shown[col])
        table.add_column(str(col), justify="right" if numeric else "left")
    for row in shown.itertuples(index=False):
        table.add_row(*(format_cell(v) for v in row))
    return table


def to_text(report: Report, width: int = 160) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, no_color=True, highlight=False).print(rich_table(report))
    return buf.getvalue()


def render(report: Report, fmt: OutputFormat) -> str:
    return {
        OutputFormat.json: to_json, OutputFormat.csv: to_csv,
        OutputFormat.markdown: to_markdown, OutputFormat.table: to_text,
    }[fmt](report)


@contextmanager
def atomic_target(path: Path, option: str, suffix: str = ".tmp") -> Iterator[str]:
    """A temporary file beside ``path`` to write into; renamed onto ``path`` only if the block
    finishes, removed otherwise, so ``path`` is written whole or not at all."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(option, None, f"folder {folder} does not exist")
    if path.is_dir():
        raise InputError(option, None, f"{path} is a directory; give a file name")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)  # give the file the permissions a plain open() would
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all."""
    with atomic_target(path, "--output") as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def write_dataframe(df: pd.DataFrame, path: Path) -> None:
    """A DataFrame as CSV or Parquet (by extension), written whole or not at all."""
    if path.suffix.lower() == ".csv":
        write_atomic(path, df.to_csv(index=False, lineterminator="\n"))
        return
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError("--output", None,
                         "Parquet needs pyarrow: pip install 'moebench[parquet]'") from None
    with atomic_target(path, "--output") as tmp:
        df.to_parquet(tmp, index=False)


def emit(report: Report, fmt: OutputFormat, output: Path | None, console: Console) -> None:
    """Render once; print it, or write it atomically to ``output``."""
    if output is not None:
        write_atomic(output, render(report, fmt))
        return
    if fmt is OutputFormat.table:
        console.print(rich_table(report))
    else:
        console.file.write(render(report, fmt))
