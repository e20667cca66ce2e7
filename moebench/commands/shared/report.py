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
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.table import Table

from moebench.errors import InputError

if TYPE_CHECKING:  # pandas costs half a second to import: only commands that print rows pay it
    import pandas as pd


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    parquet = "parquet"


# What ``--output FILE`` writes when ``--format`` is not given, by the file's extension.
FORMAT_BY_SUFFIX = {".json": OutputFormat.json, ".csv": OutputFormat.csv,
                    ".md": OutputFormat.markdown, ".markdown": OutputFormat.markdown,
                    ".parquet": OutputFormat.parquet}


# Extensions written as the rich table (and a file with none).
TABLE_SUFFIXES = ("", ".txt", ".text", ".log")


def resolve_format(fmt: OutputFormat | None, output: Path | None) -> OutputFormat:
    """``--format`` if given, else the output file's extension, else a table."""
    if fmt is not None:
        chosen = fmt
    elif output is not None:
        suffix = output.suffix.lower()
        if suffix not in FORMAT_BY_SUFFIX and suffix not in TABLE_SUFFIXES:
            raise InputError("--output", str(output), f"unknown extension {suffix!r}; use .json, "
                                                      ".csv, .md, .parquet, or .txt for the table "
                                                      "(or give --format)")
        chosen = FORMAT_BY_SUFFIX.get(suffix, OutputFormat.table)
    else:
        chosen = OutputFormat.table
    if chosen is OutputFormat.parquet and output is None:
        raise InputError("--format", None,
                         "parquet is a binary file format; add --output FILE.parquet")
    return chosen


@dataclass(frozen=True)
class Report:
    title: str
    table: Any
    """A DataFrame, or a function that builds one, called only when a format needs the table
    (so ``--format json`` never imports pandas); read it through :meth:`frame`."""
    """Columns named in snake_case (what CSV and JSON carry)."""
    payload: Any
    footer: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    """Shorter headers for the terminal and Markdown tables, by column."""
    hidden: tuple[str, ...] = ()
    """Columns CSV carries but tables leave out (said in a header or the footer)."""
    display: dict[str, list[str]] = field(default_factory=dict)
    """Cell text that tables show instead of a column's values (a mark, an interval)."""
    optional: tuple[str, ...] = ()
    """Columns a narrow terminal may leave out, the first given first."""

    def frame(self) -> pd.DataFrame:
        return self.table() if callable(self.table) else self.table

    def rows(self) -> int:
        """Rows of the table (without building it when the payload says)."""
        return len(self.frame())

    def shown(self, drop: tuple[str, ...] = ()) -> pd.DataFrame:
        """The table as people read it: hidden (and ``drop``) columns out, display text in,
        headers relabelled."""
        df = self.frame().copy()
        for col, cells in self.display.items():
            if col in df.columns:
                df[col] = cells
        out = [c for c in (*self.hidden, *drop) if c in df.columns]
        return df.drop(columns=out).rename(columns=self.labels)


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


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: missing values (NaN) become null, numpy scalars Python."""
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in df.to_dict("records")]


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
    return report.frame().to_csv(index=False, lineterminator="\n")


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


def _grid(report: Report, shown: pd.DataFrame, caption: list[str]) -> Table:
    """Numbers and names never wrap (a cut number misleads); text with spaces, such as a
    plan, folds at the spaces when the terminal is narrow."""
    from pandas.api.types import is_numeric_dtype

    table = Table(title=report.title, caption="\n".join(caption) or None,
                  caption_justify="left")
    for col in shown.columns:
        numeric = is_numeric_dtype(shown[col]) or _whole_numbers(shown[col])
        words = not numeric and shown[col].astype(str).str.contains(" ").any()
        table.add_column(str(col), justify="right" if numeric else "left",
                         no_wrap=not words, overflow="fold")
    for row in shown.itertuples(index=False):
        table.add_row(*(format_cell(v) for v in row))
    return table


def _whole_numbers(column: pd.Series) -> bool:
    """Whole numbers with gaps (None), kept as objects not to print as "16.0": numbers too."""
    given = [v for v in column if v is not None]
    return bool(given) and all(isinstance(v, int | np.integer) and not isinstance(v, bool)
                               for v in given)


def _vertical(report: Report) -> Table:
    """One block per row, field and value, for terminals too narrow for any grid."""
    shown = report.shown()
    table = Table(title=report.title, caption="\n".join(report.footer) or None,
                  caption_justify="left", show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    for i, row in enumerate(shown.itertuples(index=False)):
        if i:
            table.add_section()
        for col, value in zip(shown.columns, row, strict=True):
            table.add_row(str(col), format_cell(value))
    return table


def rich_table(report: Report, width: int = 200) -> Table:
    """The widest grid that fits ``width`` columns: optional columns leave first (the caption
    says which), then text folds at spaces; if even that is too wide, a vertical layout."""
    unbounded = Console(file=io.StringIO(), width=100_000)
    for n in range(len(report.optional) + 1):
        dropped = report.optional[:n]
        names = [report.labels.get(c, c) for c in dropped]
        caption = report.footer + ([f"left out for width (use a wider terminal or "
                                    f"--format csv): {', '.join(names)}"] if names else [])
        table = _grid(report, report.shown(dropped), caption)
        if unbounded.measure(table).maximum <= width:
            return table
    # Folding text (the plan) at spaces is enough when the narrowest such layout fits.
    if unbounded.measure(table).minimum <= width:
        return table
    return _vertical(report)


def to_text(report: Report, width: int | None = None) -> str:
    """The table as text; for a file (``width`` None) at the width every column needs, since
    no terminal is there to fit."""
    if width is None:
        measure = Console(file=io.StringIO(), width=100_000).measure
        width = max(80, measure(_grid(report, report.shown(), report.footer)).maximum)
    buf = io.StringIO()
    Console(file=buf, width=width, no_color=True, highlight=False).print(
        rich_table(report, width))
    return buf.getvalue()


def render(report: Report, fmt: OutputFormat) -> str:
    if fmt is OutputFormat.parquet:
        raise InputError("--format", None, "parquet is written to a file only; use --output")
    return {
        OutputFormat.json: to_json, OutputFormat.csv: to_csv,
        OutputFormat.markdown: to_markdown, OutputFormat.table: to_text,
    }[fmt](report)


@contextmanager
def atomic_target(path: Path, option: str, suffix: str = ".tmp") -> Iterator[str]:
    """A temporary file beside ``path`` to write into; renamed onto ``path`` only if the block
    finishes, removed otherwise, so ``path`` is written whole or not at all."""
    if path.exists() and not path.is_file() and not path.is_dir():
        # A device or pipe (/dev/null, /dev/stdout, a FIFO): write straight into it; renaming
        # a file over it would replace the device itself.
        yield str(path)
        return
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


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """A DataFrame as Parquet, written whole or not at all."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError("--output", None,
                         "Parquet needs pyarrow: pip install 'moebench[parquet]'") from None
    with atomic_target(path, "--output") as tmp:
        df.to_parquet(tmp, index=False)


def emit(report: Report, fmt: OutputFormat | None, output: Path | None,
         console: Console) -> None:
    """Render once; print it, or write it atomically to ``output`` (in the format its
    extension says unless ``fmt`` is given) and print one line saying what was written."""
    fmt = resolve_format(fmt, output)
    if output is not None:
        if fmt is OutputFormat.parquet:
            write_parquet(report.frame(), output)
        else:
            write_atomic(output, render(report, fmt))
        console.file.write(f"wrote {output}: {report.rows()} rows as {fmt.value}\n")
        return
    if fmt is OutputFormat.table:
        console.print(rich_table(report, console.width))
    else:
        console.file.write(render(report, fmt))
