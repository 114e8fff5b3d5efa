"""The `politikpi` command: one typer app, its commands registered below in the order `--help`
lists them; each command group lives in a module of its own. Every folder is an option with an
environment variable and a default (flows/cli/common.py)."""

from __future__ import annotations

import os
import sys

import typer

from flows.cli import country, docs, results, run, warehouse
from flows.cli.common import EXIT_BUSY, EXIT_ERROR, err

app = typer.Typer(
    help="politikpi — raw police exports in, an audited, versioned DuckDB KPI warehouse out.\n\n"
         "Quick start: `politikpi sample --year 2019 --out data/landing`, then `politikpi refresh`, "
         "then `politikpi overview`.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
)

for command in (run.sample, run.refresh, results.overview, results.quarantine, warehouse.releases, warehouse.rollback,
                warehouse.verify, warehouse.repair, warehouse.unpin, warehouse.diff, country.national, country.deploy,
                results.report, results.export, run.serve, docs.docs):
    app.command()(command)


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
