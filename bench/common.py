"""Shared helpers for the benchmarks: the machine, medians, tables, peak memory."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, {platform.system()}"


def median_time(fn, runs: int = 3, setup=None) -> tuple[float, list[float]]:
    """Median wall time of fn over runs (setup runs before each, untimed)."""
    times = []
    for _ in range(runs):
        if setup:
            setup()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def run_timed(cmd: list[str], env: dict | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of a command in its own process (this child's own rusage;
    a forked child starts from its parent's high-water mark, so keep the parent small)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([*cmd], env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{cmd} failed: {err.read().decode(errors='replace')[-2000:]}")
    return elapsed, int(usage.ru_maxrss / 1024)


def ensure_sample(folder: Path, scale: int, years: str = "2019") -> Path:
    """Write the sample once; later runs reuse it."""
    if not (folder / ".complete").exists():
        subprocess.run([sys.executable, "-m", "flows", "sample", "--years", years, "--scale", str(scale),
                        "--out", str(folder)], check=True)
        (folder / ".complete").touch()
    return folder


def table(title: str, header: list[str], rows: list[list]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda r: "  ".join(str(x).rjust(w) for x, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([title, line(header), line(["-" * w for w in widths]), *map(line, rows)])
