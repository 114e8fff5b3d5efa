"""Landing-file readers: bytes in, raw text rows (personal data dropped) and broken lines out.

Plain Python and DuckDB, no Prefect. DuckDB parses CSV and JSON Lines; its reject tables
find the broken lines, of which only length and hash are ever kept (SPEC section 3).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import itertools
import os
import tempfile
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from flows.sources import Source

CHUNK = 1 << 20
_local = threading.local()
_reads = itertools.count()


@contextmanager
def _reader():
    """A DuckDB connection reused by this thread (a new instance costs ~20 ms a file), with a
    fresh pair of reject-table names for one read; the reject tables are dropped afterwards."""
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect()
    n = next(_reads)
    names = (f"rej_{n}", f"rej_scan_{n}")
    try:
        yield con, names
    finally:
        for name in names:
            con.execute(f"drop table if exists {name}")
BROKEN_SCHEMA = {"line": pl.Int64, "reason": pl.String, "length": pl.Int64, "sha256": pl.String}


class Rejected(Exception):
    """The whole file cannot be read; the message is the reason shown to users."""


@dataclass
class Parsed:
    rows: pl.DataFrame  # the source's non-personal raw columns as text, plus `line`
    broken: pl.DataFrame  # line, reason, length, sha256 of lines that are not records
    encoding: str


def max_bytes() -> int:
    return int(os.environ.get("POLITIKPI_MAX_FILE_BYTES", 4 << 30))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open_bytes(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def detect_encoding(path: Path) -> str:
    """'utf-8' or 'cp1252', by decoding the whole stream; rejects binary, broken gzip, bombs."""
    limit = max_bytes()
    for encoding in ("utf-8", "cp1252"):
        decoder = codecs.getincrementaldecoder(encoding)()
        total = 0
        try:
            with _open_bytes(path) as fh:
                while chunk := fh.read(CHUNK):
                    total += len(chunk)
                    if total > limit:
                        raise Rejected(f"expands beyond {limit:,} bytes (POLITIKPI_MAX_FILE_BYTES)")
                    if b"\x00" in chunk:
                        raise Rejected("binary content (NUL bytes): not a text file")
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise Rejected(f"broken gzip: {exc}") from None
        except OSError as exc:
            raise Rejected(f"cannot be read: {exc.strerror or exc}") from None
    raise Rejected("not text in UTF-8 or Windows-1252")


def _utf8_copy(path: Path, encoding: str, tmpdir: Path) -> Path:
    """A plain UTF-8 copy for DuckDB, which reads UTF-8 (gzipped or not) natively."""
    if encoding == "utf-8":
        return path
    fd, name = tempfile.mkstemp(suffix=".csv", dir=tmpdir)
    with _open_bytes(path) as src, os.fdopen(fd, "wb") as dst:
        decoder = codecs.getincrementaldecoder(encoding)()
        while chunk := src.read(CHUNK):
            dst.write(decoder.decode(chunk).encode("utf-8"))
    return Path(name)


def _first_line(path: Path) -> str:
    with _open_bytes(path) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        return text.readline()


def _line_numbers(valid_nl: np.ndarray, rejects: pl.DataFrame, first_line: int) -> tuple:
    """Physical start line of each valid record and of each rejected one.

    DuckDB numbers records (`line` in its reject table), not physical lines: a quoted field
    may span lines. Valid records fill the record slots rejects leave free, in order; a
    record's line is the first line plus its slot plus all line breaks inside earlier records.
    """
    n_valid = len(valid_nl)
    slots_rej = np.sort(rejects["slot"].to_numpy()) if len(rejects) else np.zeros(0, dtype=np.int64)
    k = np.arange(1, n_valid + 1)
    adjusted = slots_rej - np.arange(len(slots_rej))
    slots_valid = k + np.searchsorted(adjusted, k, side="right")
    total = max([n_valid + len(slots_rej), *slots_valid[-1:], *slots_rej[-1:]])
    nl = np.zeros(total + 1, dtype=np.int64)
    nl[slots_valid] = valid_nl
    if len(rejects):
        nl[rejects["slot"].to_numpy()] = rejects["nl"].to_numpy()
    before = np.concatenate([[0], np.cumsum(nl)[:-1]])
    lines = first_line - 1 + np.arange(total + 1) + before
    return lines[slots_valid], lines[rejects["slot"].to_numpy()] if len(rejects) else np.zeros(0)


def _rejects(con: duckdb.DuckDBPyConnection, header: bool, table: str) -> pl.DataFrame:
    return con.sql(f"""
        select line - {int(header)} as slot,
               min(error_type) as error_type,
               any_value(strlen(csv_line)) as length,
               any_value(sha256(csv_line)) as sha256,
               any_value(strlen(csv_line) - strlen(replace(csv_line, chr(10), ''))) as nl
        from {table} group by line order by line
    """).pl()


def _broken(rejects: pl.DataFrame, lines: np.ndarray, reason_of) -> pl.DataFrame:
    return pl.DataFrame({
        "line": lines.astype(np.int64),
        "reason": [reason_of(t) for t in rejects["error_type"].to_list()],
        "length": rejects["length"].cast(pl.Int64),
        "sha256": rejects["sha256"],
    }, schema=BROKEN_SCHEMA)


CSV_REASONS = {"TOO MANY COLUMNS": "wrong number of fields (too many)",
               "MISSING COLUMNS": "wrong number of fields (too few)",
               "LINE SIZE OVER MAXIMUM": "line too long"}


def read_csv(path: Path, source: Source, tmpdir: Path) -> Parsed:
    """Semicolon CSV with a header row; personal-data columns are never selected."""
    encoding = detect_encoding(path)
    data = _utf8_copy(path, encoding, tmpdir)
    try:
        header = _first_line(data).rstrip("\r\n")
        if not header:
            raise Rejected("empty file: no header row")
        found = next(csv.reader([header], delimiter=";"))
        expected = source.schema.COLUMNS
        if found != expected:
            raise Rejected(f"wrong columns: expected {';'.join(expected)}, found {';'.join(found)[:200]}")
        columns = ", ".join(f"'{c}': 'VARCHAR'" for c in expected)
        keep = ", ".join(f'"{c}"' for c in source.raw_columns)
        newlines = " + ".join(f"coalesce(strlen(\"{c}\") - strlen(replace(\"{c}\", chr(10), '')), 0)"
                              for c in expected)
        with _reader() as (con, (rej, rej_scan)):
            try:
                rows = con.sql(f"""
                    select {keep}, {newlines} as _nl
                    from read_csv(?, delim=';', quote='"', escape='"', header=true, auto_detect=false,
                                  columns={{{columns}}}, store_rejects=true, rejects_table='{rej}',
                                  rejects_scan='{rej_scan}', strict_mode=true, max_line_size=1048576)
                """, params=[str(data)]).to_arrow_table()
            except duckdb.Error as exc:
                raise Rejected(f"cannot be parsed as CSV: {str(exc).splitlines()[0][:200]}") from None
            rows = pl.from_arrow(rows)
            rejects = _rejects(con, header=True, table=rej)
    finally:
        if data != path:
            data.unlink(missing_ok=True)
    quote_errors = rejects.filter(pl.col("error_type") == "UNQUOTED VALUE")
    if len(quote_errors):
        raise Rejected(f"unclosed or stray quote in record {quote_errors['slot'][0]}")
    valid_lines, reject_lines = _line_numbers(rows["_nl"].to_numpy(), rejects, first_line=2)
    rows = rows.drop("_nl").with_columns(line=pl.Series(valid_lines, dtype=pl.Int64))
    broken = _broken(rejects, reject_lines, lambda t: CSV_REASONS.get(t, t.lower()))
    return Parsed(rows.select(["line", *source.raw_columns]), broken, encoding)


def read_jsonl(path: Path, source: Source, tmpdir: Path) -> Parsed:
    """JSON Lines: each line one call-out; a line that is not a JSON object is one broken row."""
    encoding = detect_encoding(path)
    if encoding != "utf-8":
        raise Rejected("JSON Lines must be UTF-8")
    string_fields = set(source.schema.STRING_FIELDS)
    extract = ", ".join(
        f"obj ->> '$.{f}' as \"{f}\"" if f in string_fields
        else f"nullif(json_extract(obj, '$.{f}')::varchar, 'null') as \"{f}\""
        for f in source.schema.FIELDS
    )
    with _reader() as (con, (rej, rej_scan)):
        try:
            table = con.sql(f"""
                with lines as (
                    select row_number() over () as slot, j
                    from read_csv(?, delim=E'\\x01', quote='', escape='', header=false, auto_detect=false,
                                  columns={{'j': 'VARCHAR'}}, store_rejects=true, rejects_table='{rej}',
                                  rejects_scan='{rej_scan}', strict_mode=true, max_line_size=1048576)
                ),
                parsed as (
                    select slot, j, case when json_valid(j) then
                               case when json_type(j) = 'OBJECT' then j::json end end as obj
                    from lines
                )
                select slot, j is null as blank, obj is not null as is_object,
                       strlen(j) as length, sha256(j) as sha256, {extract}
                from parsed
            """, params=[str(path)]).to_arrow_table()
        except duckdb.Error as exc:
            raise Rejected(f"cannot be parsed as JSON Lines: {str(exc).splitlines()[0][:200]}") from None
        rows = pl.from_arrow(table)
        rejects = _rejects(con, header=False, table=rej)
    valid_lines, reject_lines = _line_numbers(np.zeros(len(rows), dtype=np.int64), rejects, first_line=1)
    rows = rows.with_columns(line=pl.Series(valid_lines, dtype=pl.Int64)).filter(~pl.col("blank"))
    not_json = rows.filter(~pl.col("is_object")).select(
        "line", reason=pl.lit("not a valid JSON object"), length=pl.col("length").cast(pl.Int64),
        sha256="sha256")
    reason = lambda t: "line too long" if t == "LINE SIZE OVER MAXIMUM" else "not a valid JSON object"  # noqa: E731
    broken = pl.concat([not_json, _broken(rejects, reject_lines, reason)])
    records = rows.filter(pl.col("is_object")).select(["line", *source.raw_columns])
    return Parsed(records, broken.sort("line"), encoding)


def _cell(value, column: str) -> str | None:
    if value is None:
        return None
    if hasattr(value, "strftime"):
        return value.strftime("%d-%m-%Y")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if text != "" else None


def read_xlsx(path: Path, source: Source, tmpdir: Path) -> Parsed:
    """The first sheet of a workbook; date cells become DD-MM-YYYY text."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged workbook
        raise Rejected(f"not a readable xlsx workbook: {type(exc).__name__}") from None
    ws = wb.worksheets[0]
    it = ws.iter_rows(values_only=True)
    header = [str(h).strip() if h is not None else "" for h in next(it, ())]
    expected = source.schema.COLUMNS
    if header[: len(expected)] != expected or any(h for h in header[len(expected):]):
        wb.close()
        raise Rejected(f"wrong columns: expected {';'.join(expected)}, found {';'.join(header)[:200]}")
    keep = [expected.index(c) for c in source.raw_columns]
    out: dict[str, list] = {c: [] for c in ["line", *source.raw_columns]}
    for n, row in enumerate(it, start=2):
        if row is None or all(v is None for v in row):
            continue
        out["line"].append(n)
        for c, i in zip(source.raw_columns, keep, strict=True):
            out[c].append(_cell(row[i] if i < len(row) else None, c))
    wb.close()
    schema = {"line": pl.Int64, **{c: pl.String for c in source.raw_columns}}
    return Parsed(pl.DataFrame(out, schema=schema), pl.DataFrame(schema=BROKEN_SCHEMA), "xlsx")


def read_file(path: Path, source: Source, tmpdir: Path) -> Parsed:
    """Dispatch on the file's format; raises Rejected for a file that cannot be read at all."""
    name = path.name.lower()
    if name.endswith(".xlsx"):
        return read_xlsx(path, source, tmpdir)
    if name.endswith((".jsonl", ".jsonl.gz")):
        return read_jsonl(path, source, tmpdir)
    return read_csv(path, source, tmpdir)
