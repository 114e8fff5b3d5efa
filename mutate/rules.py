"""`make rules`: every rule of SPEC sections 2.5, 4, 4.1 and 5, the test that pins it, and the planted
bug that proves the test can fail (mutate/rules.toml).

Each rule names one bug: a mutant of `make mutate` (by its name, as `python -m mutate --list` prints
it) or, for a rule `make mutate` does not reach (the ingest and publish code), a plant: a piece of
a file and what it becomes (or several at once, for a rule guarded in two places). The run plants
each bug in a scratch copy of the project, runs the rule's test alone and expects it to fail; a
rule whose test still passes is reported and the run fails. `--doc` writes the table to docs/rules.md.

    python -m mutate --rules              # every rule
    python -m mutate --rules --rule 4.1   # the rules of a section (or whose text holds a word)
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mutate.mutants import ROOT, Mutant, all_mutants

RULES = Path(__file__).resolve().parent / "rules.toml"
DOC = ROOT / "docs" / "rules.md"
TIMEOUT = 600  # seconds a rule's test may take (some run a Prefect flow)


@dataclass(frozen=True)
class Rule:
    spec: str
    rule: str
    test: str  # a pytest node id
    mutant: str = ""  # a `make mutate` mutant's name
    plants: tuple[Plant, ...] = ()  # or plants, all at once (a rule guarded in two places needs both)

    @property
    def bug(self) -> str:
        if self.mutant:
            return self.mutant
        return "; ".join(f"{p.file}: {' '.join(p.old.split())} -> {' '.join(p.new.split())}" for p in self.plants)


@dataclass(frozen=True)
class Plant:
    file: str  # in this file,
    old: str  # this text (exactly once)
    new: str  # becomes this


def rules(path: Path = RULES) -> list[Rule]:
    """The rules; a rule's plant is given as file, old, new, or as a list of them under [[rule.plant]]."""
    with open(path, "rb") as fh:
        entries = tomllib.load(fh)["rule"]
    listed = []
    for entry in entries:
        plants = [Plant(**p) for p in entry.pop("plant", [])]
        if "file" in entry:
            plants.append(Plant(entry.pop("file"), entry.pop("old"), entry.pop("new")))
        listed.append(Rule(**entry, plants=tuple(plants)))
    return listed


def problems(listed: list[Rule], root: Path = ROOT) -> list[str]:
    """What makes a rule's entry stale: a mutant no longer made, a plant whose text is not in its file
    exactly once, a test that does not exist. Checked by the fast tier (tests/test_mutate.py)."""
    names = {m.name for m in all_mutants(root)}
    found = []
    for r in listed:
        if bool(r.mutant) == bool(r.plants):
            found.append(f"{r.spec} {r.rule}: give a mutant or a plant (file, old, new), not both")
        elif r.mutant and r.mutant not in names:
            found.append(f"{r.spec} {r.rule}: no mutant is named {r.mutant!r}")
        for p in r.plants:
            count = (root / p.file).read_text(encoding="utf-8").count(p.old) if (root / p.file).is_file() else 0
            if count != 1 or p.old == p.new:
                found.append(f"{r.spec} {r.rule}: {p.file} holds the plant's text {count} times (must be once)")
        path, _, name = r.test.partition("::")
        if not (root / path).is_file() or f"def {name.split('[')[0]}(" not in (root / path).read_text(encoding="utf-8"):
            found.append(f"{r.spec} {r.rule}: no test {r.test}")
    return found


def planted(rule: Rule, copy: Path, mutants: dict[str, Mutant]) -> dict[Path, str]:
    """Write the rule's bug into the copy; returns each changed file's text before."""
    if rule.mutant:
        mutant = mutants[rule.mutant]
        changes = {copy / mutant.file: mutant.text}
    else:
        changes = {}
        for p in rule.plants:
            path = copy / p.file
            changes[path] = changes.get(path, path.read_text(encoding="utf-8")).replace(p.old, p.new)
    originals = {path: path.read_text(encoding="utf-8") for path in changes}
    for path, text in changes.items():
        path.write_text(text, encoding="utf-8")
    return originals


def run(selected: list[Rule], copy: Path) -> list[dict]:
    results = []
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    mutants = {m.name: m for m in all_mutants(copy)}
    for i, rule in enumerate(selected, 1):
        originals = planted(rule, copy, mutants)
        started = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                   "-p", "no:randomly", "--no-header", rule.test], cwd=copy, env=env,
                                  capture_output=True, text=True, timeout=TIMEOUT)
            status = {0: "PASSES", 1: "fails"}.get(proc.returncode, f"error {proc.returncode}")
        except subprocess.TimeoutExpired:
            status = "timeout"
        finally:
            for path, text in originals.items():
                path.write_text(text, encoding="utf-8")
        seconds = time.perf_counter() - started
        results.append({"spec": rule.spec, "rule": rule.rule, "test": rule.test, "bug": rule.bug,
                        "status": status, "seconds": round(seconds, 1)})
        print(f"[{i:3}/{len(selected)}] {status:8} {seconds:6.1f} s  {rule.spec:4} {rule.rule}", flush=True)
    return results


def markdown(results: list[dict]) -> str:
    lines = ["# Every rule and the planted bug its test fails",
             "",
             "Generated by `make rules` (`python -m mutate --rules --doc`) from `mutate/rules.toml`: for each",
             "rule of SPEC sections 2.5, 4, 4.1 and 5 (docs/input-contract.md and docs/kpis.md state them",
             "for users), the test that pins it, and one bug planted in a scratch copy of the project that",
             "the test fails. A bug is a mutant of `make mutate` (file: code -> mutated code), or, where",
             "`make mutate` does not reach (ingest, publish), a plant written in `mutate/rules.toml`.",
             f"Last run: {dt.date.today().isoformat()}, {sum(r['status'] == 'fails' for r in results)} of "
             f"{len(results)} planted bugs fail their test.",
             "",
             "| SPEC | rule | test | planted bug | test with the bug |",
             "|---|---|---|---|---|"]
    order = ["2.5", "4", "4.1", "5"]
    for r in sorted(results, key=lambda r: order.index(r["spec"]) if r["spec"] in order else len(order)):
        bug = r["bug"].replace("|", "\\|")
        lines.append(f"| {r['spec']} | {r['rule']} | `{r['test']}` | `{bug}` | {r['status']} ({r['seconds']} s) |")
    return "\n".join(lines) + "\n"


def main(selector: str, doc: bool, workdir: Path, copy_project) -> int:
    listed = rules()
    stale = problems(listed)
    if stale:
        print("\n".join(["mutate/rules.toml is stale:", *stale]), file=sys.stderr)
        return 2
    selected = [r for r in listed if not selector or r.spec == selector or selector.lower() in r.rule.lower()]
    copy = copy_project(workdir / "rules")
    print(f"{len(selected)} rules; each bug planted in {copy}, its test run alone")
    results = run(selected, copy)
    passing = [r for r in results if r["status"] != "fails"]
    for r in passing:
        print(f"  {r['spec']} {r['rule']}: {r['test']} {r['status']} with {r['bug']}")
    print(f"\n{len(results) - len(passing)} of {len(results)} planted bugs fail their rule's test")
    if doc and not selector:
        DOC.write_text(markdown(results), encoding="utf-8")
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 1 if passing else 0
