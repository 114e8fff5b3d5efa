"""The `politikpi` command. Every folder is an option with an environment variable and a default."""

from __future__ import annotations

import json
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
console = Console(soft_wrap=not sys.stdout.isatty(),
                  width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 200))
err = Console(stderr=True, soft_wrap=True)  # a one-line reason stays one line

Landing = Annotated[Path, typer.Option(envvar="POLITIKPI_LANDING",
                                       help="Landing folder with reports/, dispatches/, outreach/, ambassadors/.")]
State = Annotated[Path, typer.Option(envvar="POLITIKPI_STATE",
                                     help="State folder: file registry, staged rows, quarantine (never published).")]
Warehouse = Annotated[Path, typer.Option(envvar="POLITIKPI_WAREHOUSE",
                                         help="Warehouse folder: releases/, manifest.json and the stable politikpi.duckdb.")]

District = Annotated[str | None, typer.Option(
    "--district", envvar="POLITIKPI_DISTRICT", metavar="CODE",
    help="Police district (reference/police_districts.csv, e.g. sydsjaelland, koebenhavn): its municipalities, "
         "names and populations. Default sydsjaelland.")]
FleetFile = Annotated[Path | None, typer.Option(
    "--fleet", envvar="POLITIKPI_FLEET", metavar="FILE",
    help="Fleet file (TOML) naming each district's landing, state and warehouse folders and the national "
         "warehouse; a folder given on the command line wins over it.")]

EXIT_OK, EXIT_ERROR, EXIT_DATA_QUALITY, EXIT_BUSY, EXIT_REJECTED = 0, 1, 2, 3, 4


def fail(message: str, code: int = EXIT_ERROR) -> None:
    err.print(f"[bold red]FAILED[/]: {message}", highlight=False)
    raise typer.Exit(code)


def use_district(code: str | None) -> str:
    """Check the district and make it this process's (the rules and the build read POLITIKPI_DISTRICT)."""
    from schemas.reference import UnknownDistrict, check_district

    try:
        code = check_district(code)
    except UnknownDistrict as exc:
        fail(str(exc))
    os.environ["POLITIKPI_DISTRICT"] = code
    return code


def fleet_folders(fleet: Path | None, district: str | None, **given: Path) -> dict[str, Path]:
    """The folders a district run uses (SPEC 8.1 precedence): command line > fleet file > environment
    variable > default. Without a fleet file, the options as typer resolved them."""
    from flows.fleet import FleetError

    if fleet is None:
        return given
    if not district:
        fail(f"--fleet {fleet} needs --district CODE (which of its districts to run)")
    try:
        entry = read_fleet_or_fail(fleet).district(district)
    except FleetError as exc:
        fail(str(exc))
    return {name: value if ctx_source(name) == "COMMANDLINE" else getattr(entry, name) for name, value in given.items()}


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
def releases(
    warehouse: Warehouse = Path("warehouse"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest entries as JSON.")] = False,
) -> None:
    """List published releases, oldest first: data through, how each was built (whole, or patched
    from which release), its audit and checksum; * marks the current one."""

    from flows.release.store import load_manifest

    manifest = load_manifest(warehouse)
    if as_json:
        print(json.dumps(manifest, indent=2, ensure_ascii=False))
        return
    if not manifest["releases"]:
        console.print(f"no releases in {warehouse}: run `politikpi refresh`")
        return
    pin = (manifest.get("pinned") or {}).get("release_id")
    t = Table(title=f"Releases in {warehouse} (* current{', pinned by a rollback until `politikpi unpin`' if pin else ''})")
    t.add_column("")
    t.add_column("release", no_wrap=True, min_width=29)  # whole, to copy into rollback or diff
    for c in ("data through", "built", "audit", "sha256"):
        t.add_column(c, overflow="fold")
    for r in manifest["releases"]:
        mark = ("*" if r["release_id"] == manifest["current"] else "") + (" pinned" if r["release_id"] == pin else "")
        audit, build = r.get("validation_summary", {}), r.get("build") or {}
        n = build.get("changed_files")
        built = (f"patch of {build.get('base')} ({n} changed file{'' if n == 1 else 's'})"
                 if build.get("kind") == "patch" else build.get("kind", "?"))
        if r.get("code_version"):
            built += f", code {r['code_version']}"
        checks = f"{audit.get('checks', '?')} checks, {audit.get('failed', '?')} failed, {len(audit.get('flagged', []))} flagged"
        if audit.get("restatement"):
            checks += f"; restatement accepted: {audit['restatement']['reason']}"
        t.add_row(mark, r["release_id"], str(r.get("data_through")), built, checks, r["sha256"][:12])
    console.print(t)


@app.command()
def rollback(
    release: Annotated[str, typer.Argument(help="Release id to make current (see `politikpi releases`).")],
    warehouse: Warehouse = Path("warehouse"),
) -> None:
    """Make an earlier release current again (atomic swap of the stable path) and pin it.

    While pinned, `refresh` still ingests and stages new files but publishes nothing (it says so);
    `politikpi unpin` lets the next refresh publish again."""
    from flows.release.releases import rollback as do_rollback

    entry = do_rollback(warehouse, release)
    from flows.release.store import stable_path

    console.print(f"[bold green]OK[/]: {stable_path(warehouse)} is release {entry['release_id']} "
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
    from flows.release.releases import recover, warehouse_lock
    from flows.release.releases import verify as do_verify

    require_warehouse(warehouse)
    with warehouse_lock(warehouse):
        if recover(warehouse):
            console.print("repaired: an interrupted publish (unlisted release file or stale stable path)")
    problems = do_verify(warehouse)
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
    from flows.release.releases import repair as do_repair

    require_warehouse(warehouse)
    done = do_repair(warehouse)
    for line in done:
        console.print(f"repaired: {line}", soft_wrap=True, highlight=False)
    console.print(f"[bold green]OK[/]: {'nothing to repair' if not done else f'{len(done)} repair(s)'} in {warehouse}",
                  soft_wrap=True)


@app.command()
def unpin(warehouse: Warehouse = Path("warehouse")) -> None:
    """Lift the pin a rollback set: the next refresh publishes again."""
    from flows.release.releases import unpin as do_unpin

    require_warehouse(warehouse)
    pin = do_unpin(warehouse)
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
    from flows.release.releases import diff as do_diff

    result = do_diff(warehouse, a, b, limit)
    if as_json:
        print(json.dumps(result, indent=2, default=str, ensure_ascii=False))
        return
    if result["a_is_newer"]:
        err.print(f"[yellow]WARNING[/]: {a} is newer than {b}: the changes below read backwards "
                  f"(`politikpi diff {b} {a}` for old -> new)", highlight=False)
    console.print(f"code changed: {result['code_changed']} ({' -> '.join(result['code_versions'])})", highlight=False)
    for kind in ("inputs_added", "inputs_removed", "inputs_changed"):
        items = result[kind]
        console.print(f"{kind.replace('_', ' ')}: {len(items)}" + (f" ({', '.join(items[:5])}{' …' if len(items) > 5 else ''})"
                                                                     if items else ""), highlight=False)
    t = Table(title=f"KPI rows {a} -> {b}")
    for c in ("table", "added", "removed", "changed"):
        t.add_column(c, justify="left" if c == "table" else "right")
    for table, d in result["tables"].items():
        t.add_row(table, f"{d['added']:,}", f"{d['removed']:,}", f"{d['changed']:,}")
    console.print(t)
    names = result["municipalities"]
    restated = result["restated"]
    console.print(f"restated values of closed months (kpi_revisions): {len(restated):,}", highlight=False)
    for r in restated[:limit]:
        key = ", ".join(f"{k} {v if v is not None else 'all'}" + (f" {names[str(v)]}" if str(v) in names and k.endswith("municipality_code") else "")
                        for k, v in json.loads(r["key"]).items())
        why = "inputs" if r["inputs_changed"] else "code" if r["code_changed"] else "?"
        console.print(f"  {r['table_name']}.{r['column_name']} {key}: {_cell(r['old_value'])} -> {_cell(r['new_value'])} "
                      f"(release {r['release_id']}, {why} changed)", soft_wrap=True, highlight=False)
    for table, d in result["tables"].items():
        for ex in d["examples"]:
            key = ", ".join(f"{k} {v if v is not None else d['null_means']}" + (f" {names[v]}" if v in names and k.endswith("municipality_code") else "")
                            for k, v in ex["key"].items())
            values = "; ".join(f"{col} {_cell(old)} -> {_cell(new)}" for col, (old, new) in ex["values"].items())
            console.print(f"  {table} {ex['change']}: {key}: {values}", soft_wrap=True, highlight=False)


def _cell(text: str | float | None) -> str:
    """A KPI value as people read it: (none), 1,763, 12.09; dates and words as they are."""
    if text is None:
        return "(none)"
    if isinstance(text, float):
        return f"{text:,.0f}" if text.is_integer() else f"{text:,.2f}"
    try:
        return f"{int(text):,}"
    except ValueError:
        pass
    try:
        return f"{float(text):,.2f}"
    except ValueError:
        return text


def ctx_source(name: str) -> str:
    """Where the running command's option came from: COMMANDLINE, ENVIRONMENT or DEFAULT."""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    source = ctx.get_parameter_source(name) if ctx else None
    return source.name if source else "DEFAULT"


def read_fleet_or_fail(path: Path):
    from flows.fleet import FleetError, read_fleet

    try:
        return read_fleet(path)
    except FleetError as exc:
        fail(str(exc))


@app.command()
def national(
    fleet: Annotated[Path, typer.Option("--fleet", envvar="POLITIKPI_FLEET", metavar="FILE", help="Fleet file (TOML) naming the districts' folders and the national warehouse.")],
    quiet: Annotated[float | None, typer.Option("--quiet", metavar="SECONDS", help="Wait until no district has published for this long before reading their releases (default 0: at once; the national deployment's trigger waits the fleet file's quiet_seconds, else 60, before it starts a run).")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs and tracebacks on the terminal.")] = False,
) -> None:
    """Build and publish the national release from the fleet's district releases.

    Each fleet district's current release is opened by id and checked against its checksum; every
    district of the reference is listed in national_inputs with its status (current, stale, failed,
    missing, not_in_fleet). The same sql/ models run over the districts' facts; the national audit
    checks every municipality row against its district's release before politikpi_national.duckdb
    is swapped. Nothing new (the same district releases and code) publishes nothing.
    Exit status: 0 published or unchanged; 2 the audit failed (the current national release stays); 1 other."""
    if not verbose:
        for name in ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL",
                     "PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL"):
            os.environ.setdefault(name, "CRITICAL")
    parsed = read_fleet_or_fail(fleet)
    with console.status("building the national release (Prefect flow)…"):
        from flows.country.build import NoDistricts
        from flows.country.release import NationalRefused
        from flows.national import run_by_hand
        from flows.release.audit import AuditFailed

        started = time.monotonic()
        try:
            outcome = run_by_hand(str(parsed.path), quiet)
        except AuditFailed as exc:
            fail(str(exc), EXIT_DATA_QUALITY)
        except (NoDistricts, NationalRefused) as exc:
            fail(str(exc))
    t = Table(title=f"National inputs ({parsed.path.name})")
    t.add_column("district")
    t.add_column("status")
    for code, status in sorted(outcome["inputs"].items()):
        t.add_row(code, status)
    console.print(t)
    entry = outcome["release"]
    what = {"published": "published national release", "unchanged": "nothing new: national release",
            "pinned": "pinned by a rollback (`politikpi unpin --warehouse ...` to publish again): national release"
            }[outcome["status"]]
    if outcome["status"] != "published":
        console.print("(the statuses above are this run's reading; the current national release lists its own)")
    console.print(f"[bold green]OK[/]: {what} {entry['release_id']} (data through {entry.get('data_through')}) "
                  f"in {time.monotonic() - started:.1f} s", soft_wrap=True)
    exit_now(0)


@app.command()
def deploy(
    fleet: Annotated[Path, typer.Option("--fleet", envvar="POLITIKPI_FLEET", metavar="FILE", help="Fleet file (TOML) naming the districts' folders, their cron schedules and the national warehouse.")],
    pool: Annotated[str, typer.Option(envvar="POLITIKPI_WORK_POOL", help="Prefect work pool (type process; created if missing). Start workers with `prefect worker start --pool POOL`.")] = "politikpi",
) -> None:
    """Register the fleet on the Prefect server (PREFECT_API_URL): a deployment per district and a national deployment.

    Creates (idempotently) the process work pool, the concurrency limits politikpi-district-<code> and
    politikpi-national (1 slot each), the automation that marks runs whose worker died Crashed, the
    deployments refresh/district-<code> (the fleet's cron and timezone) and national/national, whose
    trigger runs it once the districts have been quiet for the fleet's quiet_seconds (default 60)
    after a publish. Run it again after editing the fleet file. With basic auth on the server, set
    PREFECT_API_AUTH_STRING (user:password) here and on every worker."""
    from flows.deploy import DeployError, deploy_fleet

    parsed = read_fleet_or_fail(fleet)
    try:
        names = deploy_fleet(parsed, pool, say=lambda text: console.print(text, soft_wrap=True, highlight=False))
    except DeployError as exc:
        fail(str(exc))
    except Exception as exc:
        if "401" not in str(exc):
            raise
        fail(f"the Prefect server at {os.environ.get('PREFECT_API_URL')} refused the request (401 Unauthorized): "
             "set PREFECT_API_AUTH_STRING=user:password, the server's PREFECT_SERVER_API_AUTH_STRING")
    console.print(f"[bold green]OK[/]: {len(names)} deployments on work pool {pool!r}: {', '.join(names)}; "
                  f"start workers with `prefect worker start --pool {pool}` in {Path(__file__).resolve().parent.parent}",
                  soft_wrap=True, highlight=False)


@app.command()
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
    from flows.release.releases import ReleaseError, checked_release
    from flows.release.report import write_report
    from flows.release.store import load_manifest

    if national and fleet is not None and ctx_source("warehouse") != "COMMANDLINE":
        warehouse = read_fleet_or_fail(fleet).national_warehouse
    from flows.release.store import is_national

    if national and not is_national(warehouse):
        fail(f"{warehouse} is not a national warehouse: give --fleet FILE (its national_warehouse) or --warehouse")
    manifest = load_manifest(warehouse)
    try:
        entry = checked_release(warehouse, release or manifest["current"] or "")
    except ReleaseError as exc:
        fail(str(exc) if release else f"no current release in {warehouse}: run `politikpi refresh` first")
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


@app.command()
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
    from flows.release.releases import ReleaseError, checked_release
    from flows.release.store import load_manifest

    if format not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    manifest = load_manifest(warehouse)
    try:
        entry = checked_release(warehouse, release or manifest["current"] or "")
    except ReleaseError as exc:
        fail(str(exc) if release else f"no current release in {warehouse}: run `politikpi refresh` first")
    if format == "xlsx" and out is not None and out.suffix.lower() != ".xlsx":
        fail(f"--out must name an .xlsx file for --format xlsx, got {out}")
    target = out or warehouse / "exports" / f"{entry['release_id']}.{format}"
    source = warehouse / (entry.get("kpi_file") or entry["file"])
    with console.status(f"exporting {entry['release_id']}") as status:
        written = do_export(source, target, format, progress=lambda t: status.update(f"exported {t}"))
    console.print(f"[bold green]OK[/]: wrote {target}: {len(written)} tables, "
                  f"{sum(n for _, n in written):,} rows", soft_wrap=True)


@app.command()
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


def main() -> None:
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    try:
        code = app(standalone_mode=False)  # usage errors come here instead of exiting 2
        sys.exit(code if isinstance(code, int) else 0)
    except NoArgsIsHelpError as exc:  # `politikpi` alone: the help, as before
        exc.show()
        sys.exit(0)
    except UsageError as exc:  # exit 2 is a data-quality failure here: a mistyped command is 1, in one line
        where = f"politikpi {' '.join(exc.ctx.command_path.split()[1:])}".strip() if exc.ctx else "politikpi"
        err.print(f"[bold red]FAILED[/]: {exc.format_message()} (see `{where} --help`)", highlight=False)
        sys.exit(EXIT_ERROR)
    except ClickException as exc:
        err.print(f"[bold red]FAILED[/]: {exc.format_message()}", highlight=False)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # one line for the user; the traceback with POLITIKPI_DEBUG=1
        from flows.ingest.state import StateBusy
        from flows.release.releases import ReleaseError
        from flows.release.store import ManifestError, PublishRefused

        if os.environ.get("POLITIKPI_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        if isinstance(exc, (StateBusy, ManifestError, PublishRefused, ReleaseError)):  # they say what to do
            err.print(f"[bold red]FAILED[/]: {first}", highlight=False)
            sys.exit(EXIT_BUSY if isinstance(exc, StateBusy) else EXIT_ERROR)
        err.print(f"[bold red]FAILED[/]: {type(exc).__name__}: {first} (set POLITIKPI_DEBUG=1 for the traceback)",
                  highlight=False)
        sys.exit(EXIT_ERROR)
