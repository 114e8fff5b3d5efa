"""`politikpi deploy --fleet FILE` (SPEC 8.3): on one Prefect server and one `process` work pool, a
deployment per fleet district (`refresh/district-<code>`, its cron), the national deployment
(`national/national`) whose trigger waits for the districts' quiet period, the concurrency limits,
and the automation that marks runs whose worker died Crashed. Idempotent: run it again after
editing the fleet file. Workers: `prefect worker start --pool <pool>` on each machine."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
from pathlib import Path

from flows.concurrency import NATIONAL_LIMIT, district_limit, ensure_limits
from flows.fleet import Fleet

REPO = Path(__file__).resolve().parent.parent
# Deployment runs send heartbeats; a run silent for HEARTBEAT_GRACE is marked Crashed (zombie automation).
HEARTBEAT_SECONDS = int(os.environ.get("POLITIKPI_HEARTBEAT_SECONDS", 30))  # Prefect accepts 30 s or more
HEARTBEAT_GRACE = int(os.environ.get("POLITIKPI_HEARTBEAT_GRACE_SECONDS", 75))
ZOMBIE_AUTOMATION = "politikpi: crash flow runs that stopped sending heartbeats"
PUBLISHED = "politikpi.release.published"


class DeployError(RuntimeError):
    """Deploying cannot go on; the message says why and what to do."""


def national_trigger(fleet: Fleet, quiet: float):
    """Trailing debounce: a publish starts a window of `quiet` seconds; each further publish inside it
    restarts the window (Prefect's proactive trigger whose `after` and `expect` are the same event);
    when a window passes with no publish, the national deployment runs once."""
    from prefect.events.schemas.automations import Posture
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    return DeploymentEventTrigger(
        name="politikpi: national release after the districts publish",
        description=f"Runs the national build {quiet:.0f} s after the last district publish (SPEC 8.3).",
        posture=Posture.Proactive, after={PUBLISHED}, expect={PUBLISHED}, threshold=1,
        within=dt.timedelta(seconds=max(quiet, 10)), match={"prefect.resource.id": "politikpi.district.*"},
        # one window for all districts, opened by a publish only: with no for_each at all, Prefect keeps
        # a window open from the start and fires every 2 x quiet with no event (seen on 3.9.1)
        for_each={"politikpi.fleet-window"},
        parameters={"fleet": str(fleet.path), "quiet_seconds": 0})


def zombie_automation():
    """Prefect's recipe for runs whose process vanished (SIGKILL, a lost machine): after a heartbeat,
    expect another heartbeat or a final state within the grace period, else set the run Crashed."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture

    return Automation(
        name=ZOMBIE_AUTOMATION,
        description="A flow run with no heartbeat for the grace period is Crashed (its worker died).",
        trigger=EventTrigger(
            posture=Posture.Proactive, after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            for_each={"prefect.resource.id"}, match={"prefect.resource.id": "prefect.flow-run.*"},
            threshold=1, within=dt.timedelta(seconds=HEARTBEAT_GRACE)),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {HEARTBEAT_GRACE} s: the worker or machine stopped")],
    )


def ensure_pool(pool: str) -> bool:
    """Create the `process` work pool if it does not exist; returns whether it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            return True
    if found.type != "process":
        raise DeployError(f"work pool {pool!r} exists with type {found.type!r}; politikpi needs a 'process' pool "
                          "(choose another --pool)")
    return False


def ensure_zombie_automation() -> bool:
    """The zombie-run automation, once per server; returns whether it was created."""
    from prefect.automations import Automation

    wanted = zombie_automation()
    try:
        found = Automation.read(name=ZOMBIE_AUTOMATION)
    except ValueError:  # "Automation with name ... not found"
        wanted.create()
        return True
    if found.trigger.within != wanted.trigger.within:  # POLITIKPI_HEARTBEAT_GRACE_SECONDS changed
        found.delete()
        wanted.create()
        return True
    return False


def deploy_fleet(fleet: Fleet, pool: str = "politikpi", say=print) -> list[str]:
    """Register every deployment of the fleet; returns their names."""
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise DeployError("deploy needs a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api) "
                          "and, where the server has auth, PREFECT_API_AUTH_STRING")
    if ensure_pool(pool):
        say(f"created work pool {pool!r} (type process)")
    created = ensure_limits([district_limit(code) for code in fleet.districts] + [NATIONAL_LIMIT])
    if created:
        say(f"created concurrency limits {', '.join(created)} (1 slot each)")
    if ensure_zombie_automation():
        say(f"created automation {ZOMBIE_AUTOMATION!r} ({HEARTBEAT_GRACE} s)")
    env = {"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS), "PYTHONUNBUFFERED": "1"}}
    quiet = contextlib.redirect_stdout(io.StringIO())  # Prefect prints a table per deployment
    with quiet:
        names = _deploy(fleet, pool, env)
    return names


def _deploy(fleet: Fleet, pool: str, env: dict) -> list[str]:
    from prefect import flow
    from prefect.schedules import Cron

    names = []
    refresh_flow = flow.from_source(source=str(REPO), entrypoint="flows/refresh.py:refresh")
    for code, d in sorted(fleet.districts.items()):
        refresh_flow.deploy(
            name=f"district-{code}", work_pool_name=pool, build=False, push=False, print_next_steps=False,
            parameters={"landing": str(d.landing), "state_dir": str(d.state), "warehouse": str(d.warehouse),
                        "district": code},
            schedules=[Cron(d.cron, timezone=d.timezone)], job_variables=env, tags=["politikpi", code],
            description=f"politikpi refresh of district {code} ({d.cron}, {d.timezone})", ignore_warnings=True)
        names.append(f"refresh/district-{code}")
    national_flow = flow.from_source(source=str(REPO), entrypoint="flows/national.py:national")
    national_flow.deploy(
        name="national", work_pool_name=pool, build=False, push=False, print_next_steps=False,
        parameters={"fleet": str(fleet.path)}, triggers=[national_trigger(fleet, fleet.quiet_seconds)],
        job_variables=env, tags=["politikpi", "national"], ignore_warnings=True,
        description=f"politikpi national release, {fleet.quiet_seconds:.0f} s after the last district publish")
    names.append("national/national")
    return names
