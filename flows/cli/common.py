"""What every command shares: the consoles, the folder options (each with an environment variable
and a default), the exit statuses and the one-line FAILED message."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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


def require_warehouse(warehouse: Path) -> None:
    if not (warehouse / "manifest.json").is_file() and not (warehouse / "releases").is_dir():
        fail(f"no warehouse at {warehouse} (no manifest.json, no releases/): check --warehouse or "
             "POLITIKPI_WAREHOUSE, or run `politikpi refresh` first")


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
