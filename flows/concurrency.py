"""Never two runs of one district (or two national builds) at once, across workers and runs by hand:
Prefect global concurrency limits of one slot (SPEC 8.3), `politikpi-district-<code>` and
`politikpi-national`. They need a Prefect server (PREFECT_API_URL); a run on Prefect's temporary
server has nobody to share the limit with, and the state lock stays as the last line either way."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

NATIONAL_LIMIT = "politikpi-national"
# A slot is a lease the holder renews; a holder killed with SIGKILL frees it when the lease runs out.
LEASE_SECONDS = float(os.environ.get("POLITIKPI_SLOT_LEASE_SECONDS", 60))
WAIT_SECONDS = float(os.environ.get("POLITIKPI_SLOT_WAIT_SECONDS", 6 * 3600))


def district_limit(code: str) -> str:
    return f"politikpi-district-{code}"


def server_configured() -> bool:
    """A Prefect server to share the limits on, and the limits not switched off (POLITIKPI_CONCURRENCY_LIMITS=off:
    the test suite, whose Prefect test servers never reclaim the slot of a killed run; the state lock still
    refuses a second run of one state)."""
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url) and os.environ.get("POLITIKPI_CONCURRENCY_LIMITS", "on") != "off"


def ensure_limits(names: list[str]) -> list[str]:
    """Create the one-slot limits that do not exist yet (idempotent); returns those created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    created = []
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                try:
                    client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
                    created.append(name)
                except ObjectAlreadyExists:  # another runner created it in between
                    pass
    return created


@contextmanager
def slot(name: str, wait: float | None = None) -> Iterator[None]:
    """Hold the limit's one slot for the block, where a server is configured: waiting for it up to
    `wait` seconds (default POLITIKPI_SLOT_WAIT_SECONDS), then StateBusy (exit 3, as the state lock)."""
    if not server_configured():
        yield
        return
    from prefect.concurrency.sync import concurrency

    from flows.ingest.state import StateBusy

    ensure_limits([name])
    with ExitStack() as stack:
        try:
            stack.enter_context(concurrency(name, occupy=1, timeout_seconds=WAIT_SECONDS if wait is None else wait,
                                            lease_duration=LEASE_SECONDS, strict=True))
        except TimeoutError:
            raise StateBusy(f"another run holds Prefect's concurrency limit {name} (one run at a time); wait "
                            "for it to finish") from None
        yield


def district_slot(code: str, wait: float | None = None):
    return slot(district_limit(code), wait)


def national_slot(wait: float | None = None):
    return slot(NATIONAL_LIMIT, wait)
