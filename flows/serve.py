"""`politikpi serve`: the refresh flow served as deployment `refresh/nightly` on a schedule, on a
Prefect server started here (flows/server.py) or the one PREFECT_API_URL names. With
flows/refresh.py, the only modules that use Prefect's API."""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path

from flows.server import ServeError, running_server, server_log


def _flush_prefect_clients(timeout: float = 5) -> None:
    """Send Prefect's queued events and logs while our server still runs (not at exit, to a stopped one)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (EventsWorker, APILogWorker):
        with suppress(Exception):
            worker.drain_all(timeout=timeout)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP): stop like Ctrl-C does."""


@contextmanager
def _stop_on_signals():
    """SIGINT and SIGTERM stop `serve` cleanly, also in a background job (where SIGINT starts ignored).

    SIGINT gets Python's own handler back (asyncio and Prefect's runner then shut down gracefully);
    SIGTERM and an unignored SIGHUP raise `_Terminated` until Prefect's runner installs its own
    graceful SIGTERM handler. Every way out goes through the server's `finally`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    def terminated(signum, frame):
        raise _Terminated(signal.Signals(signum).name)

    left = threading.Event()  # set once serve has left this block: no signal is sent again after that

    def send_again(signum: int) -> None:
        if not left.is_set():
            os.kill(os.getpid(), signum)

    def unraisable(info) -> None:
        """A signal's exception raised while Python runs a weakref callback or a __del__ is dropped
        ("Exception ignored in ..."), and serve would go on: deliver the signal again, from a timer
        so that it lands outside that callback (SIGTERM, SIGHUP, or SIGINT's KeyboardInterrupt)."""
        exc = info.exc_value
        if isinstance(exc, KeyboardInterrupt):
            signum = getattr(signal, exc.args[0]) if isinstance(exc, _Terminated) else signal.SIGINT
            timer = threading.Timer(0.1, send_again, (signum,))
            timer.daemon = True
            timer.start()
        else:
            hook_before(info)

    names = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    before = {name: signal.getsignal(name) for name in names}
    hook_before, sys.unraisablehook = sys.unraisablehook, unraisable
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminated)
    if hasattr(signal, "SIGHUP") and before[signal.SIGHUP] == signal.SIG_DFL:
        signal.signal(signal.SIGHUP, terminated)
    try:
        yield
    finally:
        left.set()
        for name, handler in before.items():
            signal.signal(name, handler if handler is not None else signal.SIG_DFL)
        sys.unraisablehook = hook_before


def check_schedule(landing: Path, cron: str, timezone: str) -> None:
    """What the nightly run needs, checked now rather than at 02:00."""
    import warnings
    import zoneinfo

    with warnings.catch_warnings():  # Prefect warns at import about its home; the server's start says it
        warnings.simplefilter("ignore")
        from prefect.client.schemas.schedules import CronSchedule

    if not landing.is_dir():
        raise ServeError(f"--landing {landing} is not a folder: the nightly refresh reads it (create it, or "
                         "`politikpi sample --out` it)")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ServeError(f"--timezone {timezone!r} is not a time zone (like Europe/Copenhagen)") from None
    try:
        CronSchedule(cron=cron, timezone=timezone)
    except ValueError:  # pydantic's ValidationError is one
        raise ServeError(f"--cron {cron!r} is not a cron expression (like '0 2 * * *': minute hour day month "
                         "weekday)") from None


def serve_nightly(landing: Path, state: Path, warehouse: Path, cron: str, timezone: str, port: int,
                  start_server: bool, say=print, district: str = "sydsjaelland") -> None:
    """Serve the refresh flow as deployment `refresh/nightly` (on a server started here, or PREFECT_API_URL).

    Returns when stopped by SIGINT or SIGTERM, after stopping the server it started."""
    check_schedule(landing, cron, timezone)
    with _stop_on_signals():
        try:
            log = server_log(state, port)
            with running_server(port, log=log) if start_server else nullcontext(None) as server:
                from prefect.schedules import Cron
                from prefect.settings import PREFECT_API_URL, temporary_settings

                from flows.refresh import refresh as refresh_flow

                if server:  # settings too: Prefect may have read the environment before this point
                    os.environ["PREFECT_API_URL"] = server.api_url  # the flow runs' processes inherit it
                    where = (f"the Prefect server at {server.api_url} (UI {server.ui_url}, pid {server.pid}, "
                             f"log {server.log})")
                else:
                    from prefect.settings import get_current_settings

                    where = get_current_settings().api.url
                    if not where:  # Prefect would serve on a temporary server that never schedules anything
                        raise ServeError("--no-server needs a running Prefect server: set PREFECT_API_URL "
                                         "(e.g. http://127.0.0.1:4200/api), or let serve start one")
                say(f"serving refresh/nightly ({cron}, {timezone}) on {where}; Ctrl-C or SIGTERM stops")
                with temporary_settings({PREFECT_API_URL: server.api_url}) if server else nullcontext():
                    try:
                        refresh_flow.serve(
                            name="nightly", schedules=[Cron(cron, timezone=timezone)], global_limit=1,
                            parameters={"landing": str(landing.resolve()), "state_dir": str(state.resolve()),
                                        "warehouse": str(warehouse.resolve()), "district": district},
                            description="Nightly politikpi refresh", print_starting_message=False)
                    finally:
                        if server:
                            _flush_prefect_clients()
        except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM before Prefect's runner took it over
            say(f"stopped ({exc.args[0] if exc.args else 'SIGINT'})")
            return
        except SystemExit as exc:  # SIGTERM while Prefect's runner starts: its handler calls sys.exit(0)
            if exc.code not in (0, None):
                raise
            say("stopped (SIGTERM)")
            return
    say("stopped")
