"""`make mutate`: plant each mutant (mutate/mutants.py) in a scratch copy of the project and run the
fast tier of tests (`make test-fast`) against it; a mutant no test fails survives, and is listed
with its file, line and mutation. Known equivalent mutants (the same behaviour, reviewed) are
listed once, with a reason each, in mutate/equivalent.toml.

    python -m mutate                      # every mutant; prints the score per folder
    python -m mutate --only sql/kpi       # the mutants of some files or folders
    python -m mutate --list               # the mutants, without running anything
    python -m mutate --again              # only what the last run did not kill (after pinning it)
    python -m mutate --rules --doc        # each SPEC rule's planted bug against its test (`make rules`)

The copies live in a temporary folder; the project itself is never written. Each copy runs one
mutant at a time (--jobs copies at once); a mutant's tests stop at the first failure (-x).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mutate.mutants import ROOT, Mutant, all_mutants, sql_files, sql_text

EQUIVALENT = Path(__file__).resolve().parent / "equivalent.toml"
OUT = ROOT / "bench" / "out"
KILLERS_TIMEOUT = 60  # seconds for the tests that killed earlier mutants (each takes a few)
FAST = ["-m", "fast"]  # the fast tier: tests marked `fast` (tests/conftest.py says which)
# What a test must use to run the SQL models: a build, or a helper of a file that does.
SQL_READERS = ("build_release", "transform", "test_kpi_beyond_deck", "test_rules_that_matter", "national")


def equivalents() -> dict[str, str]:
    with open(EQUIVALENT, "rb") as fh:
        return {e["mutant"]: e["reason"] for e in tomllib.load(fh).get("equivalent", [])}


def project_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [f for f in out.splitlines() if (ROOT / f).is_file()]


def scratch_copy(target: Path, files: list[str]) -> Path:
    for rel in files:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target / rel)
    return target


def run_tests(copy: Path, test_files: list[str], timeout: float) -> tuple[str, float, str]:
    """killed / survived / timeout, seconds, and the first failing test's id."""
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header",
                               "-rf", *FAST, *test_files], cwd=copy, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - started, ""
    seconds = time.perf_counter() - started
    if proc.returncode == 0:
        return "survived", seconds, ""
    failed = next((line.split(" ", 1)[1].split(" - ", 1)[0] for line in proc.stdout.splitlines()
                   if line.startswith(("FAILED ", "ERROR "))),
                  proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "")
    # 1: a test failed. Anything else (2: interrupted or a collection error, 3-5: pytest itself, a
    # signal) is an error, counted apart: it says nothing about the tests.
    return ("killed" if proc.returncode == 1 else f"error {proc.returncode}"), seconds, failed


def ordered_tests(mutant: Mutant, tests: list[str], copy: Path) -> list[str]:
    """The fast tier's files that can see the mutant (those reading sql/ for a model; those importing
    the module for Python), the ones naming the mutated model or module first: most mutants die in
    the first file."""
    stem = Path(mutant.file).stem
    module = mutant.file.removesuffix(".py").replace("/", ".")
    texts = {t: (copy / t).read_text(encoding="utf-8") for t in tests}
    if mutant.file.startswith("sql/"):
        reach = [t for t in tests if any(word in texts[t] for word in SQL_READERS)]
        return sorted(reach, key=lambda t: stem not in texts[t])
    # Python: every file of the tier (a module is reached through others: test_schemas.py names no
    # schemas module), those naming the module first
    return sorted(tests, key=lambda t: (module not in texts[t] and Path(t).stem.removeprefix("test_") not in module,
                                        stem not in texts[t]))


def fast_files() -> list[str]:
    """The test files of the fast tier (FAST_FILES in tests/conftest.py, which marks their tests)."""
    import ast

    tree = ast.parse((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    names = next(ast.literal_eval(node.value) for node in tree.body
                 if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "FAST_FILES")
    return sorted(f"tests/{name}" for name in names if (ROOT / "tests" / name).exists())


def roundtrip(copy: Path) -> None:
    """Every mutated file written back unmutated, the way mutants are written (sqlglot, ast): the
    tier must pass on it, or a mutant could be 'killed' by the rewriting alone."""
    import ast

    import sqlglot

    for path in sql_files(copy):
        trees = [t for t in sqlglot.parse(path.read_text(encoding="utf-8"), read="duckdb") if t is not None]
        path.write_text(sql_text(trees), encoding="utf-8")
    from mutate.mutants import PYTHON_FILES

    for rel in PYTHON_FILES:
        path = copy / rel
        path.write_text(ast.unparse(ast.parse(path.read_text(encoding="utf-8"))) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mutate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=[], help="files or folders to mutate (default: all listed in "
                        "mutate/mutants.py)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="copies run at once (default: cores)")
    parser.add_argument("--timeout", type=float, default=0, help="seconds a mutant's tests may take (default: twice "
                        "the unmutated tier's time)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--include-equivalent", action="store_true", help="run the known equivalent mutants too")
    parser.add_argument("--again", action="store_true", help="run again only what the last run (bench/out/mutate.json) "
                        "did not kill, against the tests as they are now; the score is over the last run's mutants "
                        "with these results in place (the after-score once survivors are pinned)")
    parser.add_argument("--rules", action="store_true", help="instead: plant each SPEC rule's bug (mutate/rules.toml) "
                        "and run that rule's test alone, which must fail (`make rules`)")
    parser.add_argument("--rule", default="", help="with --rules: the rules of one SPEC section (4.1) or whose "
                        "text holds this word")
    parser.add_argument("--doc", action="store_true", help="with --rules: write the table to docs/rules.md")
    args = parser.parse_args(argv)
    if args.rules:
        from mutate import rules

        workdir = Path(tempfile.mkdtemp(prefix="politikpi-rules-"))
        try:
            return rules.main(args.rule, args.doc, workdir, lambda target: scratch_copy(target, project_files()))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    mutants = all_mutants(only=tuple(args.only))
    known = equivalents()
    names = {m.name for m in all_mutants()}
    stale = sorted(set(known) - names)
    if args.list:
        for m in mutants:
            print(f"{m.file}:{m.line}  {m.operator:26} {m.before} -> {m.after}"
                  + ("   [equivalent]" if m.name in known else ""))
        print(f"{len(mutants)} mutants")
        return 0
    todo = [m for m in mutants if args.include_equivalent or m.name not in known]
    previous: list[dict] = []
    if args.again:
        runnable = {m.name for m in todo}
        previous = [r for r in json.loads((OUT / "mutate.json").read_text(encoding="utf-8"))
                    if r["name"] in runnable]
        last = {r["name"] for r in previous}
        done = {r["name"] for r in previous if r["status"] in ("killed", "timeout")}
        mutants = [m for m in mutants if m.name in last or m.name in known]
        todo = [m for m in todo if m.name in last - done]
        previous = [r for r in previous if r["name"] in done]
        print(f"again: {len(todo)} mutants the last run did not kill; {len(previous)} it killed are kept")
    tests = fast_files()

    workdir = Path(tempfile.mkdtemp(prefix="politikpi-mutate-"))
    try:
        return run_all(args, mutants, todo, known, stale, tests, workdir, previous)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_all(args, mutants: list[Mutant], todo: list[Mutant], known: dict, stale: list, tests: list[str],
            workdir: Path, previous: list[dict]) -> int:
    """Run every mutant to do in copies under workdir; print and save the results."""
    files = project_files()
    jobs = max(1, min(args.jobs, len(todo) or 1))
    copies = [scratch_copy(workdir / f"copy{i}", files) for i in range(jobs)]
    equivalent = sum(m.name in known for m in mutants) if not args.include_equivalent else 0
    print(f"{len(mutants)} mutants ({equivalent} known equivalent, not run); {len(todo)} to run, {jobs} copies "
          f"in {workdir}")

    check = scratch_copy(workdir / "roundtrip", files)
    roundtrip(check)
    status, seconds, failed = run_tests(check, tests, args.timeout or 1800)
    print(f"fast tier, unmutated (files rewritten by sqlglot/ast): {status} in {seconds:.1f} s")
    timeout = args.timeout or max(120.0, 2 * seconds)  # a mutant that loops forever is killed by time
    if status != "survived":
        print(f"the fast tier fails without a mutant ({failed}): fix that first", file=sys.stderr)
        return 2
    shutil.rmtree(check)

    free = list(copies)
    killers: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()
    results: list[dict] = []

    def one(mutant: Mutant) -> dict:
        with lock:
            copy = free.pop()
        try:
            path = copy / mutant.file
            original = path.read_text(encoding="utf-8")
            path.write_text(mutant.text, encoding="utf-8")
            try:
                # tests that killed earlier mutants of this file first: most mutants die there
                with lock:
                    first = list(dict.fromkeys(killers[mutant.file]))[-5:]
                status, seconds, failed = run_tests(copy, first, KILLERS_TIMEOUT) if first else ("survived", 0.0, "")
                if status == "survived":
                    status, more, failed = run_tests(copy, ordered_tests(mutant, tests, copy), timeout)
                    seconds += more
            finally:
                path.write_text(original, encoding="utf-8")
        finally:
            with lock:
                free.append(copy)
        result = {"name": mutant.name, "file": mutant.file, "line": mutant.line, "operator": mutant.operator,
                  "status": status, "seconds": round(seconds, 1), "killed_by": failed}
        with lock:
            if "::" in failed:
                killers[mutant.file].append(failed)
            results.append(result)
            print(f"[{len(results):4}/{len(todo)}] {status:8} {seconds:6.1f} s  {mutant.file}:{mutant.line}  "
                  f"{mutant.before} -> {mutant.after}", flush=True)
        return result

    started = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, todo))
    results = previous + results  # --again: the last run's kills, then what ran now

    by_folder: dict[str, Counter] = defaultdict(Counter)
    for m in mutants:
        folder = str(Path(m.file).parent) if m.file.startswith("sql/") else m.file
        by_folder[folder]["mutants"] += 1
        by_folder[folder]["equivalent"] += m.name in known and not args.include_equivalent
    for r in results:
        folder = str(Path(r["file"]).parent) if r["file"].startswith("sql/") else r["file"]
        kind = r["status"] if r["status"] in ("survived", "killed", "timeout") else "error"
        by_folder[folder]["killed" if kind == "timeout" else kind] += 1
    print("\n| mutated | mutants | killed | equivalent | survived | errors | score |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    total = Counter()
    for folder in sorted(by_folder):
        c = by_folder[folder]
        total.update(c)
        print(f"| {folder} | {c['mutants']} | {c['killed']} | {c['equivalent']} | {c['survived']} | {c['error']} | "
              f"{score(c)} |")
    print(f"| all | {total['mutants']} | {total['killed']} | {total['equivalent']} | {total['survived']} | "
          f"{total['error']} | {score(total)} |")
    survivors = sorted((r for r in results if r["status"] == "survived"), key=lambda r: (r["file"], r["line"]))
    if survivors:
        print(f"\n{len(survivors)} survivors (no fast test fails; pin the rule, or list it in "
              f"{EQUIVALENT.relative_to(ROOT)} with the reason it is equivalent):")
        for r in survivors:
            print(f"  {r['file']}:{r['line']}  {r['operator']}: {r['name'].split(': ', 1)[1]}")
    if stale:
        print(f"\n{len(stale)} entries of {EQUIVALENT.relative_to(ROOT)} match no mutant any more: {stale}")
    print(f"\n{len(results) - len(previous)} mutants run in {time.perf_counter() - started:.0f} s ({jobs} at once)")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "mutate.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 1 if survivors or stale else 0


def score(c: Counter) -> str:
    """Killed (by a failing test, or by time) of the mutants run that did not end in an error."""
    run = c["mutants"] - c["equivalent"] - c["error"]
    return f"{100 * c['killed'] / run:.1f} %" if run else "-"


if __name__ == "__main__":
    sys.exit(main())
