"""What a run leaves for people to read: the overview, the quarantine, the report, the export."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import (
    FleetFile,
    State,
    Warehouse,
    console,
    ctx_source,
    fail,
    read_fleet_or_fail,
)


def overview(
    warehouse: Warehouse = Path("warehouse"),
    year: Annotated[int | None, typer.Option(help="Year to show (default: the latest).")] = None,
) -> None:
    """Print the district's headline overview (the deck's "Overblik") from the stable release."""
    import duckdb

    from flows.transform.models import labels

    path = warehouse / "politikpi.duckdb"
    if not path.exists():
        fail(f"no release at {path}: run `politikpi refresh` first")
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("select * from kpi_year_summary where year = coalesce(?, (select max(year) from kpi_year_summary))",
                           [year]).fetchall()
        cols = [d[0] for d in con.description]
        release = con.execute("select release_id, data_through from _release").fetchone()
    if not rows:
        fail(f"no data for year {year}")
    data = dict(zip(cols, rows[0], strict=True))
    table = Table(title=f"Overblik {data['year']} — release {release[0]}")
    table.add_column("KPI")
    table.add_column("", justify="right")
    for key, label in labels("kpi_year_summary"):
        value = data[key]
        text = "–" if value is None else (f"{value:.2f}" if isinstance(value, float) else f"{value:,}")
        table.add_row(label, text)
    console.print(table)


def quarantine(
    state: State = Path("data/state"),
    source: Annotated[str | None, typer.Option(help="Only this source: reports, dispatches, outreach or ambassadors.")] = None,
    file: Annotated[str | None, typer.Option(help="Only this file: its identity (reports/2019-01-05.csv) or the name it was delivered under (reports/2019-01-05.csv.gz).")] = None,
    limit: Annotated[int, typer.Option(min=0, help="Rows to show in the table; 0 = the summaries only.")] = 20,
    show_all: Annotated[bool, typer.Option("--all", help="Every matching row (no --limit).")] = False,
    output: Annotated[str, typer.Option("--format", help="table (for a terminal), csv or json (every matching row, to send to the data owner).")] = "table",
) -> None:
    """Quarantined rows (file, line, rules, raw values without personal data) and rejected files.

    Shows the rows the state holds and, after a run the failure threshold stopped, that run's rows
    (parked, not loaded). Rejected files are marked open, or resolved once a later delivery of the
    same file was ingested. --format csv or json writes every matching row to standard output."""
    from flows.ingest import quarantine as q
    from flows.ingest.sources import SOURCES
    from flows.ingest.state import db_path

    if source is not None and source not in SOURCES:
        fail(f"unknown --source {source!r}; the sources are {', '.join(SOURCES)}")
    if output not in ("table", "csv", "json"):
        fail(f"unknown --format {output!r}; use table, csv or json")
    if not db_path(state).exists():
        fail(f"no state at {state}: run `politikpi refresh` first (or check --state / POLITIKPI_STATE)")
    rows = q.all_rows(state, source, file)
    rejected = q.rejected_files(state, source, file)
    if output != "table":
        sys.stdout.write(rows.write_csv() if output == "csv" else
                         json.dumps({"rows": rows.to_dicts(), "rejected_files": rejected}, default=str,
                                    ensure_ascii=False, indent=1) + "\n")
        return
    if file and rows.is_empty() and not rejected:
        fail(f"no quarantined rows and no rejected delivery for file {file!r} (give its identity, e.g. "
             "reports/2019-01-05.csv, or the name it was delivered under)")
    stopped = q.pending(state)
    if stopped:
        console.print(f"[yellow]The run {stopped.get('run_id')} at {stopped.get('at')} was stopped by the failure "
                      "threshold: its rows below are marked 'stopped run' and were not loaded.[/]")
    summary = rows.group_by("status", "source", "kind", "rules").len().sort(["status", "source", "len"],
                                                                             descending=[False, False, True])
    t = Table(title="Quarantined rows by rule (kind: row; line = not a record; correction = an invalid newer "
                    "version, the valid one stays in force)")
    for c in ("status", "source", "kind", "rules", "rows"):
        t.add_column(c, justify="right" if c == "rows" else "left")
    for status, src, kind, rules, n in summary.iter_rows():
        t.add_row(status, src, kind, rules, f"{n:,}")
    console.print(t)
    shown = rows if show_all else rows.head(limit)
    if len(shown):
        t = Table(title=f"{'All' if len(shown) == len(rows) else f'First {len(shown)} of'} {len(rows):,} "
                        "quarantined rows (--format csv for every value)")
        t.add_column("file", overflow="fold", min_width=18)
        t.add_column("line", min_width=4)
        t.add_column("rules", overflow="fold", min_width=22)
        t.add_column("raw values (personal data removed)", overflow="fold", min_width=20, ratio=1)
        for r in shown.iter_rows(named=True):
            values = r["raw_values"] or f"(length {r['length']}, sha256 {str(r['sha256'])[:12]}…)"
            t.add_row(r["file"], str(r["line"]), r["rules"], values)
        console.print(t)
    for r in rejected:
        if r["state"] == "resolved":
            console.print(f"[green]resolved[/] {r['file']}: was rejected ({r['reason']}); {r['now_path']} was "
                          f"ingested at {r['now_at']:%Y-%m-%d %H:%M}", soft_wrap=True, highlight=False)
        else:
            console.print(f"[yellow]rejected file[/] {r['file']}: {r['reason']}", soft_wrap=True, highlight=False)


def report(
    release: Annotated[str | None, typer.Option(help="Release id (default: the current release).")] = None,
    year: Annotated[int | None, typer.Option(min=1990, max=2100, help="Year to report (default: the latest).")] = None,
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default: warehouse/reports/<release>-<year>.html).")] = None,
    warehouse: Warehouse = Path("warehouse"),
    national: Annotated[bool, typer.Option("--national", help="The national comparison from the national warehouse (--warehouse, or --fleet's national_warehouse): districts ranked by mean response time, shares within 10 and 20 minutes, reports per 1,000, the country's line, every district's status.")] = False,
    fleet: FleetFile = None,
) -> None:
    """Write the district's KPI report (self-contained HTML, Danish labels) for a release.

    With --national, the national release's comparison of the districts. Both apply the disclosure
    rules (counts of 1 or 2 as "<3", secondary suppression as "..")."""
    from flows.release.report import write_report

    if national and fleet is not None and ctx_source("warehouse") != "COMMANDLINE":
        warehouse = read_fleet_or_fail(fleet).national_warehouse
    from flows.release.store import is_national

    if national and not is_national(warehouse):
        fail(f"{warehouse} is not a national warehouse: give --fleet FILE (its national_warehouse) or --warehouse")
    entry = chosen_release(warehouse, release)
    if out is not None and out.suffix.lower() != ".html":
        fail(f"--out must name an .html file, got {out}")
    target = out or warehouse / "reports" / f"{entry['release_id']}-{year or 'latest'}.html"
    try:
        if national:
            from flows.country.report import write_national_report

            path = write_national_report(warehouse / entry["file"], target, year)
        else:
            path = write_report(warehouse / entry["file"], target, year)
    except ValueError as exc:
        fail(str(exc))
    console.print(f"[bold green]OK[/]: wrote {path} ({path.stat().st_size / 1024:.0f} KiB)", soft_wrap=True)


def export(
    release: Annotated[str | None, typer.Option(help="Release id (default: the current release).")] = None,
    format: Annotated[str, typer.Option("--format", help="xlsx (one workbook: a sheet per table and a README sheet describing every column), parquet or csv (a folder: a file per table and columns.csv).")] = "xlsx",
    out: Annotated[Path | None, typer.Option(help="File (xlsx) or folder (parquet, csv) to write (default: warehouse/exports/<release>.<format>).")] = None,
    warehouse: Warehouse = Path("warehouse"),
) -> None:
    """Export a release's KPI tables (dim_municipality, kpi_*, _release) for Excel or a BI tool.

    The tables are not suppressed: they stay inside the police, like the KPI file they come from."""
    from flows.release.export import FORMATS
    from flows.release.export import export as do_export

    if format not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    entry = chosen_release(warehouse, release)
    if format == "xlsx" and out is not None and out.suffix.lower() != ".xlsx":
        fail(f"--out must name an .xlsx file for --format xlsx, got {out}")
    target = out or warehouse / "exports" / f"{entry['release_id']}.{format}"
    source = warehouse / (entry.get("kpi_file") or entry["file"])
    with console.status(f"exporting {entry['release_id']}") as status:
        written = do_export(source, target, format, progress=lambda t: status.update(f"exported {t}"))
    console.print(f"[bold green]OK[/]: wrote {target}: {len(written)} tables, "
                  f"{sum(n for _, n in written):,} rows", soft_wrap=True)


def chosen_release(warehouse: Path, release: str | None) -> dict:
    """The manifest entry of the release asked for, or of the current one; one line if there is none."""
    from flows.release.releases import ReleaseError, checked_release
    from flows.release.store import load_manifest

    try:
        return checked_release(warehouse, release or load_manifest(warehouse)["current"] or "")
    except ReleaseError as exc:
        fail(str(exc) if release else f"no current release in {warehouse}: run `politikpi refresh` first")
