"""The national build (SPEC 8.4): the districts' current releases attached read-only, their marts
unioned with `district_code`, and the same models of sql/intermediate, sql/kpi (and sql/national)
run over them: no second copy of KPI logic. Event rows are read during the build only; the
national release holds no fct_ table. No Prefect."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import duckdb

from flows.country.inputs import DistrictInput, national_data_through
from flows.transform import runner
from flows.transform.models import load as load_metadata
from flows.transform.transform import close_build, load_reference, open_build, quote_path, write_release_table
from flows.transform.versions import code_version, reference_version
from schemas.reference import load_districts, reference_dir

# The national release's published models, in sql/ (SPEC 8.4); their build-only inputs come along.
NATIONAL_MODELS = ("dim_police_district", "kpi_reports", "kpi_callouts", "kpi_response_times", "kpi_outreach",
                   "kpi_safety_ambassadors", "kpi_year_summary", "kpi_year_over_year", "kpi_district_comparison")
MARTS = ("fct_reports", "fct_callouts", "fct_outreach", "dim_ambassadors")


class NoDistricts(RuntimeError):
    """No district release to build from."""


def alias(code: str) -> str:
    return f"district_{code}"


def national_key(inputs: list[DistrictInput]) -> str:
    """What a national release is built from: the districts' release ids and the code."""
    used = sorted((i.district_code, i.release_id) for i in inputs if i.has_release)
    return hashlib.sha256(json.dumps([used, code_version(), reference_version("national")]).encode()).hexdigest()


def _models() -> list[runner.Model]:
    """NATIONAL_MODELS and the intermediate models they read, in dependency order (marts excluded:
    the union views stand in for them)."""
    models = runner.discover(national=True)
    wanted: set[str] = set()
    todo = list(NATIONAL_MODELS)
    while todo:
        name = todo.pop()
        if name in wanted or name in MARTS or name == "dim_municipality":
            continue
        wanted.add(name)
        todo += list(models[name].reads)
    return [m for m in runner.order(models) if m.name in wanted]


def attach_districts(con: duckdb.DuckDBPyConnection, inputs: list[DistrictInput]) -> list[DistrictInput]:
    """Attach every district release the build uses (read-only) and union their marts as temp views."""
    used = [i for i in inputs if i.has_release]
    if not used:
        raise NoDistricts("no district of the fleet has a release that verifies: nothing to build a national "
                          "release from (run the districts' refreshes first)")
    for item in used:
        con.execute(f"attach {quote_path(Path(item.file))} as {alias(item.district_code)} (read_only)")
    for mart in MARTS:
        # an ambassador id is unique within one district's roster only (TA-00001 exists in every district)
        ids = " replace ('{code}:' || ambassador_id as ambassador_id)" if mart == "dim_ambassadors" else ""
        parts = [f"select *{ids.format(code=i.district_code)}, '{i.district_code}' as district_code "
                 f"from {alias(i.district_code)}.main.{mart}" for i in used]
        con.execute(f"create or replace temp view {mart} as " + " union all by name ".join(parts))
    return used


def load_country_reference(con: duckdb.DuckDBPyConnection, used: list[DistrictInput]) -> None:
    """ref_* of the whole country (dim_police_district, dim_municipality), and ref_municipalities /
    ref_population of the districts in the build, which the KPI models read."""
    load_reference(con, country=True)
    con.execute("create or replace temp table ref_country_municipalities as select * from ref_municipalities")
    con.execute("create or replace temp table ref_country_population as select * from ref_population")
    con.execute("create or replace temp table ref_police_districts "
                "(district_code varchar, police_district varchar, journal_prefix integer)")
    con.executemany("insert into ref_police_districts values (?, ?, ?)",
                    [(d.code, d.name, d.journal_prefix) for d in (load_districts() or {}).values()])
    codes = [i.district_code for i in used]
    con.execute("delete from ref_municipalities where district_code <> all(?::varchar[])", [codes])
    con.execute("delete from ref_population where municipality_code not in "
                "(select municipality_code from ref_municipalities)")
    dim = runner.discover()["dim_municipality"]
    con.execute(f"create or replace temp table dim_municipality as {dim.sql.strip().rstrip(';')}")


def national_tables(con: duckdb.DuckDBPyConnection, used: list[DistrictInput], inputs: list[DistrictInput]) -> None:
    """The tables that are provenance, not KPI logic: dim_municipality of all 98, the districts'
    kpi_data_quality rows with their district_code, and national_inputs."""
    con.execute("drop table temp.dim_municipality")
    con.execute("delete from ref_municipalities")
    con.execute("insert into ref_municipalities select * from ref_country_municipalities")
    con.execute("delete from ref_population")
    con.execute("insert into ref_population select * from ref_country_population")
    dim = runner.discover()["dim_municipality"]
    con.execute(f"create table dim_municipality as {dim.sql.strip().rstrip(';')}")
    quality = [f"select '{i.district_code}' as district_code, * from {alias(i.district_code)}.main.kpi_data_quality"
               for i in used]
    con.execute("create table kpi_data_quality as " + " union all by name ".join(quality))
    con.execute("create table national_inputs (district_code varchar, release_id varchar, sha256 varchar, "
                "code_version varchar, data_through date, published_at timestamptz, status varchar, reason varchar)")
    con.executemany("insert into national_inputs values (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(r["district_code"], r["release_id"], r["sha256"], r["code_version"], r["data_through"],
                      r["published_at"], r["status"], r["reason"]) for r in (i.row() for i in inputs)])


NATIONAL_COMMENTS = {
    "national_inputs": ("One row per police district of the reference data: the district release the national "
                        "release was built from (id, checksum, code version, data through, when published) and "
                        "its status: not_in_fleet, missing (no release that verifies), failed (its last run "
                        "failed after its release was published: its last good release is used), "
                        "stale (data more than 2 days behind the newest district), current.", {}),
    "kpi_data_quality": ("The districts' kpi_data_quality rows, each with its district_code (SPEC 4.1): rows valid "
                         "and quarantined per (month, municipality, source). NULL month or municipality = not "
                         "attributable.", {"district_code": "Police district whose release the row comes from."}),
}


def build_national(path: Path, inputs: list[DistrictInput], storage_version: str, run_id: str,
                   release_id: str) -> dict:
    """Build the national release file at path; returns its metadata (the `_release` row's)."""
    con = open_build(path, storage_version)
    try:
        used = attach_districts(con, inputs)
        load_country_reference(con, used)
        runner.run(con, _models())
        national_tables(con, used, inputs)
        published = sorted(t for (t,) in con.execute(
            "select table_name from duckdb_tables() where database_name = 'release' and schema_name = 'main'"
        ).fetchall())
        metas = load_metadata(national=True)
        runner.apply_comments(con, {k: v for k, v in metas.items() if k in published and k != "kpi_data_quality"})
        for table, (text, columns) in NATIONAL_COMMENTS.items():
            con.execute(f'comment on table "{table}" is {runner.sql_literal(text)}')
            for column, note in columns.items():
                con.execute(f'comment on column "{table}"."{column}" is {runner.sql_literal(note)}')
        meta = {
            "release_id": release_id, "created_at": dt.datetime.now(dt.UTC).replace(microsecond=0),
            "data_through": national_data_through(inputs), "code_version": code_version(), "flow_run_id": run_id,
            "input_files": {i.district_code: i.sha256 for i in used},
            "row_counts": {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in published},
            "validation_summary": {"pending": True},
            "quarantine_summary": {"districts": {i.district_code: i.release_id for i in used}},
            "district_code": None, "kind": "national", "build": {"kind": "national"},
            "storage_version": storage_version,
            "reference_version": reference_version("national"), "reference": str(reference_dir()),
            "inputs": [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in i.row().items()}
                       for i in inputs],
        }
        write_release_table(con, meta)
        con.execute("comment on column _release.input_files is 'JSON object: district_code -> sha256 of the "
                    "district release the national release was built from (national_inputs has the rest).'")
        con.execute("comment on column _release.district_code is 'NULL: a national release.'")
    finally:
        close_build(con)
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in meta.items()}
