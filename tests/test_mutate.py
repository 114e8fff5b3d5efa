"""The mutation tooling's own lists stay true: every rule of SPEC 2.5, 4, 4.1 and 5 names a bug that
still exists and a test that still exists (mutate/rules.toml), every reviewed equivalent mutant is
still made (mutate/equivalent.toml), and `make rules` really plants a bug and sees its test fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mutate import rules
from mutate.__main__ import equivalents
from mutate.mutants import all_mutants

ROOT = Path(__file__).resolve().parent.parent


def test_every_rule_names_a_bug_and_a_test_that_exist_and_every_section_has_rules():
    listed = rules.rules()
    assert rules.problems(listed) == []
    assert {r.spec for r in listed} == {"2.5", "4", "4.1", "5"}
    assert len({r.rule for r in listed}) == len(listed)  # a rule is listed once


def test_a_stale_rule_is_reported(tmp_path):
    listed = rules.rules()
    moved = [rules.Rule(spec="4", rule="gone", test="tests/test_mutate.py::test_nothing", mutant="sql/x.sql: a -> b"),
             rules.Rule(spec="5", rule="twice", test=listed[0].test,
                        plants=(rules.Plant("sql/kpi/kpi_reports.sql", "select", "select distinct"),))]
    found = rules.problems(moved)
    assert any("no mutant is named" in p for p in found) and any("no test" in p for p in found)
    assert any("must be once" in p for p in found)


def test_every_reviewed_equivalent_mutant_is_still_made():
    names = {m.name for m in all_mutants()}
    assert set(equivalents()) <= names


def test_make_rules_plants_the_bug_and_its_test_fails():
    out = subprocess.run([sys.executable, "-m", "mutate", "--rules", "--rule", "NFC"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 of 1 planted bugs fail their rule's test" in out.stdout
    assert (ROOT / "sql" / "staging" / "stg_roster__ambassadors.sql").read_text(encoding="utf-8").count(
        "nfc_normalize(trim(lokalomraade)) as local_area") == 1  # the project itself is never written
