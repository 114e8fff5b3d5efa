"""Landing-file readers: bytes in, raw text rows (personal data dropped) and broken lines out.

Plain Python and DuckDB, no Prefect. DuckDB parses CSV and JSON Lines; its reject tables
find the broken lines, of which only length and hash are ever kept (SPEC section 3).
"""

from __future__ import annotations

import bisect
import codecs
import csv
import gzip
import hashlib
import io
import itertools
import os
import re
import tempfile
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from flows.ingest.sources import Source

CHUNK = 8 << 20
KEPT_BYTES = 10_000  # DuckDB's reject table keeps at most this many bytes of a line (csv_line)
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


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open_bytes(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def _utf8_prefix(data: memoryview) -> int:
    """Length of data without a multi-byte character cut off at its end."""
    n = len(data)
    i = n - 1
    while i >= max(0, n - 4) and data[i] & 0xC0 == 0x80:
        i -= 1
    if i < 0 or data[i] < 0xC0:
        return n
    need = 2 if data[i] < 0xE0 else 3 if data[i] < 0xF0 else 4
    return i if n - i < need else n


def _valid_utf8(data: memoryview) -> bool:
    """Arrow's UTF-8 validation (several times faster than decoding in Python), without a copy."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    try:
        pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(data)).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _stream(path: Path):
    """The file's (decompressed) bytes in chunks, within the byte limit and without NUL bytes."""
    limit, total = max_bytes(), 0
    try:
        with _open_bytes(path) as fh:
            while chunk := fh.read(CHUNK):
                total += len(chunk)
                if total > limit:
                    raise Rejected(f"expands beyond {limit:,} bytes (POLITIKPI_MAX_FILE_BYTES)")
                if b"\x00" in chunk:
                    raise Rejected("binary content (NUL bytes): not a text file (likely a UTF-16 export or a "
                                   "spreadsheet saved under a .csv name: save it as CSV, UTF-8)")
                yield chunk
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise Rejected(f"broken gzip: {exc} (likely cut off in transfer: deliver it again)") from None
    except OSError as exc:
        raise Rejected(f"cannot be read: {exc.strerror or exc}") from None


def detect_encoding(path: Path) -> str:
    """'utf-8' or 'cp1252', by checking the whole stream; rejects binary, broken gzip, bombs."""
    return scan_text(path)[0]


def scan_text(path: Path) -> tuple[str, bool, bool]:
    """The encoding (see detect_encoding), whether the text holds an odd number of `"` (a quote
    left open), and whether it may hold a blank line, found in the same pass. DuckDB 2.0's
    multi-file CSV scan can drop a record whose quote is still open at the end of its file without
    a reject (reading the file alone reports it); it skips blank lines without counting them."""
    tail, quotes, blank, last = b"", 0, False, b""
    for chunk in _stream(path):
        quotes += chunk.count(b'"')  # the same byte in UTF-8 and Windows-1252
        blank, last = blank or _blank_line(last, chunk), chunk[-2:]
        data = memoryview(tail + chunk if tail else chunk)
        cut = _utf8_prefix(data)
        if not _valid_utf8(data[:cut]):
            break
        tail = bytes(data[cut:])
    else:
        if _valid_utf8(memoryview(tail)):
            return "utf-8", quotes % 2 == 1, blank
    decoder, quotes, blank, last = codecs.getincrementaldecoder("cp1252")(), 0, False, b""
    try:
        for chunk in _stream(path):
            quotes += chunk.count(b'"')
            blank, last = blank or _blank_line(last, chunk), chunk[-2:]
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise Rejected("not text in UTF-8 or Windows-1252 (save it as CSV, UTF-8)") from None
    return "cp1252", quotes % 2 == 1, blank


def _blank_line(last: bytes, chunk: bytes) -> bool:
    """Whether a blank line (LF or CRLF) lies in chunk or across its seam with the previous chunk's
    last two bytes."""
    return any(mark in chunk or mark in last + chunk[:2] for mark in (b"\n\n", b"\n\r\n"))


def _utf8_copy(path: Path, encoding: str, tmpdir: Path, force: bool = False) -> Path:
    """A plain, uncompressed UTF-8 copy for DuckDB (which reads UTF-8 natively) unless the file
    already is UTF-8 (and force is not set)."""
    if encoding == "utf-8" and not force:
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


def _lines_past_blanks(data: Path, n_valid: int, rejects: pl.DataFrame) -> tuple | None:
    """Physical start lines (valid records, rejected ones) in a file that may hold blank lines, which
    DuckDB skips without counting (so a record's line cannot be worked out from the records before
    it). Python's csv module walks the file once: each record's start line, or a blank line, in the
    order DuckDB counts them (its reject `line` counts blank lines too). None when the two readers
    disagree on the records (the lines counted from the records then stand)."""
    csv.field_size_limit(1 << 30)
    units: list[int | None] = []  # units[0] is the header
    with _open_bytes(data) as fh:
        reader = csv.reader(io.TextIOWrapper(fh, encoding="utf-8-sig", newline=""), delimiter=";", quotechar='"')
        read = 0
        try:
            for row in reader:
                units.append(read + 1 if row else None)
                read = reader.line_num
        except csv.Error:
            return None
    rejected = set(rejects["dline"].to_list()) if len(rejects) else set()
    if any(d > len(units) or units[d - 1] is None for d in rejected):
        return None
    valid = [line for i, line in enumerate(units[1:], 2) if line is not None and i not in rejected]
    if len(valid) != n_valid:
        return None
    found = [units[d - 1] for d in rejects["dline"].to_list()] if len(rejects) else []
    return np.array(valid, dtype=np.int64), np.array(found, dtype=np.int64)


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


@dataclass
class _Prepared:
    path: Path  # the landing file
    data: Path  # what DuckDB reads: the file itself, or a plain UTF-8 copy
    encoding: str
    open_quote: bool = False  # an odd number of `"`: some quote is never closed
    blank: bool = False  # it may hold a blank line (DuckDB skips them uncounted): lines found apart


COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_æøåÆØÅ]{0,39}$")


def wrong_columns(expected: list[str], found: list[str]) -> str:
    """Why a header is wrong, without ever echoing a data row: a first line whose cells are not all
    plain column names (a data row, free text, a CPR number) is described, never shown."""
    names = [f.strip() for f in found if f and f.strip()]
    if names and all(COLUMN_NAME.match(n) for n in names):
        return f"wrong columns: expected {';'.join(expected)}, found {';'.join(names)[:200]}"
    return (f"wrong columns: expected {';'.join(expected)}; the first line ({len(found)} fields) is not a header "
            "(its content is not shown: it may hold personal data)")


def _header_hint(header: str, expected: list[str]) -> str:
    """The likely cause of a wrong header, in words the data owner can act on."""
    for sep, name in ((",", "comma"), ("\t", "tab")):
        if ";" not in header and next(csv.reader([header], delimiter=sep)) == expected:
            return f" (the file is {name}-separated: export it with ';' between fields)"
    if header.lower().replace(" ", "") == ";".join(expected).lower():
        return " (the column names differ only in case or spaces: use them exactly as listed)"
    if header.count(";") == len(expected) - 1:
        return " (the header row is missing: the export must start with the column names)"
    return " (another export or an older format: check which system produced it)"


def _prepare_csv(path: Path, source: Source, tmpdir: Path) -> _Prepared:
    """Encoding, header and compression checked before DuckDB parses the file."""
    encoding, open_quote, blank = scan_text(path)
    # DuckDB decompresses by file name: a copy when the name and the content disagree.
    plain = encoding == "utf-8" and is_gzip(path) == path.name.lower().endswith(".gz")
    data = path if plain else _utf8_copy(path, encoding, tmpdir, force=True)
    try:
        header = _first_line(data).rstrip("\r\n")
        if not header:
            raise Rejected("empty file: no header row")
        found = next(csv.reader([header], delimiter=";"))
        expected = source.schema.COLUMNS
        if found != expected:
            raise Rejected(wrong_columns(expected, found) + _header_hint(header, expected))
    except BaseException:
        if data != path:
            data.unlink(missing_ok=True)
        raise
    return _Prepared(path, data, encoding, open_quote, blank)


def _scan_csv(con: duckdb.DuckDBPyConnection, files: list[_Prepared], source: Source,
              rej: str, rej_scan: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One DuckDB scan of several files (in parallel, order kept): rows with their file's name and
    the line breaks inside each record (counted only for records that contain one)."""
    expected = source.schema.COLUMNS
    columns = ", ".join(f"'{c}': 'VARCHAR'" for c in expected)
    keep = ", ".join(f'"{c}"' for c in source.raw_columns)
    spans = " or ".join(f"contains(coalesce(\"{c}\", ''), chr(10))" for c in expected)
    newlines = " + ".join(f"coalesce(strlen(\"{c}\") - strlen(replace(\"{c}\", chr(10), '')), 0)"
                          for c in expected)
    rows = con.sql(f"""
        select {keep}, filename as _file, case when {spans} then {newlines} else 0 end as _nl
        from read_csv(?, delim=';', quote='"', escape='"', header=true, auto_detect=false,
                      columns={{{columns}}}, store_rejects=true, rejects_table='{rej}',
                      rejects_scan='{rej_scan}', strict_mode=true, max_line_size=1048576, filename=true)
    """, params=[[str(f.data) for f in files]]).to_arrow_table()
    return pl.from_arrow(rows), _rejects_many(con, rej, rej_scan, header=True)


def _rejects_many(con: duckdb.DuckDBPyConnection, rej: str, rej_scan: str, header: bool) -> pl.DataFrame:
    """Rejected records per file: DuckDB's line number (records and blank lines, the header included),
    record slot, DuckDB's error type, and only length, hash and line breaks of the text.

    DuckDB's csv_line starts with the line break(s) before the record after a CRLF or a blank line
    (trimmed here: a record never starts with one) and keeps at most KEPT_BYTES bytes: `cut` marks a
    text that may be cut off, whose length, hash and line breaks _measure_cut then takes from the file,
    checking the record it found against `head`, the text less its last 4 characters (a line over the
    1 MiB limit cut inside a character was seen to end in a '.' that the file does not hold)."""
    return con.sql(f"""
        with texts as (
            select s.file_path as _file, e.line as dline, min(e.error_type) as error_type,
                   any_value(e.csv_line) as raw
            from {rej} as e join {rej_scan} as s using (scan_id, file_id)
            group by s.file_path, e.line
        ),
        trimmed as (select *, ltrim(raw, chr(13) || chr(10)) as t, strlen(raw) >= {KEPT_BYTES} as cut from texts),
        heads as (select *, case when cut then left(t, greatest(length(t) - 4, 0)) end as head from trimmed)
        select _file, dline, dline - {int(header)} as slot, error_type,
               strlen(t) as length, sha256(t) as sha256, strlen(t) - strlen(replace(t, chr(10), '')) as nl,
               cut, strlen(head) as head_length, sha256(head) as head_sha256
        from heads order by _file, dline
    """).pl()


class _Digest:
    """Length, sha256 and line breaks (LF) of one record fed in pieces, without its line ending (LF or
    CRLF), plus the sha256 of its first `head` bytes (to check it is the record DuckDB rejected).
    Only digests are kept, never the text."""

    def __init__(self, head: int):
        self.full, self.first, self.head = hashlib.sha256(), hashlib.sha256(), head
        self.length = self.nl = 0
        self.cr = False  # a CR held back: part of the text unless the record ends right after it

    def feed(self, part: bytes) -> None:
        if not part:
            return
        if self.cr:
            self._take(b"\r")
        self.cr = part[-1] == 13
        self._take(part[:-1] if self.cr else part)

    def _take(self, data: bytes) -> None:
        if self.length < self.head:
            self.first.update(data[: self.head - self.length])
        self.full.update(data)
        self.length += len(data)
        self.nl += data.count(b"\n")

    def done(self) -> tuple[int, str, int, str]:
        return self.length, self.full.hexdigest(), self.nl, self.first.hexdigest()


def _digest_records(data: Path, heads: dict[int, int], quoted: bool) -> dict[int, tuple[int, str, int, str]]:
    """_Digest results of the records at DuckDB line numbers `heads` (line: bytes of its head to hash), in
    one pass over the (decompressed) text that stops after the last of them. Records end at a line
    break outside quotes (`"` only counted when quoted: a CSV with its quotes balanced, as checked
    before); a blank line is a record of its own, as DuckDB counts lines."""
    wanted = sorted(heads)
    out: dict[int, tuple[int, str, int, str]] = {}
    cur, odd = 1, False  # DuckDB line number of the record holding the next byte; inside quotes
    rec = _Digest(heads[1]) if 1 in heads else None
    with _open_bytes(data) as fh:
        chunk = fh.read(CHUNK)
        if chunk.startswith(codecs.BOM_UTF8):
            chunk = chunk[len(codecs.BOM_UTF8):]
        while chunk and cur <= wanted[-1]:
            buf = np.frombuffer(chunk, dtype=np.uint8)
            ends = np.flatnonzero(buf == 10)
            if quoted:
                quotes = np.flatnonzero(buf == 34)
                if len(quotes):
                    ends = ends[(np.searchsorted(quotes, ends) + odd) % 2 == 0]
                    odd = (len(quotes) + odd) % 2 == 1
                elif odd:
                    ends = ends[:0]
            n = len(ends)  # records cur .. cur + n - 1 end here; record cur + n goes on
            for w in wanted[bisect.bisect_left(wanted, cur):bisect.bisect_right(wanted, cur + n)]:
                i = w - cur
                if i > 0:
                    rec = _Digest(heads[w])
                start = 0 if i == 0 else int(ends[i - 1]) + 1
                if i < n:
                    rec.feed(chunk[start:int(ends[i])])
                    out[w], rec = rec.done(), None
                else:
                    rec.feed(chunk[start:])
            cur += n
            chunk = fh.read(CHUNK)
    if rec is not None:  # the last record, without a line break after it
        out[cur] = rec.done()
    return out


def _measure_cut(data: Path, rejects: pl.DataFrame, quoted: bool) -> pl.DataFrame:
    """The true length, sha256 and line breaks of each rejected record whose text DuckDB cut off
    (rare: only those are read again, in one pass over the file), found by its line number and
    checked against the head DuckDB kept. A cut-off line that cannot be found is never quarantined
    with the head's length and hash: the file is rejected whole instead."""
    cut = rejects.filter(pl.col("cut"))
    if not len(cut):
        return rejects
    heads = dict(zip(cut["dline"].to_list(), cut["head_length"].to_list(), strict=True))
    found = _digest_records(data, heads, quoted)
    fixed = {}
    for line, head, head_sha in cut.select("dline", "head_length", "head_sha256").iter_rows():
        length, sha256, nl, first = found.get(line, (0, "", 0, ""))
        if length < head or first != head_sha:
            raise Rejected(f"a broken line over {KEPT_BYTES:,} bytes (line {line} as DuckDB counts lines) could not "
                           "be found again to measure its length and hash (are its line breaks LF or CRLF?)")
        fixed[line] = (length, sha256, nl)
    measured = [fixed.get(line) for line in rejects["dline"].to_list()]

    def column(i: int, name: str, dtype) -> pl.Series:
        return pl.Series(name, [m[i] if m else v for m, v in zip(measured, rejects[name].to_list(), strict=True)],
                         dtype=dtype)

    return rejects.with_columns(column(0, "length", pl.Int64), column(1, "sha256", pl.String),
                                column(2, "nl", pl.Int64))


def _split_by_file(rows: pl.DataFrame, files: list[_Prepared]) -> dict[str, pl.DataFrame] | None:
    """Slices per file, relying on the scan keeping file order; None if it did not."""
    if not len(rows):
        return {}
    runs = rows.select(pl.col("_file").rle()).unnest("_file")
    names, lengths = runs["value"].to_list(), runs["len"].to_list()
    order = {str(f.data): i for i, f in enumerate(files)}
    positions = [order.get(n) for n in names]
    if None in positions or positions != sorted(set(positions)):
        return None
    out, offset = {}, 0
    for name, n in zip(names, lengths, strict=True):
        out[name] = rows.slice(offset, n)
        offset += n
    return out


def _csv_result(prepared: _Prepared, rows: pl.DataFrame, rejects: pl.DataFrame, source: Source) -> Parsed:
    quote_errors = rejects.filter(pl.col("error_type") == "UNQUOTED VALUE")
    if len(quote_errors):
        raise Rejected(f"unclosed or stray quote in record {quote_errors['slot'][0]}")
    if prepared.open_quote:  # a quote never closed, yet DuckDB reported nothing: never keep a partial file
        raise Rejected("unclosed quote: the file holds an odd number of quote characters")
    rejects = _measure_cut(prepared.data, rejects, quoted=True)
    physical = _lines_past_blanks(prepared.data, len(rows), rejects) if prepared.blank else None
    valid_lines, reject_lines = physical or _line_numbers(rows["_nl"].to_numpy(), rejects, first_line=2)
    rows = rows.with_columns(line=pl.Series(valid_lines, dtype=pl.Int64))
    broken = _broken(rejects, reject_lines, lambda t: CSV_REASONS.get(t, t.lower()))
    return Parsed(rows.select(["line", *source.raw_columns]), broken, prepared.encoding)


@dataclass(frozen=True)
class _Format:
    name: str
    prepare: object  # (path, source, tmpdir) -> _Prepared, or raises Rejected
    scan: object  # (con, prepared, source, rej, rej_scan) -> (rows with _file, rejects with _file)
    result: object  # (prepared, its rows, its rejects, source) -> Parsed, or raises Rejected


def _read_many(paths: list[Path], source: Source, tmpdir: Path, pool, fmt: _Format) -> list[Parsed | Rejected]:
    """Files of one format parsed by one DuckDB scan (personal-data columns never selected); each
    file's outcome is its rows or why it was rejected whole."""
    mapper = pool.map if pool is not None else map

    def prepare(path: Path) -> _Prepared | Rejected:
        try:
            return fmt.prepare(path, source, tmpdir)
        except Rejected as exc:
            return exc

    prepared = list(mapper(prepare, paths))
    ready = [p for p in prepared if isinstance(p, _Prepared)]
    try:
        outcome = _parse_prepared(ready, source, fmt)
    finally:
        for p in ready:
            if p.data != p.path:
                p.data.unlink(missing_ok=True)
    # File by file when one file spoils the scan (or the order was lost), and always for a file with
    # a quote left open: a multi-file scan may drop its last record silently (see scan_text).
    alone = {r.path for r in ready if outcome is None or (r.open_quote and len(ready) > 1)}
    return [r if isinstance(r, Rejected) else _read_many([r.path], source, tmpdir, None, fmt)[0]
            if r.path in alone else outcome[r.path] for r in prepared]


def _parse_prepared(ready: list[_Prepared], source: Source, fmt: _Format) -> dict[Path, Parsed | Rejected] | None:
    """Each prepared file's outcome from one scan; None when the scan must be redone file by file."""
    if not ready:
        return {}
    with _reader() as (con, (rej, rej_scan)):
        try:
            rows, rejects = fmt.scan(con, ready, source, rej, rej_scan)
        except duckdb.Error as exc:
            if len(ready) > 1:
                return None
            return {ready[0].path: Rejected(f"cannot be parsed as {fmt.name}: {str(exc).splitlines()[0][:200]}")}
    by_file = _split_by_file(rows, ready)
    if by_file is None:
        if len(ready) == 1:
            raise RuntimeError(f"{ready[0].path}: DuckDB returned rows of another file")
        return None
    rejects_by = rejects.partition_by("_file", as_dict=True)
    outcome: dict[Path, Parsed | Rejected] = {}
    for p in ready:
        mine = rejects_by.get((str(p.data),), rejects.clear())
        try:
            outcome[p.path] = fmt.result(p, by_file.get(str(p.data), rows.clear()), mine, source)
        except Rejected as exc:
            outcome[p.path] = exc
    return outcome


CSV = _Format("CSV", _prepare_csv, _scan_csv, _csv_result)


def _prepare_jsonl(path: Path, source: Source, tmpdir: Path) -> _Prepared:
    if detect_encoding(path) != "utf-8":
        raise Rejected("JSON Lines must be UTF-8")
    return _Prepared(path, path, "utf-8")


def _scan_jsonl(con: duckdb.DuckDBPyConnection, files: list[_Prepared], source: Source,
                rej: str, rej_scan: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every line of several files as text (in file order), parsed as JSON where it is an object.

    Each line is parsed twice, not once per field: json_valid, then one json_extract_string for
    the string fields (their text) and one json_extract for the literal fields (their JSON text,
    so `"2"` stays distinguishable from `2`). A valid JSON text is an object exactly when its first
    non-blank character is `{`. (One `->>` per field parsed every line 15 times: 5.5 s against 2.0 s
    for the national call-outs.)"""
    fields = source.schema.FIELDS
    texts = [f for f in fields if f in set(source.schema.STRING_FIELDS)]
    literals = [f for f in fields if f not in texts]

    def paths(names: list[str]) -> str:
        return "[" + ", ".join(f"'$.{f}'" for f in names) + "]"

    extract = ", ".join(f"t[{texts.index(f) + 1}] as \"{f}\"" if f in texts
                        else f"nullif(v[{literals.index(f) + 1}]::varchar, 'null') as \"{f}\"" for f in fields)
    rows = con.sql(f"""
        with lines as (
            select filename as _file, j
            from read_csv(?, delim=E'\\x01', quote='', escape='', header=false, auto_detect=false,
                          columns={{'j': 'VARCHAR'}}, store_rejects=true, rejects_table='{rej}',
                          rejects_scan='{rej_scan}', strict_mode=true, max_line_size=1048576, filename=true)
        ),
        parsed as (
            select _file, j, j is not null and json_valid(j) and regexp_matches(j, '^[ \\t\\n\\r]*[{{]') as is_object
            from lines
        ),
        extracted as (
            select _file, j, is_object,
                   case when is_object then json_extract_string(j, {paths(texts)}) end as t,
                   case when is_object then json_extract(j, {paths(literals)}) end as v
            from parsed
        )
        select _file, j is null as blank, is_object,
               case when not is_object then strlen(j) end as length,
               case when not is_object then sha256(j) end as sha256, {extract}
        from extracted
    """, params=[[str(f.data) for f in files]]).to_arrow_table()
    return pl.from_arrow(rows), _rejects_many(con, rej, rej_scan, header=False)


def _jsonl_result(prepared: _Prepared, rows: pl.DataFrame, rejects: pl.DataFrame, source: Source) -> Parsed:
    rejects = _measure_cut(prepared.data, rejects, quoted=False)
    valid_lines, reject_lines = _line_numbers(np.zeros(len(rows), dtype=np.int64), rejects, first_line=1)
    rows = rows.with_columns(line=pl.Series(valid_lines, dtype=pl.Int64)).filter(~pl.col("blank"))
    not_json = rows.filter(~pl.col("is_object")).select(
        "line", reason=pl.lit("not a valid JSON object"), length=pl.col("length").cast(pl.Int64),
        sha256="sha256")
    reason = lambda t: "line too long" if t == "LINE SIZE OVER MAXIMUM" else "not a valid JSON object"  # noqa: E731
    broken = pl.concat([not_json, _broken(rejects, reject_lines, reason)])
    records = rows.filter(pl.col("is_object")).select(["line", *source.raw_columns])
    return Parsed(records, broken.sort("line"), prepared.encoding)


JSONL = _Format("JSON Lines", _prepare_jsonl, _scan_jsonl, _jsonl_result)


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
        raise Rejected(wrong_columns(expected, header))
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


def _format_of(path: Path) -> _Format | None:
    """The DuckDB-read format of a file by its name; None for an xlsx workbook."""
    name = path.name.lower()
    if name.endswith(".xlsx"):
        return None
    return JSONL if name.endswith((".jsonl", ".jsonl.gz")) else CSV


def read_file(path: Path, source: Source, tmpdir: Path) -> Parsed:
    """One file, by its format; raises Rejected for a file that cannot be read at all."""
    fmt = _format_of(path)
    if fmt is None:
        return read_xlsx(path, source, tmpdir)
    result = _read_many([path], source, tmpdir, None, fmt)[0]
    if isinstance(result, Rejected):
        raise result
    return result


def read_many(paths: list[Path], source: Source, tmpdir: Path, pool=None) -> list[Parsed | Rejected]:
    """Several files of one source: CSV files in one DuckDB scan, JSON Lines in another, xlsx
    workbooks one by one; outcomes in the order of paths."""
    formats = [_format_of(p) for p in paths]
    outcomes: dict[int, Parsed | Rejected] = {}
    for fmt in (CSV, JSONL):
        mine = [i for i, f in enumerate(formats) if f is fmt]
        outcomes.update(zip(mine, _read_many([paths[i] for i in mine], source, tmpdir, pool, fmt), strict=True))
    for i in (i for i, f in enumerate(formats) if f is None):
        try:
            outcomes[i] = read_xlsx(paths[i], source, tmpdir)
        except Rejected as exc:
            outcomes[i] = exc
    return [outcomes[i] for i in range(len(paths))]
