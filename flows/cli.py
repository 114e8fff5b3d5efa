"""The `politikpi` command. Every folder is an option with an environment variable and a default."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="politikpi — raw police exports in, an audited, versioned DuckDB KPI warehouse out.\n\n"
         "Quick start: `politikpi sample --year 2019 --out data/landing`, then `politikpi refresh`, "
         "then `politikpi overview`.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
)
# Piped to a file or another program, lines are not wrapped at 80 columns (never mid-word).
console = Console(soft_wrap=not sys.stdout.isatty(), width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)  # a one-line reason stays one line

Landing = Annotated[Path, typer.Option(envvar="POLITIKPI_LANDING",
                                       help="Landing folder with reports/, dispatches/, outreach/, ambassadors/.")]
State = Annotated[Path, typer.Option(envvar="POLITIKPI_STATE",
                                     help="State folder: file registry, staged rows, quarantine (never published).")]
Warehouse = Annotated[Path, typer.Option(envvar="POLITIKPI_WAREHOUSE",
                                         help="Warehouse folder: releases/, manifest.json and the stable politikpi.duckdb.")]

EXIT_OK, EXIT_ERROR, EXIT_DATA_QUALITY, EXIT_BUSY = 0, 1, 2, 3


def fail(message: str, code: int = EXIT_ERROR) -> None:
    err.print(f"[bold red]FAILED[/]: {message}")
    raise typer.Exit(code)


@app.command()
def sample(
    out: Annotated[Path, typer.Option(help="Folder to write the landing files into.")] = Path("data/landing"),
    year: Annotated[str, typer.Option("--year", "--years", help="A year (2019) or a range (2015-2019).")] = "2019",
    scale: Annotated[int, typer.Option(min=1, max=1000, help="Multiply every volume by N (55 = ~11M reports).")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 2019,
    days: Annotated[int | None, typer.Option(min=1, max=366, help="Only the first N days of each year (a small sample for tests).")] = None,
) -> None:
    """Write a deterministic sample landing folder calibrated to the district's 2019 deck."""
    from flows.sample import SampleSpec, parse_years, write_sample

    try:
        years = parse_years(year)
    except ValueError as exc:
        fail(str(exc))
    if ".." in out.parts:
        fail(f"--out must not climb out with '..': {out}")
    if out.exists() and any(p.name not in ("reports", "dispatches", "outreach", "ambassadors") and not p.name.startswith(".")
                            for p in out.iterdir()):
        fail(f"{out} holds other files than a landing folder's; choose an empty or landing folder")
    started = time.monotonic()
    with console.status("writing sample…") as status:
        def progress(source, day):
            status.update(f"writing {source} {day}")
        written = write_sample(out, SampleSpec(years=years, scale=scale, seed=seed, days=days), progress)
    console.print(f"OK: wrote {sum(written.values())} files to {out} "
                  f"({', '.join(f'{k} {v}' for k, v in written.items())}) in {time.monotonic() - started:.1f} s")


@app.command()
def refresh(
    landing: Landing = Path("data/landing"),
    state: State = Path("data/state"),
    warehouse: Warehouse = Path("warehouse"),
    full_refresh: Annotated[bool, typer.Option("--full-refresh", help="Rebuild the state from the archive of every file ever ingested.")] = False,
    reingest: Annotated[str | None, typer.Option(help="Re-validate archived files whose identity matches a glob, e.g. 'reports/2019-03-*' (after a rule change).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's task logs and tracebacks on the terminal.")] = False,
) -> None:
    """Run the refresh flow once: extract, validate, transform, audit, publish.

    Exit status: 0 published; 2 data-quality failure (threshold or audit; the current release
    stays current); 3 another refresh holds the state; 1 any other error."""
    if landing.exists() and not landing.is_dir():
        fail(f"--landing {landing} is a file, not a folder: give the folder that holds reports/, dispatches/, "
             "outreach/ and ambassadors/")
    if not landing.is_dir():
        fail(f"landing folder {landing} does not exist (run `politikpi sample --out {landing}`)")
    if not verbose:  # task logs still reach the Prefect server; the terminal gets one verdict line
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", "CRITICAL")
    with console.status("refreshing (Prefect flow)…"):
        import duckdb

        from flows.audit import AuditFailed
        from flows.publish import ManifestError, PublishRefused
        from flows.refresh import ThresholdExceeded
        from flows.refresh import refresh as refresh_flow
        from flows.state import StateBusy

        started = time.monotonic()
        try:
            result = refresh_flow(str(landing), str(state), str(warehouse), full_refresh, reingest)
        except ThresholdExceeded as exc:
            fail(str(exc), EXIT_DATA_QUALITY)
        except AuditFailed as exc:
            fail(f"{exc} (Data Docs: {exc.result.docs})", EXIT_DATA_QUALITY)
        except StateBusy as exc:
            fail(str(exc), EXIT_BUSY)
        except (ManifestError, PublishRefused) as exc:
            fail(str(exc))
        except OSError as exc:  # disk full, read-only or missing folders: say which path
            fail(f"{exc.strerror or exc} ({exc.filename or 'warehouse or state folder'}); the current release "
                 "stays current; fix it and re-run `politikpi refresh`")
        except duckdb.IOException as exc:
            fail(f"{str(exc).splitlines()[0]}; the current release stays current; fix it and re-run")
        except Exception as exc:
            if verbose:
                raise
            fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} (the current release stays "
                 "current; re-run with --verbose for details)")
    from flows.artifacts import verdict

    print_run_summary(result)
    console.print(f"[bold green]OK[/]: {verdict(result)} in {time.monotonic() - started:.1f} s", soft_wrap=True)
    exit_now(0)


def exit_now(code: int) -> None:
    """Leave without tearing the interpreter down: after a refresh that loaded Great Expectations,
    SciPy and pandas, Python's module teardown alone takes ~0.9 s. Exit handlers still run (Prefect
    flushes its logs and events to the API there); every file and database is closed by now."""
    import atexit

    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def print_run_summary(result: dict) -> None:
    table = Table(title="Rows this run (new or re-delivered files)")
    for col in ("source", "files", "read", "staged", "quarantined", "share"):
        table.add_column(col, justify="right" if col != "source" else "left")
    for name, s in result["sources"].items():
        table.add_row(name, str(s["files"]), f"{s['read']:,}", f"{s['staged']:,}",
                      f"{s['quarantined']:,}", f"{s['share']:.2%}")
    console.print(table)
    for r in result["rejected"]:
        console.print(f"[yellow]rejected[/] {r['file']}: {r['reason']}")


OVERVIEW_ROWS = [
    ("municipalities", "Kommuner"), ("population", "Indbyggere"), ("reports", "Anmeldelser"),
    ("callouts", "Udrykninger"), ("mean_response_min", "Gns. responstid (min)"),
    ("safety_ambassadors", "Tryghedsambassadører"), ("ambassador_local_areas", "– i lokalområder"),
    ("mobile_station_outings", "Mobil politistation (udkørsler)"),
    ("safety_followups", "Tryghedsopfølgninger"), ("citizen_adviser_inquiries", "Borgerrådgiver-henvendelser"),
    ("sub_visits", "SUB-besøg"), ("talks", "Bestil en betjent (foredrag)"),
    ("traffic_controls", "Bestilte færdselskontroller"),
]


@app.command()
def overview(
    warehouse: Warehouse = Path("warehouse"),
    year: Annotated[int | None, typer.Option(help="Year to show (default: the latest).")] = None,
) -> None:
    """Print the district's headline overview (the deck's "Overblik") from the stable release."""
    import duckdb

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
    for key, label in OVERVIEW_ROWS:
        value = data[key]
        text = "–" if value is None else (f"{value:.2f}" if isinstance(value, float) else f"{value:,}")
        table.add_row(label, text)
    console.print(table)


@app.command()
def quarantine(
    state: State = Path("data/state"),
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    file: Annotated[str | None, typer.Option(help="Only this file identity (e.g. reports/2019-01-05.csv).")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show; 0 = summary only.")] = 20,
) -> None:
    """List quarantined rows (file, line, rules, raw values without personal data) and rejected files."""
    import duckdb

    from flows.state import db_path

    if not db_path(state).exists():
        fail(f"no state at {state}: run `politikpi refresh` first")
    with duckdb.connect(str(db_path(state)), read_only=True) as con:
        where, params = "where 1 = 1", []
        if source:
            where += " and source = ?"
            params.append(source)
        if file:
            where += " and file_identity = ?"
            params.append(file)
        summary = con.execute(f"select source, kind, rules, count(*) from quarantine {where} group by all "
                              "order by 1, 4 desc", params).fetchall()
        t = Table(title="Quarantined rows by rule (kind: row, line = not a record, correction = an invalid "
                        "newer version; the valid one stays in force)")
        for c in ("source", "kind", "rules", "rows"):
            t.add_column(c)
        for s, k, r, n in summary:
            t.add_row(s, k, r, f"{n:,}")
        console.print(t)
        if limit:
            rows = con.execute(f"select file_identity, line, rules, coalesce(raw_values, "
                               f"'(length ' || length || ', sha256 ' || left(sha256, 12) || '…)') "
                               f"from quarantine {where} order by file_identity, line limit ?",
                               [*params, limit]).fetchall()
            t = Table(title=f"First {limit} quarantined rows")
            for c in ("file", "line", "rules", "raw values (personal data removed)"):
                t.add_column(c, overflow="fold")
            for row in rows:
                t.add_row(row[0], str(row[1]), row[2], row[3])
            console.print(t)
        for ident, reason in con.execute("select identity, reason from files where status = 'rejected' "
                                         "order by identity").fetchall():
            console.print(f"[yellow]rejected file[/] {ident}: {reason}")


@app.command()
def releases(
    warehouse: Warehouse = Path("warehouse"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest entries as JSON.")] = False,
) -> None:
    """List published releases, oldest first; * marks the current one."""
    import json

    from flows.publish import load_manifest

    manifest = load_manifest(warehouse)
    if as_json:
        print(json.dumps(manifest, indent=2, ensure_ascii=False))
        return
    if not manifest["releases"]:
        console.print(f"no releases in {warehouse}: run `politikpi refresh`")
    for r in manifest["releases"]:
        mark = "*" if r["release_id"] == manifest["current"] else " "
        audit = r.get("validation_summary", {})
        console.print(f"{mark} {r['release_id']}  data through {r.get('data_through')}  code {r.get('code_version')}  "
                      f"audit {audit.get('checks', '?')} checks, {audit.get('failed', '?')} failed, "
                      f"{len(audit.get('flagged', []))} flagged  sha256 {r['sha256'][:12]}", soft_wrap=True, highlight=False)


@app.command()
def rollback(
    release: Annotated[str, typer.Argument(help="Release id to make current (see `politikpi releases`).")],
    warehouse: Warehouse = Path("warehouse"),
) -> None:
    """Make an earlier release current again (atomic swap of the stable path) and pin it.

    While pinned, `refresh` still ingests and stages new files but publishes nothing (it says so);
    `politikpi unpin` lets the next refresh publish again."""
    from flows.releases import ReleaseError
    from flows.releases import rollback as do_rollback
    from flows.state import StateBusy

    try:
        entry = do_rollback(warehouse, release)
    except ReleaseError as exc:
        fail(str(exc))
    except StateBusy as exc:
        fail(str(exc), EXIT_BUSY)
    console.print(f"[bold green]OK[/]: {warehouse / 'politikpi.duckdb'} is release {entry['release_id']} "
                  f"(data through {entry.get('data_through')}), pinned until `politikpi unpin`", soft_wrap=True)


def require_warehouse(warehouse: Path) -> None:
    if not (warehouse / "manifest.json").is_file() and not (warehouse / "releases").is_dir():
        fail(f"no warehouse at {warehouse} (no manifest.json, no releases/): check --warehouse or "
             "POLITIKPI_WAREHOUSE, or run `politikpi refresh` first")


@app.command()
def verify(warehouse: Warehouse = Path("warehouse")) -> None:
    """Check manifest, release files, their sidecars and the stable path against each other.

    First repairs what an interrupted publish can leave (a stable path behind the manifest, a
    release file that was never listed). Anything else is reported; `politikpi repair` mends
    what can be mended. Exit status 1 when a problem remains."""
    from flows.publish import ManifestError
    from flows.releases import recover, warehouse_lock
    from flows.releases import verify as do_verify
    from flows.state import StateBusy

    require_warehouse(warehouse)
    try:
        with warehouse_lock(warehouse):
            if recover(warehouse):
                console.print("repaired: an interrupted publish (unlisted release file or stale stable path)")
        problems = do_verify(warehouse)
    except StateBusy as exc:
        fail(str(exc), EXIT_BUSY)
    except ManifestError as exc:
        fail(str(exc))
    for problem in problems:
        err.print(f"[red]problem[/]: {problem}", highlight=False)
    if problems:
        fail(f"{len(problems)} problem(s) in {warehouse}; `politikpi repair` mends what can be mended")
    console.print(f"[bold green]OK[/]: every release in {warehouse / 'manifest.json'} matches its checksum "
                  "and the stable path is the current release", soft_wrap=True)


@app.command()
def repair(warehouse: Warehouse = Path("warehouse")) -> None:
    """Rebuild manifest.json from the release files and their sidecars; re-point the stable path.

    Never deletes a release: a release file whose entry was lost is listed again, a changed
    checksum is restored from the release's sidecar, a current or pinned id that is not a release
    is replaced (by the release the stable path holds, else the newest). A release file that itself
    changed after publishing cannot be repaired: it stays listed, never current, and `verify`
    keeps reporting it. Run `politikpi verify` afterwards."""
    from flows.releases import repair as do_repair
    from flows.state import StateBusy

    require_warehouse(warehouse)
    try:
        done = do_repair(warehouse)
    except StateBusy as exc:
        fail(str(exc), EXIT_BUSY)
    for line in done:
        console.print(f"repaired: {line}", soft_wrap=True, highlight=False)
    console.print(f"[bold green]OK[/]: {'nothing to repair' if not done else f'{len(done)} repair(s)'} in {warehouse}",
                  soft_wrap=True)


@app.command()
def unpin(warehouse: Warehouse = Path("warehouse")) -> None:
    """Lift the pin a rollback set: the next refresh publishes again."""
    from flows.releases import unpin as do_unpin
    from flows.state import StateBusy

    require_warehouse(warehouse)
    try:
        pin = do_unpin(warehouse)
    except StateBusy as exc:
        fail(str(exc), EXIT_BUSY)
    if pin is None:
        console.print("no release is pinned; nothing to do")
    else:
        console.print(f"[bold green]OK[/]: release {pin['release_id']} is no longer pinned; the next refresh "
                      "publishes what the state holds", soft_wrap=True)


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="Older release id.")],
    b: Annotated[str, typer.Argument(help="Newer release id.")],
    warehouse: Warehouse = Path("warehouse"),
    limit: Annotated[int, typer.Option(help="Example rows per table.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole diff as JSON.")] = False,
) -> None:
    """Which KPI values changed between two releases, and whether inputs or code changed."""
    import json

    from flows.releases import ReleaseError
    from flows.releases import diff as do_diff

    try:
        result = do_diff(warehouse, a, b, limit)
    except ReleaseError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(result, indent=2, default=str, ensure_ascii=False))
        return
    console.print(f"code changed: {result['code_changed']} ({' -> '.join(result['code_versions'])})")
    for kind in ("inputs_added", "inputs_removed", "inputs_changed"):
        items = result[kind]
        console.print(f"{kind.replace('_', ' ')}: {len(items)}" + (f" ({', '.join(items[:5])}…)" if items else ""))
    t = Table(title=f"KPI rows {a} -> {b}")
    for c in ("table", "added", "removed", "changed"):
        t.add_column(c)
    for table, d in result["tables"].items():
        t.add_row(table, str(d["added"]), str(d["removed"]), str(d["changed"]))
    console.print(t)
    for table, d in result["tables"].items():
        for ex in d["examples"]:
            console.print(f"  {table} {ex['change']} {ex['key']}: {ex['values']}", soft_wrap=True)


@app.command()
def report(
    release: Annotated[str | None, typer.Option(help="Release id (default: the current release).")] = None,
    year: Annotated[int | None, typer.Option(min=1990, max=2100, help="Year to report (default: the latest).")] = None,
    out: Annotated[Path | None, typer.Option(help="HTML file to write (default: warehouse/reports/<release>-<year>.html).")] = None,
    warehouse: Warehouse = Path("warehouse"),
) -> None:
    """Write the district's KPI report (self-contained HTML, Danish labels) for a release."""
    from flows.publish import load_manifest
    from flows.releases import ReleaseError, checked_release
    from flows.report import write_report

    manifest = load_manifest(warehouse)
    try:
        entry = checked_release(warehouse, release or manifest["current"] or "")
    except ReleaseError as exc:
        fail(str(exc) if release else f"no current release in {warehouse}: run `politikpi refresh` first")
    if out is not None and out.suffix.lower() != ".html":
        fail(f"--out must name an .html file, got {out}")
    target = out or warehouse / "reports" / f"{entry['release_id']}-{year or 'latest'}.html"
    try:
        path = write_report(warehouse / entry["file"], target, year)
    except ValueError as exc:
        fail(str(exc))
    console.print(f"[bold green]OK[/]: wrote {path} ({path.stat().st_size / 1024:.0f} KiB)", soft_wrap=True)


@app.command()
def serve(
    landing: Landing = Path("data/landing"),
    state: State = Path("data/state"),
    warehouse: Warehouse = Path("warehouse"),
    cron: Annotated[str, typer.Option(envvar="POLITIKPI_CRON", help="When the nightly refresh runs.")] = "0 2 * * *",
    timezone: Annotated[str, typer.Option(envvar="POLITIKPI_TIMEZONE", help="Time zone of the cron schedule.")] = "Europe/Copenhagen",
    port: Annotated[int, typer.Option(help="Port of the Prefect server started on 127.0.0.1.")] = 4200,
    start_server: Annotated[bool, typer.Option("--start-server/--no-server", help="Start `prefect server start` on 127.0.0.1 (embedded SQLite), or use PREFECT_API_URL.")] = True,
) -> None:
    """Serve the nightly refresh deployment on a real Prefect server (Ctrl-C stops both).

    Starts `prefect server start --host 127.0.0.1` unless --no-server, then serves the `refresh`
    flow as deployment `refresh/nightly` with a cron schedule (default 02:00 Europe/Copenhagen)."""
    from flows.server import ServeError, serve_nightly

    try:
        serve_nightly(landing, state, warehouse, cron=cron, timezone=timezone, port=port,
                      start_server=start_server, say=lambda text: console.print(text, soft_wrap=True))
    except ServeError as exc:
        fail(str(exc))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
