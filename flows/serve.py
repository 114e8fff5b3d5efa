"""`politikpi serve`: the refresh flow served as deployment `refresh/nightly` on a schedule, on a
Prefect server started here (flows/server.py) or the one PREFECT_API_URL names. With
flows/refresh.py, the only modules that use Prefect's API."""

from __future__ import annotations

import asyncio
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
    """A second SIGINT/SIGTERM/SIGHUP (or the first, when serve checks for it): stop like Ctrl-C does."""


class _StopRequest:
    """The first stopping signal, kept until serve can act on it where it is safe to.

    A signal handler that raises lands wherever the main thread is: inside pydantic building a
    validator it came out as `SchemaError` (serve failed with exit code 1), inside a weakref callback
    Python drops it. So the first SIGINT/SIGTERM/SIGHUP only records itself; serve checks `stop_now()`
    between its steps (the server's start, the deployment's registration) and, once Prefect's runner
    has started, asks it to stop gracefully from its own event loop. A second signal raises at once."""

    def __init__(self):
        self.name: str | None = None  # the first stopping signal's name, e.g. 'SIGTERM'
        self.runner = None  # Prefect's runner, once serve starts it
        self.loop = None  # the runner's event loop, once it runs
        self.asked = False  # the runner was asked to stop
        self.stopping = None  # its astop() task

    def signalled(self, signum: int) -> None:
        """The signal handler's part (main thread): record the first, raise on the second."""
        name = signal.Signals(signum).name
        if self.name is not None:
            raise _Terminated(name)
        self.name = name
        if self.loop is not None:  # the runner's loop acts on it (not in this handler: it may interrupt the loop)
            with suppress(RuntimeError):  # its loop closed: the runner has stopped already
                self.loop.call_soon_threadsafe(self.hand_over)

    def stop_now(self) -> None:
        """Raise `_Terminated` when a stopping signal came (a safe point: nothing half done)."""
        if self.name is not None:
            raise _Terminated(self.name)

    def hand_over(self) -> None:
        """In the runner's loop: ask a started runner to stop, once (it cancels its polling; `start` returns)."""
        runner = self.runner
        if self.name is not None and not self.asked and runner is not None and runner.started:
            self.asked = True
            runner.stopping = True
            self.stopping = asyncio.ensure_future(runner.astop())  # held: the loop keeps only a weak reference


@contextmanager
def _stop_on_signals():
    """SIGINT and SIGTERM stop `serve` cleanly, also in a background job (where SIGINT starts ignored).

    Yields the `_StopRequest` the handlers fill: the first SIGINT, SIGTERM or unignored SIGHUP is
    recorded and acted on by serve at a safe point; a second raises `_Terminated` wherever serve is.
    Every way out goes through the server's `finally`."""
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def requested(signum, frame):
        stop.signalled(signum)

    left = threading.Event()  # set once serve has left this block: no signal is sent again after that

    def send_again(signum: int) -> None:
        if not left.is_set():
            os.kill(os.getpid(), signum)

    def unraisable(info) -> None:
        """A signal's exception raised while Python runs a weakref callback or a __del__ is dropped
        ("Exception ignored in ..."), and serve would go on: deliver the signal again, from a timer
        so that it lands outside that callback."""
        exc = info.exc_value
        if isinstance(exc, _Terminated):
            timer = threading.Timer(0.1, send_again, (getattr(signal, exc.args[0]),))
            timer.daemon = True
            timer.start()
        else:
            hook_before(info)

    names = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    before = {name: signal.getsignal(name) for name in names}
    hook_before, sys.unraisablehook = sys.unraisablehook, unraisable
    signal.signal(signal.SIGINT, requested)
    signal.signal(signal.SIGTERM, requested)
    if hasattr(signal, "SIGHUP") and before[signal.SIGHUP] == signal.SIG_DFL:
        signal.signal(signal.SIGHUP, requested)
    try:
        yield stop
    finally:
        left.set()
        for name, handler in before.items():
            signal.signal(name, handler if handler is not None else signal.SIG_DFL)
        sys.unraisablehook = hook_before


def _serving_runner(stop: _StopRequest, announce, **options):
    """Prefect's Runner, made to take its stop from `stop` and to `announce()` once it has started.

    Runner.start installs its own SIGTERM handler (sys.exit(0) wherever the main thread is, before
    it has started): ours stays in charge. Asyncio leaves SIGINT to us (ours is not Python's default)."""
    from prefect.runner import Runner

    class ServingRunner(Runner):
        def handle_sigterm(self, signum=signal.SIGTERM, frame=None, *args, **kwargs) -> None:
            stop.signalled(signum)

        async def __aenter__(self):
            stop.loop = asyncio.get_running_loop()
            entered = await super().__aenter__()  # started: polling begins right after this returns
            if stop.name is not None:
                stop.hand_over()  # a signal came while it started
            else:
                announce()
            return entered

    stop.runner = ServingRunner(**options)
    return stop.runner


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
    with _stop_on_signals() as stop:
        try:
            log = server_log(state, port)
            with running_server(port, log=log, check=stop.stop_now) if start_server else nullcontext(None) as server:
                stop.stop_now()
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
                stop.stop_now()

                def announce() -> None:  # registered, and the runner started with our handlers in charge
                    say(f"serving refresh/nightly ({cron}, {timezone}) on {where}; Ctrl-C or SIGTERM stops")

                with temporary_settings({PREFECT_API_URL: server.api_url}) if server else nullcontext():
                    try:  # what refresh_flow.serve(...) does, with our runner
                        runner = _serving_runner(stop, announce, name="nightly", pause_on_shutdown=True)
                        runner.add_flow(
                            refresh_flow, name="nightly", schedules=[Cron(cron, timezone=timezone)],
                            concurrency_limit=1,
                            parameters={"landing": str(landing.resolve()), "state_dir": str(state.resolve()),
                                        "warehouse": str(warehouse.resolve()), "district": district},
                            description="Nightly politikpi refresh")
                        stop.stop_now()
                        try:
                            asyncio.run(runner.start(webserver=False))
                        finally:
                            stop.loop = None
                    finally:
                        if server:
                            _flush_prefect_clients()
        except KeyboardInterrupt as exc:  # _Terminated: a signal before the runner started, or a second one
            say(f"stopped ({exc.args[0] if exc.args else 'SIGINT'})")
            return
    say(f"stopped ({stop.name})" if stop.name else "stopped")
