"""Fault injection for tests and the chaos bench: POLITIKPI_FAULT=<point>[:kill].

At the named point the process raises InjectedFault, or with `:kill` sends itself SIGKILL (a
real crash: no cleanup, no finally blocks). Unset in production, where `hit` costs one lookup.
"""

from __future__ import annotations

import os
import signal


class InjectedFault(RuntimeError):
    """A failure injected at a named point (POLITIKPI_FAULT)."""


def hit(point: str) -> None:
    spec = os.environ.get("POLITIKPI_FAULT")
    if not spec:
        return
    name, mode = (spec[: -len(":kill")], "kill") if spec.endswith(":kill") else (spec, "raise")
    if name != point:
        return
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedFault(f"fault injected at {point}")
