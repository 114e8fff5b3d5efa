"""The restatement log (`kpi_revisions`, SPEC 4.1) through the real stack: landing files are ingested by
the real readers, each release is built by `transform_build` (which computes `inputs_changed` and
`code_changed` itself, from the manifest's current release) and published through the release store as
`publish_build` does (KPI file, then `store.add_release`; the Great Expectations audit adds nothing to
the log and is left out to keep this fast). Nothing about a release is fed in: the flags, the replaced
release and the closed months all come from the warehouse and the state.

The story: R1 is built by an older code version (a real copy of the code, run in its own process,
whose kpi_callouts did not count cancelled call-outs); R2, the current code over the same files,
restates that (code changed, inputs not); R3 re-delivers all three event files (inputs changed, code
not); a rollback to R2 writes nothing; R4, published after the rollback, is compared with R2 and
carries R2's rows, not R3's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp

from flows.config import Settings
from flows.files import file_sha256
from flows.release import publish, releases, store
from flows.transform.transform import transform_build
from flows.transform.versions import REPO, code_version
from tests.test_rules_that_matter import dispatch, ingest, write_jsonl

LOG_COLUMNS = ("release_id", "previous_release_id", "table_name", "key", "column_name", "old_value", "new_value",
               "inputs_changed", "code_changed")


# --- landing files, as the source systems write them -------------------------------------------------------------

def write_reports(landing: Path, rows: list[tuple[int, str, int]]) -> None:
    """reports/r.csv: (journal number's serial, local DD-MM-YYYY HH:MM:SS, kommunekode), all Straffelov."""
    lines = ["journalnr;anmeldt_tid;gerningstid_fra;kommunekode;lovomraade;overtraedelse;sidst_aendret;fritekst;"
             "anmelder_cpr"]
    lines += [f"4100-00000-{n:05d}-19;{at};;{code};Straffelov;Tyveri;{at};;" for n, at, code in rows]
    (landing / "reports").mkdir(parents=True, exist_ok=True)
    (landing / "reports" / "r.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def cancelled(hid: str, received: str, code: int) -> dict:
    """A call-out cancelled before arrival (priority 2): counted in kpi_callouts, never timed."""
    return {**dispatch(hid, received, seconds=None, code=code, priority=2, measured=False), "aflyst": True}


def write_dispatches(landing: Path, records: list[dict]) -> None:
    write_jsonl(landing / "dispatches" / "d.jsonl", records)


def write_outreach(landing: Path, rows: list[tuple[str, int, str, int]]) -> None:
    """outreach/o.csv: (DD-MM-YYYY, kommunekode, aktivitet, antal)."""
    lines = ["dato;kommunekode;aktivitet;antal;lokalomraade;note"]
    lines += [f"{day};{code};{what};{antal};;" for day, code, what, antal in rows]
    (landing / "outreach").mkdir(parents=True, exist_ok=True)
    (landing / "outreach" / "o.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def first_delivery(landing: Path) -> None:
    """February is closed and March open in every release below: data_through is 2019-03-05 (the
    outreach log's last day; reports and call-outs run a few days further)."""
    write_reports(landing, [(1, "10-02-2019 10:00:00", 370), (2, "11-02-2019 10:00:00", 370),
                            (3, "10-03-2019 10:00:00", 370)])
    write_dispatches(landing, [
        dispatch("H1", "2019-02-10T10:00:00+01:00", seconds=600, cause="roeveri"),
        dispatch("H2", "2019-02-12T10:00:00+01:00", seconds=1200, cause="roeveri"),
        cancelled("H3", "2019-02-15T10:00:00+01:00", code=360),
        dispatch("H4", "2019-03-05T10:00:00+01:00", seconds=300, cause="roeveri"),
        cancelled("H5", "2019-03-06T10:00:00+01:00", code=370),
    ])
    write_outreach(landing, [("10-02-2019", 370, "foredrag", 2), ("05-03-2019", 370, "foredrag", 1)])


def redelivery(landing: Path) -> None:
    """New versions of all three files: in February (closed) a report moves from Næstved to Lolland,
    H1's response time goes from 10 to 15 minutes, a timed call-out in Slagelse and an outreach row in
    Lolland appear, Næstved's talks go from 2 to 3; in March (open) a report, H4's time and the talks
    change too, and must not be logged."""
    write_reports(landing, [(1, "10-02-2019 10:00:00", 370), (2, "11-02-2019 10:00:00", 360),
                            (3, "10-03-2019 10:00:00", 370), (4, "12-03-2019 10:00:00", 370)])
    write_dispatches(landing, [
        dispatch("H1", "2019-02-10T10:00:00+01:00", seconds=900, cause="roeveri"),
        dispatch("H2", "2019-02-12T10:00:00+01:00", seconds=1200, cause="roeveri"),
        cancelled("H3", "2019-02-15T10:00:00+01:00", code=360),
        dispatch("H6", "2019-02-20T10:00:00+01:00", seconds=300, code=330, cause="roeveri"),
        dispatch("H4", "2019-03-05T10:00:00+01:00", seconds=600, cause="roeveri"),
        cancelled("H5", "2019-03-06T10:00:00+01:00", code=370),
    ])
    write_outreach(landing, [("10-02-2019", 370, "foredrag", 3), ("15-02-2019", 360, "sub_besoeg", 1),
                             ("05-03-2019", 370, "foredrag", 4)])


# --- releases: built by transform_build, published through the release store --------------------------------------

def publish_release(settings: Settings, n: int, full: bool = False) -> dict:
    """transform_build, then what publish_build does after the audit: the KPI file beside the build
    and store.add_release. Returns the build's result (its manifest entry under "meta")."""
    built = transform_build(settings, key=f"{n:012x}", full=full)
    publish.write_kpi_file(Path(built["path"]), settings.storage_version)
    store.add_release(Path(built["path"]), settings.warehouse, built["meta"], settings.keep_releases)
    return built


# An older code version of politikpi, run from a copy of the code in its own process: its kpi_callouts
# did not count cancelled call-outs (SPEC 4: "cancelled ones count"). code_version() hashes the copy's
# files, so the release it publishes really carries another code version, in its manifest entry and in
# its _release row, as a release published before a code fix does.
OLDER_CODE_PUBLISH = r"""
import json, sys
from pathlib import Path
import flows
from flows.config import Settings
from flows.release import publish, store
from flows.transform.transform import transform_build
landing, state_dir, warehouse, key = sys.argv[1:]
settings = Settings(Path(landing), Path(state_dir), Path(warehouse)).resolved()
built = transform_build(settings, key=key)
publish.write_kpi_file(Path(built["path"]), settings.storage_version)
store.add_release(Path(built["path"]), settings.warehouse, built["meta"], settings.keep_releases)
print(json.dumps({"meta": built["meta"], "flows": flows.__file__}))
"""


def older_code(root: Path) -> Path:
    """A copy of the code whose kpi_callouts leaves cancelled call-outs out."""
    for folder in ("flows", "schemas", "sql", "reference"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    model = root / "sql" / "kpi" / "kpi_callouts.sql"
    # on the parsed model, not its text: `make mutate` runs this test on models sqlglot rewrote
    tree = sqlglot.parse_one(model.read_text(encoding="utf-8"), read="duckdb")
    facts = next(cte.this for cte in tree.find_all(exp.CTE) if cte.alias == "callouts")
    facts.where("not cancelled", copy=False)
    model.write_text(tree.sql(dialect="duckdb", pretty=True) + "\n", encoding="utf-8")
    return root


def publish_with_older_code(code: Path, settings: Settings, n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", OLDER_CODE_PUBLISH, str(settings.landing), str(settings.state),
                          str(settings.warehouse), f"{n:012x}"], cwd=code, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(code)})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["flows"] == str(code / "flows" / "__init__.py")  # the copy ran, not this checkout
    return result["meta"]


def log(path: Path) -> set[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return set(con.execute(f"select {', '.join(LOG_COLUMNS)} from kpi_revisions").fetchall())


def key(**columns) -> str:
    """The key as SPEC 4.1 writes it: compact JSON of the key columns in table order."""
    return json.dumps(columns, separators=(",", ":"), ensure_ascii=False)


def month_key(month: str, **columns) -> str:
    return key(month=month, **columns)


def rt_key(code: int | None, cause: str | None) -> str:
    return key(period_grain="month", period_start="2019-02-01", municipality_code=code, cause=cause)


FEB = "2019-02-01"
# What the re-delivery restates in February, compared with the first delivery (current code both sides).
RESTATED_DISPATCH_AND_OUTREACH = {
    ("kpi_callouts", month_key(FEB, municipality_code=330, cause="roeveri", priority=1), "callouts", None, 1.0),
    ("kpi_outreach", month_key(FEB, municipality_code=370, activity="foredrag"), "activities", 2.0, 3.0),
    ("kpi_outreach", month_key(FEB, municipality_code=360, activity="sub_besoeg"), "activities", None, 1.0),
    # H1 600 -> 900 s; H2 1200 s; H6 300 s appears in Slagelse. Responses 2 -> 2 in Næstved: not logged.
    ("kpi_response_times", rt_key(370, "roeveri"), "mean_min", 1800 / 2 / 60, 2100 / 2 / 60),
    ("kpi_response_times", rt_key(370, None), "mean_min", 1800 / 2 / 60, 2100 / 2 / 60),
    ("kpi_response_times", rt_key(330, "roeveri"), "responses", None, 1.0),
    ("kpi_response_times", rt_key(330, "roeveri"), "mean_min", None, 300 / 60),
    ("kpi_response_times", rt_key(330, None), "responses", None, 1.0),
    ("kpi_response_times", rt_key(330, None), "mean_min", None, 300 / 60),
    ("kpi_response_times", rt_key(None, "roeveri"), "responses", 2.0, 3.0),
    ("kpi_response_times", rt_key(None, "roeveri"), "mean_min", 1800 / 2 / 60, 2400 / 3 / 60),
    ("kpi_response_times", rt_key(None, None), "responses", 2.0, 3.0),
    ("kpi_response_times", rt_key(None, None), "mean_min", 1800 / 2 / 60, 2400 / 3 / 60),
}


def test_restatements_are_logged_with_flags_computed_from_the_releases_and_a_rollback_logs_nothing(tmp_path):
    landing = tmp_path / "landing"
    settings = Settings(landing, tmp_path / "state", tmp_path / "warehouse").resolved()
    first_delivery(landing)
    ingest(landing, settings.state)

    # R1: the older code. The first release replaces nothing.
    r1 = publish_with_older_code(older_code(tmp_path / "older"), settings, 1)
    assert r1["code_version"] != code_version()
    assert str(r1["data_through"]) == "2019-03-05"
    assert log(settings.warehouse / store.STABLE) == set()

    # R2: the current code over the very same files. Its cancelled call-outs are a restatement of February
    # by the code alone; March's (H5) is in the open month and not logged.
    r2 = publish_release(settings, 2)["meta"]
    r2_rows = {(r2["release_id"], r1["release_id"], "kpi_callouts",
                month_key(FEB, municipality_code=360, cause="husspektakel", priority=2), "callouts", None, 1.0,
                False, True)}
    assert log(settings.warehouse / store.STABLE) == r2_rows

    # R3: all three files re-delivered, patched from R2 (same code): inputs changed, code not.
    redelivery(landing)
    ingest(landing, settings.state)
    patching = Settings(landing, settings.state, settings.warehouse, patch_max_share=1.0).resolved()
    built = publish_release(patching, 3)
    r3 = built["meta"]
    assert built["meta"]["build"] == {"kind": "patch", "base": r2["release_id"], "changed_files": 3}
    assert str(r3["data_through"]) == "2019-03-05"
    restated = {
        ("kpi_reports", month_key(FEB, municipality_code=370, law_area="Straffelov"), "reports", 2.0, 1.0),
        ("kpi_reports", month_key(FEB, municipality_code=360, law_area="Straffelov"), "reports", None, 1.0),
    } | RESTATED_DISPATCH_AND_OUTREACH
    r3_rows = r2_rows | {(r3["release_id"], r2["release_id"], *row, True, False) for row in restated}
    r3_log = log(settings.warehouse / store.STABLE)
    assert r3_log == r3_rows
    assert log(settings.warehouse / store.KPI_STABLE) == r3_rows  # the KPI file carries the same log
    assert not [r for r in r3_log if "2019-03" in r[3]]  # the open month logs nothing, though it changed

    # A rollback to R2 writes no rows: R2's file, untouched, is current again with R2's log.
    r2_file = settings.warehouse / "releases" / f"{r2['release_id']}.duckdb"
    r2_sha = file_sha256(r2_file)
    releases.rollback(settings.warehouse, r2["release_id"])
    assert store.current_release(settings.warehouse)["release_id"] == r2["release_id"]
    assert file_sha256(r2_file) == r2_sha and file_sha256(settings.warehouse / store.STABLE) == r2_sha
    assert log(settings.warehouse / store.STABLE) == r2_rows == log(settings.warehouse / store.KPI_STABLE)
    assert sorted(p.name for p in (settings.warehouse / "releases").glob("*.duckdb")
                  if not store.is_kpi_file(p)) == sorted(f"{r['release_id']}.duckdb" for r in (r1, r2, r3))
    assert releases.unpin(settings.warehouse)["release_id"] == r2["release_id"]

    # R4 (a full build): the reports file re-delivered once more (J2 back in Næstved, J5 in Slagelse).
    # It replaces R2, the release current after the rollback: compared with R2's values (so the report
    # moved in R3 is no restatement at all, and the call-outs, responses and outreach of R3 are restated
    # again, from R2's values) and carrying R2's rows, not R3's.
    write_reports(landing, [(1, "10-02-2019 10:00:00", 370), (2, "11-02-2019 10:00:00", 370),
                            (3, "10-03-2019 10:00:00", 370), (5, "25-02-2019 10:00:00", 330)])
    ingest(landing, settings.state)
    built = publish_release(settings, 4, full=True)
    r4 = built["meta"]
    assert built["meta"]["build"] == {"kind": "full"} and r4["release_id"] > r3["release_id"]
    restated = {("kpi_reports", month_key(FEB, municipality_code=330, law_area="Straffelov"), "reports", None, 1.0)} \
        | RESTATED_DISPATCH_AND_OUTREACH
    assert log(settings.warehouse / store.STABLE) == r2_rows | {
        (r4["release_id"], r2["release_id"], *row, True, False) for row in restated}


def test_a_release_from_before_the_log_existed_is_compared_all_the_same(tmp_path):
    """The release a build replaces may predate kpi_revisions (an older code version): empty stands in.
    Such a release is made here by dropping the table from a build before it is published, which is the
    file an older code version wrote (everything else in it is what that version wrote too)."""
    landing = tmp_path / "landing"
    settings = Settings(landing, tmp_path / "state", tmp_path / "warehouse").resolved()
    first_delivery(landing)
    ingest(landing, settings.state)
    built = transform_build(settings, key=f"{1:012x}")
    with duckdb.connect(built["path"]) as con:
        con.execute("drop table kpi_revisions")
    store.add_release(Path(built["path"]), settings.warehouse, built["meta"], settings.keep_releases)
    r1 = built["meta"]

    write_reports(landing, [(1, "10-02-2019 10:00:00", 330), (2, "11-02-2019 10:00:00", 370),
                            (3, "10-03-2019 10:00:00", 370)])
    ingest(landing, settings.state)
    r2 = publish_release(settings, 2)["meta"]
    feb = [month_key(FEB, municipality_code=code, law_area="Straffelov") for code in (370, 330)]
    assert log(settings.warehouse / store.STABLE) == {
        (r2["release_id"], r1["release_id"], "kpi_reports", feb[0], "reports", 2.0, 1.0, True, False),
        (r2["release_id"], r1["release_id"], "kpi_reports", feb[1], "reports", None, 1.0, True, False)}

