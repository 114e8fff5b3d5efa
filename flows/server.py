"""Start a Prefect server on loopback for `politikpi serve` and the tests (never 0.0.0.0).

The server runs `prefect server start` (embedded SQLite, UI on) in a session of its own, its
output in a log file. It counts as started only when the port was free before, the process is
alive and the socket answering `/api/health` on the port is that process's own: a health answer
from some other server on the port never makes us register a deployment there.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HOST = "127.0.0.1"
STOP_TIMEOUT = 20  # seconds the server gets to stop on SIGTERM before it is killed


class ServeError(RuntimeError):
    """`politikpi serve` cannot start; the message says why and where the log is."""


def server_log(state: Path, port: int) -> Path:
    """Where `politikpi serve` keeps the Prefect server's output (the previous start's in `.1`)."""
    return state / "logs" / f"prefect-server-{port}.log"


def port_problem(port: int, host: str = HOST) -> str | None:
    """Why `host:port` cannot be bound now (e.g. 'Address already in use'), or None when it is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on TCP `port` (any address), or None where /proc cannot tell."""
    inodes, readable = set(), False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes if readable else None


def listens_on(pid: int, port: int) -> bool | None:
    """Whether process `pid` holds the listening socket of `port` (None: this system cannot tell)."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return None
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def _answers_health(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def wait_healthy(api_url: str, timeout: float = 120) -> None:
    """Wait until something answers `api_url`/health (an external server: nothing to own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers_health(api_url):
            return
        time.sleep(0.5)
    raise TimeoutError(f"Prefect server at {api_url} not healthy after {timeout:.0f} s")


def _last_error(log: Path) -> str:
    """The log's last line that reads like an error (else its last line), fit for a one-line message."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()
                 if line.strip() and not line.startswith("#") and line.strip() != "Server stopped!"]
    except OSError:
        return ""
    # a traceback's last line says most; else a line that reads like an error; else the last line
    raised = [line for line in lines if re.match(r"[A-Za-z_][\w.]*(Error|Exception)\b", line)]
    errors = [line for line in lines if re.search(r"error|exception|failed|in use|denied", line, re.IGNORECASE)]
    text = (raised or errors or lines or [""])[-1].replace("[", "(").replace("]", ")")  # Rich reads [..] as markup
    return text if len(text) <= 200 else text[:197] + "..."


def _death_signal_setter():
    """A function for the server's child process: SIGTERM to it when politikpi dies (even by SIGKILL).

    Linux's PR_SET_PDEATHSIG, looked up here in the parent (no dlopen after fork); None elsewhere.
    The signal follows the thread that started the server: start it from a thread that outlives it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG = 1


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL after STOP_TIMEOUT s or on a second signal."""
    def signal_group(sig: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    if proc.poll() is None:
        signal_group(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        signal_group(signal.SIGKILL)
        proc.wait()
    except BaseException:  # a second signal while waiting: do not wait politely
        signal_group(signal.SIGKILL)
        proc.wait()
        raise
    finally:
        signal_group(signal.SIGKILL)  # anything the server left in its process group


@dataclass(frozen=True)
class Server:
    api_url: str  # http://127.0.0.1:PORT/api
    ui_url: str  # http://127.0.0.1:PORT
    pid: int
    log: Path


@contextmanager
def running_server(port: int = 4200, home: Path | None = None, log: Path | None = None,
                   timeout: float = 120, check=None):
    """`prefect server start --host 127.0.0.1` with the UI; yields a `Server` once it is healthy and ours.

    `check()`, called while it waits for the server, may raise to stop waiting (the server is stopped).

    Raises ServeError (one line naming the log) when the port is taken, the server exits early,
    someone else answers on the port, or it is not healthy within `timeout` s."""
    log = log or (home / f"prefect-server-{port}.log" if home
                  else Path(tempfile.gettempdir()) / f"politikpi-prefect-server-{port}.log")
    problem = port_problem(port)
    if problem:  # the log is left alone: it may be the live log of the server that holds the port
        raise ServeError(f"port {port} on {HOST} is not free ({problem}): another Prefect server or "
                         f"program holds it; nothing was started or registered; stop it or choose "
                         f"--port (server log: {log})")

    api_url, ui_url = f"http://{HOST}:{port}/api", f"http://{HOST}:{port}"
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_SERVER_UI_ENABLED="true",
               PREFECT_SERVER_API_HOST=HOST, PREFECT_SERVER_API_PORT=str(port),
               PREFECT_SERVER_UI_API_URL=api_url,  # else the UI asks the default port, not this one
               PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false")
    for name in ("PREFECT_API_URL", "PREFECT_UI_ENABLED", "PREFECT_UI_API_URL"):  # older spellings
        env.pop(name, None)
    if home:
        env["PREFECT_HOME"] = str(home)

    log.parent.mkdir(parents=True, exist_ok=True)
    if log.exists() and log.stat().st_size:
        log.replace(log.with_name(log.name + ".1"))
    prefect = str(Path(sys.executable).with_name("prefect"))
    command = [prefect, "server", "start", "--host", HOST, "--port", str(port)]
    with open(log, "ab") as out:
        out.write(f"# {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} politikpi: {' '.join(command)} "
                  f"(PREFECT_HOME={env.get('PREFECT_HOME', '~/.prefect')})\n".encode())
        out.flush()
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_death_signal_setter())
    try:
        with suppress(OSError), open(log, "ab") as out:  # appended: a whole line among the server's
            out.write(f"# server pid {proc.pid}\n".encode())
        deadline = time.monotonic() + timeout
        while True:
            if check is not None:
                check()
            code = proc.poll()
            if code is not None:
                last = _last_error(log)
                raise ServeError(f"the Prefect server on {HOST}:{port} exited with code {code} before it "
                                 f"was healthy{': ' + last if last else ''} (server log: {log})")
            if _answers_health(api_url):
                ours = listens_on(proc.pid, port)
                if ours is False:
                    raise ServeError(f"another process answers on {HOST}:{port} (it took the port while our "
                                     f"Prefect server was starting); nothing was registered; stop it or choose "
                                     f"--port (server log: {log})")
                if proc.poll() is None:
                    break
                continue
            if time.monotonic() > deadline:
                raise ServeError(f"the Prefect server on {HOST}:{port} was not healthy within {timeout:.0f} s "
                                 f"(server log: {log})")
            time.sleep(0.25)
        yield Server(api_url=api_url, ui_url=ui_url, pid=proc.pid, log=log)
    finally:
        _stop(proc)


@contextmanager
def local_server(port: int = 4200, home: Path | None = None, log: Path | None = None):
    """`prefect server start --host 127.0.0.1` (embedded SQLite, UI on); yields its API URL."""
    with running_server(port, home=home, log=log) as server:
        yield server.api_url
