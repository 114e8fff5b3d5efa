"""The audit's Great Expectations process: the same verdicts as auditing in-process."""

from __future__ import annotations

import pandas as pd

from flows.audit import Auditor, validate


def frames() -> list:
    ok = pd.DataFrame({"check_name": ["a", "b"], "expected": [3, 5], "actual": [3, 5]})
    bad = pd.DataFrame({"missing_months": [2]})
    return [("reconciliation", ok, True), ("coverage", bad, True),
            ("days_without_data", pd.DataFrame({"day": ["2019-01-03"], "source": ["reports"]}), False)]


def test_audit_process_gives_the_in_process_verdicts_and_builds_the_docs(tmp_path):
    auditor = Auditor()
    pid = auditor.proc.pid
    there = auditor.validate(frames(), tmp_path / "docs", 0.5, 0.25)
    here = validate(frames(), tmp_path / "docs-here", 0.5, 0.25)
    assert auditor.proc.returncode == 0 and pid > 0  # a real process, which answered and exited
    assert there.success is False and [c["frame"] for c in there.failures] == ["coverage"]
    assert [c["frame"] for c in there.flagged] == ["days_without_data"]
    assert there.checks == here.checks
    assert (tmp_path / "docs" / "index.html").exists()


def test_a_dead_audit_process_falls_back_to_auditing_here(tmp_path):
    auditor = Auditor()
    auditor.proc.kill()
    auditor.proc.wait()
    result = auditor.validate(frames(), tmp_path / "docs", 0.5, 0.25)
    assert [c["frame"] for c in result.failures] == ["coverage"]
