"""The country: the national release from the fleet's districts, and the fleet's deployments."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import (
    EXIT_DATA_QUALITY,
    console,
    exit_now,
    fail,
    read_fleet_or_fail,
)


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
                  f"start workers with `prefect worker start --pool {pool}` in {Path(__file__).resolve().parents[2]}",
                  soft_wrap=True, highlight=False)
