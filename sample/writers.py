"""File writers for the sample landing folder: every format and encoding of SPEC section 2."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import io
import json
from pathlib import Path

REPORT_COLUMNS = [
    "journalnr", "anmeldt_tid", "gerningstid_fra", "kommunekode", "lovomraade",
    "overtraedelse", "sidst_aendret", "fritekst", "anmelder_cpr",
]
OUTREACH_COLUMNS = ["dato", "kommunekode", "aktivitet", "antal", "lokalomraade", "note"]
AMBASSADOR_COLUMNS = [
    "ambassadoer_id", "lokalomraade", "kommunekode", "aktiv_fra", "aktiv_til", "navn",
]


def _open_text(path: Path, encoding: str, gz: bool, newline: str = "") -> io.TextIOBase:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = gzip.GzipFile(path, "wb", compresslevel=5, mtime=0) if gz else open(path, "wb")  # noqa: SIM115 - the wrapper closes it
    return io.TextIOWrapper(raw, encoding=encoding, newline=newline)


def write_csv(path: Path, columns: list[str], rows: list[list[str]], *, encoding: str = "utf-8",
              gz: bool = False, crlf: bool = False, raw_lines: list[tuple[int, str]] = ()) -> None:
    """Semicolon CSV with `"` quoting; raw_lines are (position, text) written verbatim."""
    with _open_text(path, encoding, gz) as fh:
        writer = csv.writer(fh, delimiter=";", quotechar='"', lineterminator="\r\n" if crlf else "\n")
        writer.writerow(columns)
        extra = dict(raw_lines)
        for i, row in enumerate(rows):
            if i in extra:
                fh.write(extra[i] + ("\r\n" if crlf else "\n"))
            writer.writerow(row)


def write_jsonl(path: Path, records: list[dict | str], *, gz: bool = False) -> None:
    """JSON Lines; a str item is written as it is (a broken line on purpose)."""
    with _open_text(path, "utf-8", gz) as fh:
        for rec in records:
            fh.write(rec if isinstance(rec, str) else json.dumps(rec, ensure_ascii=False))
            fh.write("\n")


def write_xlsx(path: Path, columns: list[str], rows: list[list], *, date_cells: bool) -> None:
    """An xlsx sheet; with date_cells the `dato` column holds real Excel dates."""
    from openpyxl import Workbook

    path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("aktiviteter")
    ws.append(columns)
    for row in rows:
        out = list(row)
        if date_cells and isinstance(out[0], str):
            with contextlib.suppress(ValueError):  # an invalid date stays text: it is dirt on purpose
                out[0] = dt.datetime.strptime(out[0], "%d-%m-%Y")
        out[3] = int(out[3]) if str(out[3]).lstrip("-").isdigit() else out[3]
        out[1] = int(out[1]) if str(out[1]).isdigit() else out[1]
        ws.append(out)
    wb.save(path)
    # openpyxl stamps the current time into docProps: rewrite for a deterministic file.
    _normalise_zip(path)


def _normalise_zip(path: Path) -> None:
    import re
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2020-01-01T00:00:00Z", data)
            zi = zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(zi, data)
    path.write_bytes(buf.getvalue())


def write_broken_gzip(path: Path, text: str) -> None:
    """A gzip stream cut off in the middle: a file that cannot be read at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = gzip.compress(text.encode("utf-8"), mtime=0)
    path.write_bytes(data[: len(data) // 2])
