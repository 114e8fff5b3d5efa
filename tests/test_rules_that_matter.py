"""The rules that decide the numbers, each pinned by a test that a small plausible bug fails (issue 14).

Everything runs through the real stack: landing files are written as the source systems deliver
them and go through the real readers, Pandera models, state load and SQL models (no Prefect where
the flow adds nothing to the rule under test, so these stay fast); publishing uses the real
`flows.release.publish` with readers in their own processes, waiting on pipes and files, never on sleeps;
the deck and the hostile-landing tests run the real flow on the session's Prefect server.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.config import Settings
from flows.ingest import extract, state
from flows.ingest.load import load_results
from flows.ingest.sources import SOURCES
from flows.ingest.threshold import ThresholdExceeded, threshold_summary
from flows.release import store
from flows.transform import transform
from flows.transform.versions import code_version

REPORT_HEADER = ["journalnr", "anmeldt_tid", "gerningstid_fra", "kommunekode", "lovomraade", "overtraedelse",
                 "sidst_aendret", "fritekst", "anmelder_cpr"]


# --- the pipeline without Prefect: the flow's own steps, in the flow's order ------------------------------------

def ingest(landing: Path, state_dir: Path, check_threshold: bool = True) -> list[extract.FileResult]:
    """scan -> read, archive, validate (per source) -> failure threshold -> load the state."""
    todo, _refused, hashes = extract.changed_files(landing, state_dir)
    workdir = state_dir / "work"
    results = []
    for name in SOURCES:
        results += extract.process_files([lf for lf in todo if lf.source == name], landing, state_dir, workdir, hashes)
    if check_threshold:
        threshold_summary(results, Settings(landing, state_dir, state_dir.parent / "warehouse").resolved(), "test")
    with state.connect(state_dir) as con:
        load_results(con, results, workdir, "test", [])
    return results


def build(state_dir: Path, path: Path) -> duckdb.DuckDBPyConnection:
    """Every SQL model over the state into a release file; the connection's default database is it."""
    con, _ = transform.build_release(state_dir, path, "v1.1.0")
    return con


def iso(text: str, plus_seconds: int = 0) -> str:
    """An ISO timestamp moved by some seconds, keeping its offset as written."""
    moved = dt.datetime.fromisoformat(text.replace("Z", "+00:00")) + dt.timedelta(seconds=plus_seconds)
    return moved.isoformat().replace("+00:00", "Z") if text.endswith("Z") else moved.isoformat()


def dispatch(hid: str, received: str, *, seconds: int | None = 600, code: int = 370, cause: str = "husspektakel",
             priority=1, measured: bool = True, changed: str | None = None) -> dict:
    """One call-out record as the command-and-control system writes it (JSON types as the contract says)."""
    return {"haendelse_id": hid, "modtaget": received, "disponeret": iso(received, 30),
            "fremme": None if seconds is None else iso(received, seconds), "afsluttet": iso(received, 7200),
            "prioritet": priority, "aarsag": cause, "responstid_maalt": measured, "kommunekode": code,
            "aflyst": False, "sidst_aendret": changed or iso(received, 7300), "journalnr": None}


def write_jsonl(path: Path, records: list[dict | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def report_row(n: int, code: str = "370", day: int = 5) -> list[str]:
    at = f"{day:02d}-01-2019 10:00:00"
    return [f"4100-00000-{n:05d}-19", at, "", code, "Straffelov", "Tyveri", at, "fri tekst", ""]


def write_reports(path: Path, rows: list[list[str]], raw_lines: list[str] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\n")
    writer.writerow(REPORT_HEADER)
    writer.writerows(rows)
    path.write_text(buf.getvalue() + "".join(line + "\n" for line in raw_lines), encoding="utf-8")
    return path


# --- 1. corrections of call-outs --------------------------------------------------------------------------------

def test_callout_correction_latest_valid_sidst_aendret_wins_whatever_the_file_or_arrival_order(tmp_path):
    landing, st = tmp_path / "landing", tmp_path / "state"
    received = "2019-03-01T10:00:00+01:00"
    # First delivery: the newest version, in the file whose identity sorts FIRST.
    write_jsonl(landing / "dispatches" / "2019-03-01.jsonl", [
        dispatch("H0", "2019-03-01T09:00:00+01:00"),
        dispatch("H1", received, code=360, cause="roeveri", priority=2, changed="2019-03-09T12:00:00+01:00"),
    ])
    ingest(landing, st)
    # Later deliveries, in files sorting LAST: the oldest version (another month), a middle one, and a newest
    # one that breaks a rule (prioritet as a JSON string): an invalid correction, so the latest VALID one wins.
    write_jsonl(landing / "dispatches" / "2019-03-02.jsonl", [
        dispatch("H1", "2019-02-27T10:00:00+01:00", code=320, cause="husspektakel", priority=1,
                 changed="2019-03-01T12:00:00+01:00"),
    ])
    write_jsonl(landing / "dispatches" / "2019-03-03.jsonl", [
        dispatch("H1", received, code=330, cause="indbrud_igang", priority=3, changed="2019-03-05T12:00:00+01:00"),
        dispatch("H1", received, code=390, cause="roeveri", priority="1", changed="2019-03-10T12:00:00+01:00"),
    ])
    ingest(landing, st)
    con = build(st, tmp_path / "release.duckdb")
    assert con.execute("""select file_identity, source_line, municipality_code, cause, priority
                          from fct_callouts where incident_id = 'H1'""").fetchall() == [
        ("dispatches/2019-03-01.jsonl", 2, 360, "roeveri", 2)]
    assert con.execute("select month, municipality_code, cause, priority, callouts from kpi_callouts "
                       "order by municipality_code").fetchall() == [
        (dt.date(2019, 3, 1), 360, "roeveri", 2, 1), (dt.date(2019, 3, 1), 370, "husspektakel", 1, 1)]
    with state.connect(st, read_only=True) as sc:
        assert sc.execute("select file_identity, line, kind, rules from quarantine").fetchall() == [
            ("dispatches/2019-03-03.jsonl", 2, "correction", "prioritet_integer")]


def test_callout_correction_tie_goes_to_the_file_whose_identity_sorts_last(tmp_path):
    landing, st = tmp_path / "landing", tmp_path / "state"
    received, changed = "2019-04-02T08:00:00+02:00", "2019-04-02T12:00:00+02:00"
    # Delivered first, sorting last, on line 1; the loser arrives later and sits lower in its file.
    write_jsonl(landing / "dispatches" / "b.jsonl", [dispatch("H1", received, code=340, changed=changed)])
    ingest(landing, st)
    write_jsonl(landing / "dispatches" / "a.jsonl", [
        dispatch("H2", received), dispatch("H3", received),
        dispatch("H1", received, code=376, cause="roeveri", changed=changed),
    ])
    ingest(landing, st)
    con = build(st, tmp_path / "release.duckdb")
    assert con.execute("select file_identity, source_line, municipality_code, cause from fct_callouts "
                       "where incident_id = 'H1'").fetchall() == [("dispatches/b.jsonl", 1, 340, "husspektakel")]
    assert con.execute("select municipality_code, callouts from kpi_callouts where cause = 'roeveri'").fetchall() == []


# --- 2. months, quarters and years in local time --------------------------------------------------------------

def test_callout_months_quarters_and_years_are_taken_in_local_time(tmp_path):
    landing, st = tmp_path / "landing", tmp_path / "state"
    write_jsonl(landing / "dispatches" / "d.jsonl", [
        dispatch("FEB", "2019-02-01T00:30:00+01:00", seconds=600),  # 31 January 23:30 in UTC
        dispatch("APR", "2019-03-31T23:30:00Z", seconds=900),  # 1 April 01:30 summer time: a new quarter
        dispatch("JUL", "2019-07-01T00:15:00+0200", seconds=1200),  # 30 June 22:15 in UTC: a new quarter
        dispatch("NEWYEAR", "2019-12-31T23:30:00Z", seconds=300),  # 1 January 2020 00:30: a new year
    ])
    ingest(landing, st)
    con = build(st, tmp_path / "release.duckdb")
    assert con.execute("select month, callouts from kpi_callouts order by month").fetchall() == [
        (dt.date(2019, 2, 1), 1), (dt.date(2019, 4, 1), 1), (dt.date(2019, 7, 1), 1), (dt.date(2020, 1, 1), 1)]
    assert con.execute("select received_local from fct_callouts where incident_id = 'FEB'").fetchone()[0] \
        == dt.datetime(2019, 2, 1, 0, 30)
    times = con.execute("""select period_grain, period_start, responses, max_min from kpi_response_times
                           where municipality_code is null and cause is null order by period_grain, period_start""")
    assert times.fetchall() == [
        ("month", dt.date(2019, 2, 1), 1, 10.0), ("month", dt.date(2019, 4, 1), 1, 15.0),
        ("month", dt.date(2019, 7, 1), 1, 20.0), ("month", dt.date(2020, 1, 1), 1, 5.0),
        ("quarter", dt.date(2019, 1, 1), 1, 10.0), ("quarter", dt.date(2019, 4, 1), 1, 15.0),
        ("quarter", dt.date(2019, 7, 1), 1, 20.0), ("quarter", dt.date(2020, 1, 1), 1, 5.0),
        ("year", dt.date(2019, 1, 1), 3, 20.0), ("year", dt.date(2020, 1, 1), 1, 5.0)]
    assert con.execute("select year, callouts, timed_responses from kpi_year_summary order by year").fetchall() \
        == [(2019, 3, 3), (2020, 1, 1)]


# --- 3. the failure threshold ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("valid", "invalid", "breaks"), [
    (188, 12, True),  # 12 of 200 = 6 %: above 5 % with 200 rows read
    (190, 10, False),  # 10 of 200 = 5 %: not above
    (187, 12, False),  # 12 of 199 = 6 %, but fewer than 200 rows read: the threshold does not apply
])
def test_failure_threshold_is_5_percent_of_the_rows_read_per_source(tmp_path, monkeypatch, valid, invalid, breaks):
    monkeypatch.delenv("POLITIKPI_MAX_QUARANTINE_SHARE", raising=False)
    monkeypatch.delenv("POLITIKPI_MIN_ROWS_FOR_THRESHOLD", raising=False)
    landing, st = tmp_path / "landing", tmp_path / "state"
    # Two files: the share is the source's over this run's files, never one file's (the second alone is >= 10 %).
    write_reports(landing / "reports" / "2019-01-05.csv", [report_row(n) for n in range(100)])
    bad = [report_row(1000 + n, code="999") for n in range(invalid - 1)]  # kommunekode_in_district
    good = [report_row(100 + n, day=6) for n in range(valid - 100)]
    write_reports(landing / "reports" / "2019-01-06.csv", good + bad,
                  raw_lines=["4100-00000-99999-19;06-01-2019 10:00:00;;370"])  # a broken line counts too
    todo, _, hashes = extract.changed_files(landing, st)
    results = extract.process_files(todo, landing, st, st / "work", hashes)
    assert [(r.rows_read, r.rows_quarantined) for r in results] == [(100, 0), (valid + invalid - 100, invalid)]
    settings = Settings(landing, st, tmp_path / "warehouse").resolved()
    if breaks:
        with pytest.raises(ThresholdExceeded, match=rf"reports: {invalid} of {valid + invalid} rows quarantined"):
            threshold_summary(results, settings, "test")
    else:
        summary = threshold_summary(results, settings, "test")
        assert summary["reports"]["read"] == valid + invalid and summary["reports"]["quarantined"] == invalid


# --- 4. the spread of municipal response times ----------------------------------------------------------------

def staged_callouts(st: Path, rows: list[tuple[str, str, int, int]]) -> None:
    """Valid staged call-outs (id, received, municipality, seconds to scene), as the state load leaves them."""
    frame = pl.DataFrame({
        "file_identity": "dispatches/x.jsonl", "line": range(1, len(rows) + 1), "haendelse_id": [r[0] for r in rows],
        "modtaget": [dt.datetime.fromisoformat(r[1]) for r in rows],
        "fremme": [dt.datetime.fromisoformat(r[1]) + dt.timedelta(seconds=r[3]) for r in rows],
        "prioritet": 1, "aarsag": "husspektakel", "responstid_maalt": True, "kommunekode": [r[2] for r in rows],
        "aflyst": False, "sidst_aendret": dt.datetime(2019, 12, 31, tzinfo=dt.UTC),
    })
    with state.connect(st) as con:
        con.register("incoming", frame)
        con.execute("insert into staged_dispatches by name select * from incoming")


def test_spread_ties_go_to_the_lower_municipality_code(tmp_path):
    may = "2019-05-10T12:00:00+00:00"
    rows = []
    for code, seconds in ((390, [300] * 20), (360, [200, 400] * 10),  # shortest mean 5 min: a tie, 360 < 390
                          (330, [900] * 20), (370, [600, 1200] * 10),  # longest mean 15 min: a tie, 330 < 370
                          (340, [600] * 20)):
        rows += [(f"{code}-{i}", may, code, s) for i, s in enumerate(seconds)]
    staged_callouts(tmp_path / "state", rows)
    con = build(tmp_path / "state", tmp_path / "release.duckdb")
    got = con.execute("""select period_grain, cause, longest_municipality_code, longest_mean_min,
                                shortest_municipality_code, shortest_mean_min, spread_min
                         from kpi_response_time_spread order by period_grain, cause nulls last""").fetchall()
    assert got == [(grain, cause, 330, 15.0, 360, 5.0, 10.0)
                   for grain in ("month", "quarter", "year") for cause in ("husspektakel", None)]


def test_spread_is_null_when_only_one_municipality_has_20_responses(tmp_path):
    rows = [(f"A{i}", "2019-06-10T12:00:00+00:00", 370, 600) for i in range(20)]  # 20: qualifies
    rows += [(f"B{i}", "2019-06-10T12:00:00+00:00", 360, 1200) for i in range(19)]  # 19: does not
    rows += [("C0", "2019-05-10T12:00:00+00:00", 360, 1200)]  # May: none qualifies; the quarter: 360 has 20
    staged_callouts(tmp_path / "state", rows)
    con = build(tmp_path / "state", tmp_path / "release.duckdb")
    got = con.execute("""select period_grain, period_start, longest_municipality_code, longest_mean_min,
                                shortest_municipality_code, shortest_mean_min, spread_min
                         from kpi_response_time_spread where cause is null order by period_grain, period_start""")
    assert got.fetchall() == [
        ("month", dt.date(2019, 5, 1), None, None, None, None, None),  # none qualifies
        ("month", dt.date(2019, 6, 1), None, None, None, None, None),  # only 370 qualifies: a row, spread NULL
        ("quarter", dt.date(2019, 4, 1), 360, 20.0, 370, 10.0, 10.0),  # both have 20 in the quarter
        ("year", dt.date(2019, 1, 1), 360, 20.0, 370, 10.0, 10.0),
    ]


# --- 5. publishing: the stable path is swapped atomically, readers keep what they opened -----------------------

FIGURES_SQL = """select (select release_id from _release), (select count(*) from fct_reports),
                        (select sum(reports) from kpi_reports),
                        (select bit_xor(hash(journal_number, reported_at, municipality_code, law_area))
                         from fct_reports)"""


def staged_reports(st: Path, month: int, n: int) -> None:
    """n valid staged reports in one month of 2019, as the state load leaves them."""
    codes, laws = [320, 330, 340, 360, 370, 376, 390], ["Straffelov", "Færdselslov", "Særlov"]
    at = [dt.datetime(2019, month, 1 + i % 28, i % 24, i % 60, tzinfo=dt.UTC) for i in range(n)]
    frame = pl.DataFrame({
        "file_identity": f"reports/2019-{month:02d}.csv", "line": range(2, n + 2),
        "journalnr": [f"4100-{month:05d}-{i:05d}-19" for i in range(n)], "anmeldt_tid": at,
        "kommunekode": [codes[i % 7] for i in range(n)], "lovomraade": [laws[i % 3] for i in range(n)],
        "overtraedelse": "Tyveri", "sidst_aendret": at,
    })
    with state.connect(st) as con:
        con.register("incoming", frame)
        con.execute("insert into staged_reports by name select * from incoming")


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> list[tuple[Path, dict]]:
    """Four finished release files, each from a bigger state (one more month of reports), with their
    manifest entries: what `transform_build` hands to publishing, built by the real models."""
    root = tmp_path_factory.mktemp("builds")
    out = []
    for k in range(4):
        staged_reports(root / "state", month=k + 1, n=6000)
        path = root / f"build-{k}.duckdb"
        con, published = transform.build_release(root / "state", path, "v1.1.0")
        created = dt.datetime(2019, 12, 1, 2, 0, k, tzinfo=dt.UTC)
        meta = {"release_id": f"{created:%Y%m%dT%H%M%SZ}-{k + 1:012x}", "created_at": created,
                "data_through": dt.date(2019, k + 1, 28), "code_version": code_version(),
                "flow_run_id": "test", "input_files": {}, "validation_summary": {"success": True},
                "row_counts": {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in published},
                "quarantine_summary": {}}
        transform.write_release_table(con, meta)
        transform.close_build(con)
        out.append((path, {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in meta.items()}))
    return out


def publish_copy(build: tuple[Path, dict], warehouse: Path, scratch: Path) -> Path:
    """Publish a fresh copy of a build file (publishing hard-links it and makes it read-only); returns the
    release file under releases/."""
    path, entry = build
    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / path.name
    shutil.copyfile(path, copy)
    store.add_release(copy, warehouse, entry, keep=10)
    return warehouse / "releases" / f"{entry['release_id']}.duckdb"


def figures(path: Path) -> list:
    with duckdb.connect(str(path), read_only=True) as con:
        return list(con.execute(FIGURES_SQL).fetchone())


HOLDING_READER = r"""
import json, sys, duckdb
path, sql = sys.argv[1], sys.argv[2]
con = duckdb.connect(path, read_only=True)
print(json.dumps(con.execute("select release_id from _release").fetchone()[0]), flush=True)
sys.stdin.readline()  # the parent has published another release
try:
    held = list(con.execute(sql).fetchone())  # tables this connection has not read yet
except Exception as exc:
    held = repr(exc)[:300]
con.close()  # DuckDB shares one instance per path in a process: close it to see the new release
print(json.dumps({"held": held, "fresh": list(duckdb.connect(path, read_only=True).execute(sql).fetchone())}),
      flush=True)
"""


def test_stable_path_is_the_release_file_itself_and_an_open_reader_keeps_the_old_release(tmp_path, builds):
    warehouse = tmp_path / "warehouse"
    stable = warehouse / store.STABLE
    first = publish_copy(builds[0], warehouse, tmp_path / "b0")
    assert os.path.samefile(stable, first)  # the very file under releases/: renamed in, never copied
    reader = subprocess.Popen([sys.executable, "-c", HOLDING_READER, str(stable), FIGURES_SQL], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert json.loads(reader.stdout.readline()) == builds[0][1]["release_id"]  # open before the publish
        second = publish_copy(builds[1], warehouse, tmp_path / "b1")
        assert os.path.samefile(stable, second) and not os.path.samefile(stable, first)
        out, err = reader.communicate("published\n", timeout=120)
    finally:
        reader.kill()
    assert reader.returncode == 0, err
    seen = json.loads(out)
    old, new = figures(first), figures(second)
    assert old != new
    assert seen == {"held": old, "fresh": new}  # the open connection reads the whole old release; a new one the new
    assert os.stat(first).st_mode & 0o777 == 0o444 and store.load_manifest(warehouse)["current"] == new[0]


LOOPING_READER = r"""
import json, os, sys, duckdb
path, stop = sys.argv[1], sys.argv[2]
last = None
while not os.path.exists(stop):
    try:
        with duckdb.connect(path, read_only=True) as con:
            rid, counts = con.execute("select release_id, row_counts from _release").fetchone()
            facts, kpi = con.execute("select (select count(*) from fct_reports), (select sum(reports) from kpi_reports)"
                                     ).fetchone()
        if facts != json.loads(counts)["fct_reports"] or kpi != facts:
            print(json.dumps({"error": f"{rid}: {facts} facts, {kpi} in kpi_reports, {counts}"}), flush=True)
        if rid != last:
            print(json.dumps({"seen": rid}), flush=True)
            last = rid
    except Exception as exc:
        print(json.dumps({"error": repr(exc)[:300]}), flush=True)
print(json.dumps({"done": True}), flush=True)
"""


def test_readers_looping_through_publishes_see_only_complete_published_releases(tmp_path, builds):
    """Three reader processes open the stable path over and over while releases are published; each publish
    waits until every reader has seen the release before it (events on their pipes, no sleeps)."""
    warehouse, stop = tmp_path / "warehouse", tmp_path / "stop"
    publish_copy(builds[0], warehouse, tmp_path / "b0")
    readers = [subprocess.Popen([sys.executable, "-c", LOOPING_READER, str(warehouse / store.STABLE), str(stop)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    lines: dict[int, list[dict]] = {i: [] for i in range(len(readers))}
    selector = selectors.DefaultSelector()
    for i, r in enumerate(readers):
        selector.register(r.stdout, selectors.EVENT_READ, i)

    def wait_until(done, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            assert time.monotonic() < deadline, f"readers did not report in {seconds:.0f} s: {lines}"
            for key, _ in selector.select(timeout=deadline - time.monotonic()):
                line = key.fileobj.readline()
                if line:
                    lines[key.data].append(json.loads(line))
                else:
                    selector.unregister(key.fileobj)

    def all_saw(release_id: str):
        return lambda: all({"seen": release_id} in got for got in lines.values())

    try:
        published = [builds[0][1]["release_id"]]
        wait_until(all_saw(published[0]))
        for k, build in enumerate(builds[1:], start=1):
            publish_copy(build, warehouse, tmp_path / f"b{k}")
            published.append(build[1]["release_id"])
            wait_until(all_saw(published[-1]))
        stop.touch()
        wait_until(lambda: all({"done": True} in got for got in lines.values()))
    finally:
        stop.touch()
        for r in readers:
            r.wait(timeout=60)
    assert [r.returncode for r in readers] == [0, 0, 0], [r.stderr.read() for r in readers]
    for got in lines.values():
        assert [x for x in got if "error" in x] == []
        assert [x["seen"] for x in got if "seen" in x] == published  # each release, in order, none other


# --- 7. every physical record is read: counted without the reader --------------------------------------------

def landing_text(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def csv_records(path: Path) -> tuple[int, int]:
    """(records, physical lines) of a semicolon CSV after its header, by Python's csv module: a quoted
    field may hold `;` and line breaks; a blank line is not a record; a record with the wrong number of
    fields is still one (quarantined) record."""
    data = landing_text(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252")
    csv.field_size_limit(1 << 30)
    records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"')][1:]
    return sum(1 for r in records if r), len(text.splitlines()) - 1


def jsonl_records(path: Path) -> int:
    """Non-blank lines of a JSON Lines file: every one is a record, a valid object or a broken line."""
    return sum(1 for line in landing_text(path).split(b"\n") if line.strip())


def test_x_csv_and_x_csv_gz_are_one_file_identity_and_the_one_sorting_last_is_delivered(tmp_path):
    """SPEC 2.5: the identity is the path without `.gz`; of two paths with one identity, the one
    sorting last is the delivery and the other is refused as superseded (never a second file)."""
    landing = tmp_path / "landing"
    (landing / "reports").mkdir(parents=True)
    body = "journalnr;anmeldt_tid\n"
    (landing / "reports" / "a.csv").write_text(body, encoding="utf-8")
    (landing / "reports" / "a.csv.gz").write_bytes(gzip.compress(body.encode()))
    (landing / "reports" / "b.csv.gz").write_bytes(gzip.compress(body.encode()))
    files, refused = extract.scan_landing(landing)
    assert [(f.identity, f.path) for f in files] == [("reports/a.csv", "reports/a.csv.gz"),
                                                     ("reports/b.csv", "reports/b.csv.gz")]
    assert refused == [("reports/a.csv", "superseded by reports/a.csv.gz (same file identity)")]


def test_a_repeated_ambassador_id_is_quarantined_within_one_roster_never_across_rosters(tmp_path):
    """SPEC 2.5: each roster file is a complete snapshot, so the same ambassador in two rosters is two
    valid rows; an id repeated within one roster quarantines every copy (rosters validate file by file)."""
    landing, st = tmp_path / "landing", tmp_path / "state"
    (landing / "ambassadors").mkdir(parents=True)
    header = "ambassadoer_id;lokalomraade;kommunekode;aktiv_fra;aktiv_til;navn\n"
    row = "{id};Bårse Nord;390;01-01-2018;;Navn Navnesen\n"
    (landing / "ambassadors" / "2019-01.csv").write_text(header + row.format(id="TA-1") + row.format(id="TA-2"),
                                                         encoding="utf-8")
    (landing / "ambassadors" / "2019-06.csv").write_text(
        header + row.format(id="TA-1") + row.format(id="TA-3") + row.format(id="TA-3"), encoding="utf-8")
    ingest(landing, st, check_threshold=False)
    with state.connect(st, read_only=True) as con:
        staged = con.execute("select file_identity, ambassadoer_id from staged_ambassadors order by all").fetchall()
        quarantined = con.execute("select file_identity, line, rules from quarantine order by all").fetchall()
    assert staged == [("ambassadors/2019-01.csv", "TA-1"), ("ambassadors/2019-01.csv", "TA-2"),
                      ("ambassadors/2019-06.csv", "TA-1")]
    assert [(f, line) for f, line, _ in quarantined] == [("ambassadors/2019-06.csv", 3), ("ambassadors/2019-06.csv", 4)]


def test_rows_read_equals_the_records_in_each_landing_file_counted_independently(tmp_path, small_landing):
    landing, st = tmp_path / "landing", tmp_path / "state"
    for folder in ("reports", "dispatches"):
        shutil.copytree(small_landing / folder, landing / folder)
    results = ingest(landing, st, check_threshold=False)
    with state.connect(st, read_only=True) as con:
        held = dict(con.execute("select landing_path, rows_read from files where status = 'ingested'").fetchall())
    ingested = {r.landing_path for r in results if r.status == "ingested"}
    assert set(held) == ingested and len(ingested) >= 26  # two weeks of both sources; 2 report files are rejected
    counted, spanning = {}, 0
    for rel in sorted(ingested):
        path = landing / rel
        if rel.startswith("reports/"):
            records, lines = csv_records(path)
            counted[rel] = records
            spanning += lines > records  # quoted line breaks: lines are not records
        else:
            counted[rel] = jsonl_records(path)
    assert held == counted
    # the files exercise what a reader can get wrong: gzip, Windows-1252, CRLF, line breaks inside quotes,
    # records with the wrong number of fields, and JSON lines that are not objects
    assert spanning >= 10 and any(r.endswith(".gz") for r in ingested)
    assert {r.encoding for r in results if r.status == "ingested" and r.source == "reports"} == {"utf-8", "cp1252"}
    with state.connect(st, read_only=True) as con:
        kinds = dict(con.execute("select source, count(*) from quarantine where kind = 'line' group by source"
                                 ).fetchall())
    assert kinds.get("reports", 0) >= 1 and kinds.get("dispatches", 0) >= 1


# --- 6. the 2019 sample through the whole pipeline gives the district's deck --------------------------------

DECK_2019_OVERVIEW = {  # the district's 2019 slide deck ("Overblik"), as README.md and the contract quote it
    "municipalities": 7, "reports": 205_690, "callouts": 36_836, "safety_ambassadors": 127,
    "ambassador_local_areas": 95, "mobile_station_outings": 208, "safety_followups": 1_763,
    "citizen_adviser_inquiries": 377, "sub_visits": 1_617, "talks": 43, "traffic_controls": 421,
}


@pytest.mark.slow
def test_the_2019_sample_through_the_real_pipeline_reproduces_the_deck(tmp_path, prefect_server):
    """~20 s: the whole 2019 sample (every kind of dirt) through the real flow, once."""
    from flows.refresh import refresh
    from sample import DECK_2019, SampleSpec, write_sample

    write_sample(tmp_path / "landing", SampleSpec(years=(2019,)))
    result = refresh(str(tmp_path / "landing"), str(tmp_path / "state"), str(tmp_path / "warehouse"))
    assert result["status"] == "published"
    with duckdb.connect(str(tmp_path / "warehouse" / store.STABLE), read_only=True) as con:
        cur = con.execute("select * from kpi_year_summary where year = 2019")
        row = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    assert {k: row[k] for k in DECK_2019_OVERVIEW} == DECK_2019_OVERVIEW
    # the generator's calibration is the deck too (so neither drifts with the other)
    assert sorted(DECK_2019.values()) == sorted(v for k, v in DECK_2019_OVERVIEW.items() if k != "municipalities")


# --- better versions of weak tests ------------------------------------------------------------------------------

@pytest.mark.slow
def test_hostile_landing_names_an_over_long_line_and_a_symlink_are_contained(tmp_path, small_landing, prefect_server):
    """Replaces test_hardening.py::test_hostile_landing_names_huge_lines_and_symlinks_are_handled, which accepted
    any single quarantine row for the huge line."""
    from flows.refresh import refresh

    shutil.copytree(small_landing, tmp_path / "landing")
    reports = tmp_path / "landing" / "reports"
    valid = "4100-66666-{:05d}-19;05-01-2019 10:00:00;;370;Særlov;Knivloven;05-01-2019 10:00:00;;"
    header = ";".join(REPORT_HEADER)
    hostile = "x'; drop table files; --.csv"
    (reports / hostile).write_text(f"{header}\n{valid.format(1)}\n", encoding="utf-8")
    # nine fields, the free text (personal data) 3 MB long: over the 1 MiB line limit
    huge = valid.format(2)[:-2] + ";" + "Hemmelig " * 333_334 + ";"
    (reports / "huge.csv").write_text(f"{header}\n{valid.format(3)}\n{huge}\n{valid.format(4)}\n", encoding="utf-8")
    outside = tmp_path / "outside.csv"
    outside.write_text(f"{header}\n{valid.format(5)}\n", encoding="utf-8")
    (reports / "link.csv").symlink_to(outside)

    result = refresh(str(tmp_path / "landing"), str(tmp_path / "state"), str(tmp_path / "warehouse"))
    assert result["status"] == "published"
    rejected = {r["file"]: r["reason"] for r in result["rejected"]}
    assert "outside the landing folder" in rejected["reports/link.csv"]
    with duckdb.connect(str(tmp_path / "state" / "state.duckdb"), read_only=True) as con:
        files = {r[0]: r[1:] for r in con.execute(
            "select identity, status, rows_read, rows_staged, rows_quarantined from files").fetchall()}
        assert files[f"reports/{hostile}"] == ("ingested", 1, 1, 0) and "reports/link.csv" not in files
        assert con.execute("select journalnr from staged_reports where file_identity = ?",
                           [f"reports/{hostile}"]).fetchall() == [("4100-66666-00001-19",)]
        assert files["reports/huge.csv"] == ("ingested", 3, 2, 1)
        assert con.execute("select line, journalnr from staged_reports where file_identity = 'reports/huge.csv' "
                           "order by line").fetchall() == [(2, "4100-66666-00003-19"), (4, "4100-66666-00004-19")]
        assert con.execute("""select line, kind, rules, record_key, raw_values, length is not null, length(sha256)
                              from quarantine where file_identity = 'reports/huge.csv'""").fetchall() == [
            (3, "line", "line too long", None, None, True, 64)]
        assert "4100-66666-00005-19" not in str(con.execute("select journalnr from staged_reports").fetchall())
    for path in [tmp_path / "state" / "state.duckdb", *(tmp_path / "state" / "archive").glob("*.parquet"),
                 *(tmp_path / "warehouse").rglob("*.duckdb")]:
        assert b"Hemmelig" not in path.read_bytes(), f"the over-long line's text reached {path}"
    with duckdb.connect(str(tmp_path / "warehouse" / store.STABLE), read_only=True) as con:
        assert con.execute("select count(*) from fct_reports where journal_number like '4100-66666-%'").fetchone() \
            == (3,)


def _broken_lines_file(kind: str, eol: str) -> tuple[str, list[tuple[int, str, str]], list[int], list[str]]:
    """A file of valid records between broken lines of many lengths: its text, the broken lines as
    (line, reason, text), the lines of the valid records and their keys."""
    parts: list[tuple[str, str | None]] = []  # (text, None for a record or the reason for a broken line)

    def broken(head: str, size: int, tail: str = "") -> str:
        """`size` bytes; past 10,000 bytes, with an ø across the 10,000th (DuckDB keeps 10,000 bytes)."""
        fill = size - len((head + tail).encode())
        if size > 10_001 + len(tail.encode()):
            before = 9_999 - len(head.encode())
            return head + "x" * before + "ø" + "x" * (fill - before - 2) + tail
        return head + "x" * fill + tail

    if kind == "csv":
        parts.append((";".join(REPORT_HEADER), "header"))
        valid = "4100-66666-{:05d}-19;05-01-2019 10:00:00;;370;Særlov;Knivloven;05-01-2019 10:00:00;;"
        few, long = "wrong number of fields (too few)", "line too long"
        lines = [(broken("4100-66666-00001-19;", n), few) for n in (9_999, 10_000, 10_001, 100_000, 1_000_000)]
        lines.append((valid.format(2)[:-2] + ";" + "y" * 1_100_000 + ";", long))  # nine fields, over 1 MiB
        # a quoted free text with line breaks before and after the 10,000 bytes DuckDB keeps; ten fields
        lines.append((valid.format(3)[:-1] + '"' + "Hemmelig\n" * 3_000 + '";x;y', "wrong number of fields (too many)"))
    else:
        valid = '{{"haendelse_id": "{:05d}", "prioritet": 1, "aflyst": false, "kommunekode": 370}}'
        bad, long = "not a valid JSON object", "line too long"
        lines = [(broken('{"haendelse_id": "Ø", "note": "', n), bad)
                 for n in (9_999, 10_000, 10_001, 100_000, 1_000_000)]
        lines.append((broken('{"haendelse_id": "Ø", "note": "', 1_100_000, '"}'), long))  # over 1 MiB
        lines.append((broken('{"haendelse_id": "Ø\x01", "note": "', 20_000, '"}'), bad))  # a DuckDB reject
    for n, line in enumerate(lines):
        parts += [(valid.format(10 + n), None), line]
    parts.append((valid.format(99), None))
    expect_broken, expect_lines, keys, number = [], [], [], 1
    for text, reason in parts:
        if reason is None:
            expect_lines.append(number)
            keys.append(text[:19] if kind == "csv" else text[18:23])
        elif reason != "header":
            expect_broken.append((number, reason, text))
        number += text.count("\n") + 1
    return eol.join(text for text, _ in parts) + eol, expect_broken, expect_lines, keys


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_broken_line_keeps_its_own_length_and_hash_however_long(tmp_path, kind, gz, eol):
    """DuckDB's reject table keeps only the first 10,000 bytes of a line (after a CRLF, with the line
    break before it): each broken line is quarantined with the length and sha256 of its own bytes
    (without its line ending), whatever its length, and the rest of the file is kept with its line
    numbers (a broken record's line breaks past those 10,000 bytes count too)."""
    from flows.ingest import readers

    text, expect_broken, expect_lines, keys = _broken_lines_file(kind, eol)
    source = SOURCES["reports" if kind == "csv" else "dispatches"]
    path = tmp_path / f"r.{kind}{'.gz' if gz else ''}"
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)

    parsed = readers.read_file(path, source, tmp_path)
    key = "journalnr" if kind == "csv" else "haendelse_id"
    assert parsed.rows.select("line", key).rows() == list(zip(expect_lines, keys, strict=True))
    assert parsed.broken.columns == ["line", "reason", "length", "sha256"]
    got = parsed.broken.rows()
    expected = [(n, reason, len(line.encode()), hashlib.sha256(line.encode()).hexdigest())
                for n, reason, line in expect_broken]
    assert [g[:3] for g in got] == [e[:3] for e in expected]  # lengths first: the clearer message
    assert got == expected
    assert min(length for _, _, length, _ in got) < 10_000 < max(length for _, _, length, _ in got)
    # the same in a scan of several files (a clean one first)
    clean = tmp_path / f"clean.{kind}"
    clean.write_bytes(text.encode().split(eol.encode())[0] + eol.encode())  # the header; a record
    together = readers.read_many([clean, path], source, tmp_path)[1]
    assert together.rows.equals(parsed.rows) and together.broken.equals(parsed.broken)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`politikpi` in its own process, from a working directory of the test's own."""
    code = Path(extract.__file__).resolve().parents[1]  # the checkout under test, whatever the cwd
    return subprocess.run([sys.executable, "-m", "flows", *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, PYTHONPATH=str(code)), timeout=300)


def test_sample_out_refuses_to_climb_out_of_the_working_directory(tmp_path):
    """Replaces the `sample --out ../escape/landing` case of test_hardening.py::
    test_hostile_cli_values_are_refused_with_a_clear_message, which ran from the repository but looked for
    the escape next to its tmp_path, a folder the command could never touch."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    out = run_cli("sample", "--out", "inside/landing", "--days", "1", cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert (cwd / "inside" / "landing" / "reports").is_dir()  # relative --out resolves against cwd
    out = run_cli("sample", "--out", "../escape/landing", "--days", "1", cwd=cwd)
    assert out.returncode == 1 and "FAILED" in out.stderr and "'..'" in out.stderr and "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # nothing next to the working directory


@pytest.mark.parametrize(("args", "says"), [
    (["diff", "../../x", "{current}"], "not a release id"),
    (["report", "--release", "/etc/passwd"], "not a release id"),
    (["report", "--release", "x'; drop table _release; --"], "not a release id"),
    (["report", "--out", "notes.txt"], "must name an .html file"),
])
def test_hostile_cli_values_are_refused_for_their_own_reason(tmp_path, builds, args, says):
    """Replaces the other cases of test_hardening.py::test_hostile_cli_values_are_refused_with_a_clear_message,
    which ran against an empty warehouse (refused for having no release, whatever the value)."""
    warehouse, cwd = tmp_path / "warehouse", tmp_path / "work"
    cwd.mkdir()
    release = publish_copy(builds[0], warehouse, tmp_path / "b0")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "work" not in p.parts)
    current = builds[0][1]["release_id"]
    out = run_cli(*[a.format(current=current) for a in args], "--warehouse", str(warehouse), cwd=cwd)
    assert out.returncode == 1 and "FAILED" in out.stderr and says in out.stderr and "Traceback" not in out.stderr, \
        out.stderr
    assert list(cwd.iterdir()) == []  # no report written anywhere
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "work" not in p.parts) == before
    assert figures(release)[0] == current and store.load_manifest(warehouse)["current"] == current


def test_the_threshold_summary_counts_each_sources_ingested_files_only(tmp_path):
    """Per source: its own ingested files (a rejected file counts nowhere); a source with nothing
    read has share 0."""
    from flows.ingest.extract import FileResult

    def result(identity, source, status, read, bad):
        return FileResult(identity, source, identity, "0" * 64, 1, 0, "utf-8", status, None, read, read - bad, bad)

    results = [result("reports/a.csv", "reports", "ingested", 300, 30),
               result("reports/b.csv", "reports", "rejected", 0, 0),
               result("dispatches/a.jsonl", "dispatches", "ingested", 1000, 0),
               result("outreach/a.csv", "outreach", "rejected", 0, 0)]
    settings = Settings(tmp_path / "landing", tmp_path / "state", tmp_path / "warehouse", max_quarantine_share=0.2)
    summary = threshold_summary(results, settings, "test")
    assert summary["reports"] == {"files": 1, "read": 300, "quarantined": 30, "staged": 270, "share": 0.1}
    assert summary["dispatches"] == {"files": 1, "read": 1000, "quarantined": 0, "staged": 1000, "share": 0.0}
    assert summary["outreach"] == {"files": 0, "read": 0, "quarantined": 0, "staged": 0, "share": 0.0}
    # over the threshold: nothing loads, and the stopped run lists its ingested files (never a rejected one)
    # for the re-run that resumes it
    from flows.ingest.quarantine import PENDING

    with pytest.raises(ThresholdExceeded):
        threshold_summary(results, Settings(tmp_path / "landing", tmp_path / "state", tmp_path / "warehouse",
                                            max_quarantine_share=0.05), "stopped")
    pending = json.loads((tmp_path / "state" / "work" / PENDING).read_text(encoding="utf-8"))
    assert pending["run_id"] == "stopped"
    assert [f["identity"] for f in pending["files"]] == ["reports/a.csv", "dispatches/a.jsonl"]


def test_the_threshold_defaults_are_the_contracts(monkeypatch):
    """SPEC 3: above 5 % quarantined, and only when the run read at least 200 rows of the source."""
    monkeypatch.delenv("POLITIKPI_MAX_QUARANTINE_SHARE", raising=False)
    monkeypatch.delenv("POLITIKPI_MIN_ROWS_FOR_THRESHOLD", raising=False)
    settings = Settings()
    assert (settings.max_quarantine_share, settings.min_rows_for_threshold) == (0.05, 200)
