"""Readers: every format and encoding, line numbers, broken lines, files rejected whole."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.ingest import readers
from flows.ingest.sources import SOURCES
from tests.conftest import write

HEADER = ("journalnr;anmeldt_tid;gerningstid_fra;kommunekode;lovomraade;overtraedelse;sidst_aendret;fritekst;"
          "anmelder_cpr\n")
ROW = "4100-00000-0000{n}-19;01-02-2019 10:00:00;;370;Straffelov;{offence};01-02-2019 10:05:00;{text};010190-1234\n"


def read(path: Path, source="reports"):
    return readers.read_file(path, SOURCES[source], path.parent)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_each_encoding_reads_the_same_values(tmp_path, encoding):
    text = HEADER + ROW.format(n=1, offence="Bedrageri – netbank", text="2.500 €")
    parsed = read(write(tmp_path / f"r-{encoding}.csv", text, encoding))
    assert parsed.rows["overtraedelse"].to_list() == ["Bedrageri – netbank"]
    assert parsed.encoding == ("cp1252" if encoding == "cp1252" else "utf-8")


def test_gzip_is_read_like_plain_text(tmp_path):
    path = tmp_path / "r.csv.gz"
    path.write_bytes(gzip.compress((HEADER + ROW.format(n=1, offence="Tyveri", text="")).encode()))
    assert read(path).rows["journalnr"].to_list() == ["4100-00000-00001-19"]


def test_quoted_fields_with_separators_quotes_and_line_breaks_keep_line_numbers(tmp_path):
    text = (HEADER + ROW.format(n=1, offence="Tyveri", text='"a;b ""c""\nd\ne"')
            + ROW.format(n=2, offence='"Vold; grov"', text="") )
    parsed = read(write(tmp_path / "r.csv", text))
    assert parsed.rows["line"].to_list() == [2, 5]
    assert parsed.rows["overtraedelse"].to_list() == ["Tyveri", "Vold; grov"]


def test_personal_data_columns_are_never_read(tmp_path):
    parsed = read(write(tmp_path / "r.csv", HEADER + ROW.format(n=1, offence="Tyveri", text="Jens")))
    assert "fritekst" not in parsed.rows.columns and "anmelder_cpr" not in parsed.rows.columns


def test_wrong_number_of_fields_is_one_broken_line_kept_as_hash(tmp_path):
    text = (HEADER + ROW.format(n=1, offence="Tyveri", text="") + "a;b;c;010190-1234\n"
            + ROW.format(n=2, offence="Vold", text=""))
    parsed = read(write(tmp_path / "r.csv", text))
    assert parsed.rows["line"].to_list() == [2, 4]
    broken = parsed.broken.row(0, named=True)
    assert broken["line"] == 3 and "wrong number of fields" in broken["reason"]
    assert broken["length"] == len("a;b;c;010190-1234") and len(broken["sha256"]) == 64


@pytest.mark.parametrize("content,reason", [
    (b"\x1f\x8b\x08\x00broken", "broken gzip"),
    (b"sagsnr;tid\n1;2\n", "wrong columns"),
    (b"", "empty file"),
    (b"\x00\x01\x02binary", "binary"),
    ((HEADER + '4100-00000-00001-19;"never closed\n').encode(), "quote"),
])
def test_unreadable_file_is_rejected_whole_with_reason(tmp_path, content, reason):
    path = tmp_path / "r.csv"
    path.write_bytes(content)
    with pytest.raises(readers.Rejected, match=reason):
        read(path)


def test_broken_json_line_is_one_quarantined_line_and_the_rest_is_kept(tmp_path):
    good = '{"haendelse_id": "A", "prioritet": 1, "aflyst": false, "kommunekode": 370}'
    path = write(tmp_path / "d.jsonl", f'{good}\n{{"haendelse_id": "B", "modt\n\n{good.replace("A", "C")}\n[1,2]\n')
    parsed = read(path, "dispatches")
    assert parsed.rows["haendelse_id"].to_list() == ["A", "C"]
    assert parsed.rows["line"].to_list() == [1, 4]
    assert parsed.rows["prioritet"].to_list() == ["1", "1"] and parsed.rows["aflyst"][0] == "false"
    assert parsed.broken["line"].to_list() == [2, 5]



def test_json_fields_keep_what_the_rules_need_to_tell_a_string_from_a_number(tmp_path):
    """String fields give their text; the literal fields (prioritet, kommunekode and the booleans) give
    their JSON text, so "2" (a string) fails prioritet_integer where 2 passes. An object after blanks
    is a record; an array, a string or a number is a broken line; null is missing."""
    lines = ['{"haendelse_id": "A", "prioritet": 2, "aflyst": true, "kommunekode": 370, "aarsag": "brand"}',
             '\t {"haendelse_id": 7, "prioritet": "2", "aflyst": "true", "kommunekode": null, "aarsag": 12}',
             '{"haendelse_id": {"x": 1}, "prioritet": [1], "aarsag": "a\\"b\\u00e6", "journalnr": null}',
             '  ["haendelse_id", "D"]', '"{}"', '12']
    parsed = read(write(tmp_path / "d.jsonl", "\n".join(lines) + "\n"), "dispatches")
    rows = parsed.rows
    assert rows["line"].to_list() == [1, 2, 3]
    assert rows["haendelse_id"].to_list() == ["A", "7", '{"x":1}']
    assert rows["prioritet"].to_list() == ["2", '"2"', "[1]"]
    assert rows["aflyst"].to_list() == ["true", '"true"', None]
    assert rows["kommunekode"].to_list() == ["370", None, None]
    assert rows["aarsag"].to_list() == ["brand", "12", 'a"bæ']
    assert rows["journalnr"].to_list() == [None, None, None]
    assert parsed.broken["line"].to_list() == [4, 5, 6]
    assert set(parsed.broken["reason"]) == {"not a valid JSON object"}

def test_xlsx_date_cells_become_danish_dates(tmp_path):
    from sample.writers import OUTREACH_COLUMNS, write_xlsx

    path = tmp_path / "o.xlsx"
    write_xlsx(path, OUTREACH_COLUMNS, [["05-03-2019", "360", "foredrag", "2", "", "Jens"]], date_cells=True)
    parsed = read(path, "outreach")
    assert parsed.rows.row(0, named=True) == {"line": 2, "dato": "05-03-2019", "kommunekode": "360",
                                              "aktivitet": "foredrag", "antal": "2", "lokalomraade": None}


def test_gzip_bomb_is_rejected_within_a_byte_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("POLITIKPI_MAX_FILE_BYTES", "1000000")
    path = tmp_path / "r.csv.gz"
    path.write_bytes(gzip.compress(HEADER.encode() + b"x" * 5_000_000))
    with pytest.raises(readers.Rejected, match="expands beyond"):
        read(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=400))
def test_random_bytes_never_crash_and_lose_nothing(tmp_path, body):
    """Any bytes after a valid header: either rejected whole, or every line accounted for."""
    path = tmp_path / "fuzz.csv"
    path.write_bytes(HEADER.encode() + body)
    try:
        parsed = read(path)
    except readers.Rejected:
        return
    assert parsed.rows["line"].is_unique().all()
    assert set(parsed.rows["line"]).isdisjoint(set(parsed.broken["line"]))


@pytest.mark.parametrize("source", ["reports", "dispatches", "outreach", "ambassadors"])
def test_one_scan_of_many_files_equals_reading_each_file(small_landing, tmp_path, source):
    """The sample's dirt (encodings, gzip, broken lines, wrong columns, a broken gzip, quoted line
    breaks) read in one DuckDB scan gives each file exactly what reading it alone gives."""
    paths = sorted(p for p in (small_landing / source).iterdir() if p.is_file())
    together = readers.read_many(paths, SOURCES[source], tmp_path)
    assert len(together) == len(paths)
    kinds = set()
    for path, outcome in zip(paths, together, strict=True):
        try:
            alone = readers.read_file(path, SOURCES[source], tmp_path)
        except readers.Rejected as exc:
            assert isinstance(outcome, readers.Rejected) and str(outcome) == str(exc), path.name
            kinds.add("rejected")
            continue
        assert not isinstance(outcome, readers.Rejected), (path.name, outcome)
        assert outcome.encoding == alone.encoding
        assert outcome.rows.equals(alone.rows), path.name
        assert outcome.broken.equals(alone.broken), path.name
        kinds.add("broken" if len(alone.broken) else "clean")
    if source in ("reports", "dispatches"):
        assert {"broken", "clean"} <= kinds  # the sample has broken lines in both
    if source == "reports":
        assert "rejected" in kinds
    assert not list(tmp_path.glob("*.csv"))  # transcoded copies are removed


def test_a_quote_left_open_at_the_end_of_a_file_rejects_it_in_a_scan_of_many_files(small_landing, tmp_path):
    """DuckDB 2.0's multi-file scan drops a record whose quote is still open at the end of its file,
    with no reject (read alone, the file is rejected): a re-delivery cut inside a quoted line break."""
    folder = tmp_path / "reports"
    folder.mkdir()
    lines = (small_landing / "reports" / "2019-01-07.csv").read_text(encoding="utf-8").split("\n")
    cut = next(n for n in range(30, len(lines)) if "\n".join(lines[:n]).count('"') % 2 == 1)  # inside a quote
    (folder / "2019-01-07.csv").write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    others = ["2019-01-11.csv", "2019-01-12.csv", "2019-01-13.csv.gz", "2019-01-14.csv.gz"]
    for name in others:
        (folder / name).write_bytes((small_landing / "reports" / name).read_bytes())
    paths = [folder / "2019-01-07.csv", *(folder / n for n in others)]
    together = readers.read_many(paths, SOURCES["reports"], tmp_path)
    with pytest.raises(readers.Rejected, match="quote") as alone:
        readers.read_file(paths[0], SOURCES["reports"], tmp_path)
    assert isinstance(together[0], readers.Rejected) and str(together[0]) == str(alone.value)
    assert all(not isinstance(t, readers.Rejected) for t in together[1:])


def test_a_file_without_its_header_row_is_rejected_without_echoing_the_row(tmp_path):
    """The first line of a headerless export is a data row: its free text and CPR number must not
    reach the rejection reason (which is shown, stored and published in run summaries)."""
    row = ROW.format(n=1, offence="Tyveri", text="Anmelder Jens Hansen ringede igen")
    with pytest.raises(readers.Rejected) as rejected:
        read(write(tmp_path / "r.csv", row + row.replace("-00001-", "-00002-")))
    reason = str(rejected.value)
    assert "header row is missing" in reason
    assert "Jens" not in reason and "010190-1234" not in reason and "4100-" not in reason


def test_a_wrong_header_of_plain_column_names_is_shown(tmp_path):
    with pytest.raises(readers.Rejected, match="found sagsnr;tid;kommune"):
        read(write(tmp_path / "r.csv", "sagsnr;tid;kommune\n1;2;3\n"))


def test_a_long_broken_line_that_cannot_be_found_again_rejects_the_file_not_a_wrong_hash(tmp_path):
    """A broken line over the 10,000 bytes DuckDB's reject table keeps is measured from the file itself,
    found by its line number. DuckDB also breaks lines at a lone CR, which that search does not: such a
    file is rejected whole rather than quarantining the line with the length and hash of its first
    10,000 bytes. (A short broken line is measured from DuckDB's text, which holds all of it.)"""
    lines = [HEADER.rstrip("\n"), ROW.format(n=1, offence="Tyveri", text="").rstrip("\n"), "a;" + "b" * 20_000]
    with pytest.raises(readers.Rejected, match="could not be found again"):
        read(write(tmp_path / "r.csv", "\r".join(lines) + "\r"))
    parsed = read(write(tmp_path / "r.csv", "\r".join([*lines[:2], "a;b"]) + "\r"))
    assert parsed.broken.select("line", "length").rows() == [(3, 3)]
    parsed = read(write(tmp_path / "r.csv", "\n".join(lines) + "\n"))
    assert parsed.broken.select("line", "length").rows() == [(3, 20_002)]


@pytest.mark.parametrize("eol,gz,encoding,chunk", [("\n", False, "utf-8", 0), ("\r\n", False, "utf-8", 0),
                                                   ("\n", True, "utf-8", 0), ("\r\n", False, "cp1252", 0),
                                                   ("\n", False, "cp1252", 64)])
def test_blank_lines_keep_every_later_line_number_physical(tmp_path, monkeypatch, eol, gz, encoding, chunk):
    """DuckDB skips blank lines without counting them: a row after one still names its own line (SPEC 3),
    in a file read alone and in one scan with others, whatever its line endings, compression or encoding
    (and in Windows-1252 read in small chunks, its blank lines after the chunk that shows it is not UTF-8)."""
    if chunk:
        monkeypatch.setattr(readers, "CHUNK", chunk)
    lines = [HEADER.rstrip("\n"),                                               # 1
             ROW.format(n=1, offence="Røveri", text="").rstrip("\n"),            # 2
             "",                                                                 # 3 blank
             ROW.format(n=2, offence="Vold", text='"a\n\nb"').rstrip("\n"),       # 4-6: a quoted blank line
             "", "",                                                             # 7, 8 blank
             "a;b;c",                                                            # 9 broken: too few fields
             "",                                                                 # 10 blank
             ROW.format(n=3, offence="Røveri", text="").rstrip("\n"),            # 11
             ""]                                                                 # a blank line at the end
    raw = eol.join(lines).encode(encoding)
    path = tmp_path / ("r.csv.gz" if gz else "r.csv")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    parsed = read(path)
    assert parsed.rows["line"].to_list() == [2, 4, 11]
    assert parsed.broken["line"].to_list() == [9]
    clean = write(tmp_path / "other" / "s.csv", HEADER + ROW.format(n=4, offence="Tyveri", text=""))
    together = readers.read_many([path, clean], SOURCES["reports"], tmp_path)
    assert together[0].rows["line"].to_list() == [2, 4, 11] and together[0].broken["line"].to_list() == [9]
    assert together[1].rows["line"].to_list() == [2]
