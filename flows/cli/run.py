"""Running the pipeline: write a sample landing folder, refresh once, serve the nightly schedule."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import (
    EXIT_BUSY,
    EXIT_DATA_QUALITY,
    EXIT_REJECTED,
    District,
    FleetFile,
    Landing,
    State,
    Warehouse,
    console,
    err,
    exit_now,
    fail,
    fleet_folders,
    use_district,
)


def sample(
    out: Annotated[Path, typer.Option(help="Folder to write the landing files into.")] = Path("data/landing"),
    year: Annotated[str, typer.Option("--year", "--years", help="A year (2019) or a range (2015-2019).")] = "2019",
    scale: Annotated[int, typer.Option(min=1, max=1000, help="Multiply every volume by N (55 = ~11M reports).")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 2019,
    days: Annotated[int | None, typer.Option(min=1, max=366, help="Only the first N days of each year (a small sample for tests).")] = None,
    late_delivery: Annotated[str | None, typer.Option(metavar="YYYY-MM", help="Instead: add to the landing folder --out a late re-delivery that restates the response times of a closed month in Lolland (for the revisions log: refresh, add it, refresh again).")] = None,
    district: District = None,
    country: Annotated[bool, typer.Option("--country", help="All 12 districts: --out DIR gets DIR/<district>/landing/ for each and a fleet file DIR/politikpi.toml naming them.")] = False,
) -> None:
    """Write a deterministic sample landing folder calibrated to the district's 2019 deck.

    Several years (--years 2015-2019) show a trend: response times fall year by year toward 2019,
    the spread shrinks, Sorø improves and Faxe does not. --late-delivery adds a later correction.
    --district CODE writes another district's folder (volumes in proportion to its population, its
    own journal prefix and incident ids); --country writes all 12 and a fleet file."""
    from sample import SampleSpec, parse_years, write_late_delivery, write_sample

    if late_delivery:
        if not (out / "dispatches").is_dir():
            fail(f"--late-delivery adds to a landing folder: {out / 'dispatches'} does not exist (write the sample first)")
        try:
            late = write_late_delivery(out, month=late_delivery)
        except ValueError as exc:
            fail(str(exc))
        console.print(f"OK: wrote {late.path}: {late.changed} of {late.responses} responses in Lolland {late.month} "
                      f"{late.seconds_earlier} s shorter (mean {late.mean_before_min:.2f} -> {late.mean_after_min:.2f} min)")
        return
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
    if country:
        from flows.fleet import write_fleet
        from schemas.reference import load_districts

        codes = sorted(load_districts() or {})
        if not codes:
            fail("--country needs reference/police_districts.csv (the reference folder lists one district)")
        if out.exists() and any(p.name not in (*codes, "politikpi.toml") and not p.name.startswith(".")
                                for p in out.iterdir()):
            fail(f"{out} holds other files than a country sample's; choose an empty folder")
        with console.status("writing the country's sample…") as status:
            for n, code in enumerate(codes, start=1):
                def progress(source, day, code=code, n=n):
                    status.update(f"district {n}/{len(codes)} {code}: writing {source} {day}")
                write_sample(out / code / "landing", SampleSpec(years=years, scale=scale, seed=seed, days=days,
                                                                district=code), progress)
        fleet = write_fleet(out / "politikpi.toml", codes)
        console.print(f"OK: wrote {len(codes)} districts' landing folders under {out} and the fleet file {fleet} "
                      f"in {time.monotonic() - started:.1f} s")
        return
    code = use_district(district)
    with console.status("writing sample…") as status:
        def progress(source, day):
            status.update(f"writing {source} {day}")
        written = write_sample(out, SampleSpec(years=years, scale=scale, seed=seed, days=days, district=code), progress)
    console.print(f"OK: wrote {sum(written.values())} files to {out} for district {code} "
                  f"({', '.join(f'{k} {v}' for k, v in written.items())}) in {time.monotonic() - started:.1f} s")


def refresh(
    landing: Landing = Path("data/landing"),
    state: State = Path("data/state"),
    warehouse: Warehouse = Path("warehouse"),
    full_refresh: Annotated[bool, typer.Option("--full-refresh", help="Rebuild the state from the archive of every file ever ingested.")] = False,
    reingest: Annotated[str | None, typer.Option(help="Re-validate archived files whose identity matches a glob, e.g. 'reports/2019-03-*' (after a rule change).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's task logs and tracebacks on the terminal.")] = False,
    accept_restatement: Annotated[str | None, typer.Option(metavar="REASON", help="Publish even if closed months moved beyond POLITIKPI_CHANGE_HARD_SHARE (a real restatement); the reason and the changes are logged in the release and <state>/restatements.jsonl.")] = None,
    fail_on_rejected: Annotated[bool, typer.Option("--fail-on-rejected", envvar="POLITIKPI_FAIL_ON_REJECTED", help="Exit 4 when this run rejected a file (the release is still published): for cron and other automation.")] = False,
    district: District = None,
    fleet: FleetFile = None,
) -> None:
    """Run the refresh flow once: extract, validate, transform, audit, publish.

    Exit status: 0 done (published, nothing new, or pinned by a rollback); 2 data-quality failure
    (threshold or audit; the current release stays current); 3 another refresh holds the state;
    4 with --fail-on-rejected: files were rejected this run (what could be read is published);
    1 any other error. A rejected file is also a Prefect event, politikpi.file.rejected.
    With --fleet FILE --district CODE the district's folders come from the fleet file."""
    folders = fleet_folders(fleet, district, landing=landing, state=state, warehouse=warehouse)
    landing, state, warehouse = folders["landing"], folders["state"], folders["warehouse"]
    district = use_district(district)
    if landing.exists() and not landing.is_dir():
        fail(f"--landing {landing} is a file, not a folder: give the folder that holds reports/, dispatches/, "
             "outreach/ and ambassadors/")
    if not landing.is_dir():
        fail(f"landing folder {landing} does not exist (run `politikpi sample --out {landing}`)")
    if not verbose:  # task logs still reach the Prefect server; the terminal gets one verdict line
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", "CRITICAL")
    if accept_restatement is not None and not accept_restatement.strip():
        fail("--accept-restatement needs a reason (it is logged with the release)")
    if reingest is not None and not _archived_match(state, reingest):
        fail(f"--reingest {reingest!r} matches no archived file in {state} (file identities look like "
             "reports/2019-03-05.csv; `politikpi releases --json` lists a release's input files)")
    with console.status("refreshing (Prefect flow)…"):
        import duckdb

        from flows.district import WrongDistrict
        from flows.ingest.state import StateBusy
        from flows.refresh import ThresholdExceeded, run_by_hand
        from flows.release.audit import AuditFailed
        from flows.release.store import ManifestError, PublishRefused

        started = time.monotonic()
        try:
            result = run_by_hand(str(landing), str(state), str(warehouse), full_refresh, reingest, accept_restatement,
                                 district)
        except ThresholdExceeded as exc:
            fail(str(exc), EXIT_DATA_QUALITY)
        except AuditFailed as exc:
            fail(f"{exc} (Data Docs: {exc.result.docs})", EXIT_DATA_QUALITY)
        except StateBusy as exc:
            fail(str(exc), EXIT_BUSY)
        except (ManifestError, PublishRefused, WrongDistrict) as exc:
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
    from flows.release.summary import verdict

    print_run_summary(result)
    console.print(f"[bold green]OK[/]: {verdict(result)} in {time.monotonic() - started:.1f} s", soft_wrap=True)
    rejected = result.get("rejected_this_run") or []
    if rejected:
        err.print(f"[yellow]WARNING[/]: {len(rejected)} file(s) rejected this run: "
                  f"{', '.join(r['file'] for r in rejected[:5])}{' …' if len(rejected) > 5 else ''}; "
                  "see `politikpi quarantine` and tell the data owner", highlight=False)
    exit_now(EXIT_REJECTED if rejected and fail_on_rejected else 0)


def _archived_match(state: Path, pattern: str) -> bool:
    """Whether a --reingest glob names any ingested file (True when the state is busy: the run says so)."""
    import fnmatch

    import duckdb

    from flows.ingest.state import db_path

    if not db_path(state).exists():
        return False
    try:
        with duckdb.connect(str(db_path(state)), read_only=True) as con:
            held = [r[0] for r in con.execute("select identity from files where status = 'ingested'").fetchall()]
    except duckdb.Error:
        return True
    return any(fnmatch.fnmatch(identity, pattern) for identity in held)


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


def serve(
    landing: Landing = Path("data/landing"),
    state: State = Path("data/state"),
    warehouse: Warehouse = Path("warehouse"),
    cron: Annotated[str, typer.Option(envvar="POLITIKPI_CRON", help="When the nightly refresh runs.")] = "0 2 * * *",
    timezone: Annotated[str, typer.Option(envvar="POLITIKPI_TIMEZONE", help="Time zone of the cron schedule.")] = "Europe/Copenhagen",
    port: Annotated[int, typer.Option(help="Port of the Prefect server (API and UI) started on 127.0.0.1.")] = 4200,
    start_server: Annotated[bool, typer.Option("--start-server/--no-server", help="Start `prefect server start` on 127.0.0.1 (embedded SQLite), or use PREFECT_API_URL.")] = True,
    district: District = None,
) -> None:
    """Serve the nightly refresh deployment on a real Prefect server with its UI (Ctrl-C or SIGTERM stops both).

    Starts `prefect server start --host 127.0.0.1` unless --no-server, then serves the `refresh`
    flow as deployment `refresh/nightly` with a cron schedule (default 02:00 Europe/Copenhagen).
    The server's output goes to <state>/logs/prefect-server-<port>.log; a busy port or a failed
    start is one FAILED line naming it."""
    from flows.serve import ServeError, serve_nightly

    try:
        serve_nightly(landing, state, warehouse, cron=cron, timezone=timezone, port=port, district=use_district(district),
                      start_server=start_server, say=lambda text: console.print(text, soft_wrap=True))
    except ServeError as exc:
        fail(str(exc))
