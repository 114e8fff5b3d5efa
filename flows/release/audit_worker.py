"""The audit in a process of its own, started as soon as a run has files to process.

Great Expectations takes ~3 s of CPU to import, all of it Python: imported on a thread of the run's
process it competes for that process's one GIL with extraction, the build and Prefect. Imported in
a second process it runs on the other core, and the audit finds it loaded. One job per run, sent
and answered as pickles over the child's stdin and stdout; if the worker is gone or fails to
answer, the run audits in its own process instead (which then reports any error). No Prefect.

    python -m flows.release.audit_worker     # reads one job from stdin, writes the outcome to stdout
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys

from flows.config import Settings


class AuditWorker:
    def __init__(self) -> None:
        env = dict(os.environ, GX_ANALYTICS_ENABLED=os.environ.get("GX_ANALYTICS_ENABLED", "false"))
        self.proc = subprocess.Popen([sys.executable, "-m", "flows.release.audit_worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

    def audit(self, settings: Settings, built: dict, accept_restatement: str | None, run_id: str) -> dict:
        """The audit's summary, as audit_build returns it; AuditFailed as audit_build raises it."""
        from flows.release.audit import AuditFailed, audit_build

        try:
            pickle.dump({"settings": settings, "built": built, "accept_restatement": accept_restatement,
                         "run_id": run_id}, self.proc.stdin)
            self.proc.stdin.close()
            ok, value = pickle.load(self.proc.stdout)
        except (OSError, EOFError, pickle.UnpicklingError):  # the worker is gone: audit here
            self.close()
            return audit_build(settings, built, accept_restatement, run_id=run_id)
        finally:
            self.close()
        if ok is True:
            return value
        if ok is False:
            raise AuditFailed(value)
        raise RuntimeError(f"audit: {value}")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def main() -> None:
    out, sys.stdout = sys.stdout.buffer, sys.stderr  # anything a library prints stays off the answer
    import great_expectations  # noqa: F401 - the point of this process: loaded before the job comes

    from flows.release.audit import AuditFailed, audit_build

    try:
        job = pickle.load(sys.stdin.buffer)
    except EOFError:  # the run had nothing to audit after all
        return
    try:
        answer = (True, audit_build(job["settings"], job["built"], job["accept_restatement"], run_id=job["run_id"]))
    except AuditFailed as exc:
        answer = (False, exc.result)
    except Exception as exc:  # noqa: BLE001 - reported to the run, which fails with it
        answer = (None, f"{type(exc).__name__}: {exc}")
    pickle.dump(answer, out)
    out.flush()


if __name__ == "__main__":
    main()
