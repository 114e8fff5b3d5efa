"""`politikpi export`: the KPI tables of a release for people who live in Excel or in a BI tool
that cannot open DuckDB. One `.xlsx` (a sheet per table plus a `README` sheet of table and column
descriptions), or a folder of Parquet or CSV files (one per table, plus `columns.csv`). Reads the
release's KPI file (or, for a release published before KPI files, the release file). No Prefect."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb

from flows.release.publish import kpi_tables
from flows.transform.transform import quote_path

FORMATS = ("xlsx", "parquet", "csv")
EXCEL_MAX_ROWS = 1_048_575  # a sheet's rows below its header


def describe(con: duckdb.DuckDBPyConnection, tables: list[str]) -> list[tuple[str, str, str, str]]:
    """(table, column, type, description) for every exported column; a table's own row has column ''."""
    rows = []
    for table in tables:
        comment = con.execute("select comment from duckdb_tables() where database_name = 'release' "
                              "and table_name = ?", [table]).fetchone()[0]
        rows.append((table, "", "", comment or ""))
        rows += con.execute("select table_name, column_name, data_type, coalesce(comment, '') from duckdb_columns() "
                            "where database_name = 'release' and table_name = ? order by column_index",
                            [table]).fetchall()
    return rows


def export(source: Path, out: Path, fmt: str, progress=None) -> list[tuple[str, int]]:
    """Write the KPI tables of a release file to `out` in `fmt`; returns (table, rows) per table."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    with duckdb.connect() as con:
        con.execute(f"attach {quote_path(source)} as release (read_only)")
        tables = kpi_tables(con, "release")
        if fmt == "xlsx":
            return _xlsx(con, tables, out, progress)
        tmp = out.with_name(f".{out.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        written = []
        for table in tables:
            target = tmp / f"{table}.{fmt}"
            options = "(format parquet)" if fmt == "parquet" else "(format csv, header true)"
            con.execute(f'copy (select * from release."{table}") to {quote_path(target)} {options}')
            written.append((table, con.execute(f'select count(*) from release."{table}"').fetchone()[0]))
            if progress:
                progress(table)
        con.execute("create temp table columns_doc (table_name varchar, column_name varchar, data_type varchar, "
                    "description varchar)")
        con.executemany("insert into columns_doc values (?, ?, ?, ?)", describe(con, tables))
        con.execute(f"copy columns_doc to {quote_path(tmp / 'columns.csv')} (format csv, header true)")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return written


def _cell(value):
    """What openpyxl can write: dates and numbers as they are, time zones dropped to UTC, the rest as text."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if value is None or isinstance(value, (bool, int, float, str, dt.date)):
        return value
    return str(value)


def _xlsx(con: duckdb.DuckDBPyConnection, tables: list[str], out: Path, progress) -> list[tuple[str, int]]:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    doc = book.create_sheet("README")
    doc.append(["table", "column", "type", "description"])
    for row in describe(con, tables):
        doc.append(list(row))
    written = []
    for table in tables:
        cur = con.execute(f'select * from release."{table}"')
        header = [d[0] for d in cur.description]
        sheet = book.create_sheet(table[:31])
        sheet.append(header)
        rows = 0
        while batch := cur.fetchmany(10_000):
            if rows + len(batch) > EXCEL_MAX_ROWS:
                raise ValueError(f"{table} has more rows than an Excel sheet holds; use --format parquet or csv")
            for row in batch:
                sheet.append([_cell(v) for v in row])
            rows += len(batch)
        written.append((table, rows))
        if progress:
            progress(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    book.save(tmp)
    tmp.replace(out)
    return written
