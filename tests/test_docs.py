"""The README and docs/ cannot drift from the code (as datasette tests its documentation).

docs/kpis.md's table reference is what the models' .toml files generate (`make docs`). Every
`politikpi` command has a row in the README's command table naming each of its options, and the
table names no other command or option; every POLITIKPI_ setting the code reads has a
row in the README's settings table, and the README names no other; README.md and docs/ refer to
nothing outside the repository and every relative link resolves. Fast: no Prefect, no data.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer

from flows.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
# Where settings are read: the code, the benchmarks, the Makefile and the deployment definition.
CODE = [ROOT / "flows", ROOT / "schemas", ROOT / "bench", ROOT / "Makefile", ROOT / "prefect.yaml"]
SETTING = re.compile(r"\bPOLITIKPI_[A-Z0-9_]*[A-Z0-9]\b")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]")
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def commands() -> dict:
    """Command name -> its click command (typer carries its own copy of click: no isinstance)."""
    return dict(typer.main.get_command(app).commands)


def long_flags(command) -> set[str]:
    return {name for param in command.params if param.param_type_name == "option"
            for name in (*param.opts, *param.secondary_opts) if name.startswith("--")}


def section(text: str, title: str) -> str:
    """The body of the `## title` section (up to the next second-level heading)."""
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def command_rows() -> dict[str, str]:
    """Command name -> its row in the README's command table."""
    rows = {}
    for line in section(README.read_text(encoding="utf-8"), "Commands").splitlines():
        if match := re.match(r"^\|\s*`politikpi ([a-z][a-z-]*)", line):
            rows[match.group(1)] = line
    return rows


def prose(text: str) -> str:
    """Markdown without fenced code blocks and inline code spans (where links are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        base = slug(heading)
        out.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return out


def code_settings() -> set[str]:
    found = set()
    for root in CODE:
        for path in [root] if root.is_file() else root.rglob("*"):
            # source files only: bench/out holds gigabytes of sample data where `make bench` ran
            if path.is_file() and "__pycache__" not in path.parts and "out" not in path.relative_to(ROOT).parts \
                    and path.suffix in ("", ".py", ".yaml", ".toml", ".sql"):
                found |= set(SETTING.findall(path.read_text(encoding="utf-8", errors="ignore")))
    return found


def test_the_cli_and_the_readme_table_are_read_at_all():
    """Guards the checks below against passing on nothing found."""
    assert {"sample", "refresh", "rollback"} <= set(commands())
    assert {"--full-refresh", "--reingest", "--state"} <= long_flags(commands()["refresh"])
    assert "--no-server" in long_flags(commands()["serve"])
    assert "refresh" in command_rows() and "--full-refresh" in FLAG.findall(command_rows()["refresh"])
    assert "POLITIKPI_STATE" in code_settings() and "POLITIKPI_STATE" in settings_rows()


def test_every_command_has_a_row_in_the_readme_command_table():
    missing = sorted(set(commands()) - set(command_rows()))
    assert not missing, f"commands without a row in README.md's '## Commands' table: {missing}"


def test_the_readme_command_table_lists_no_command_that_does_not_exist():
    unknown = sorted(set(command_rows()) - set(commands()))
    assert not unknown, f"README.md's command table lists commands the CLI does not have: {unknown}"


def test_every_option_of_every_command_is_in_its_readme_row():
    rows = command_rows()
    missing = [f"{name} {flag}" for name, command in sorted(commands().items()) if name in rows
               for flag in sorted(long_flags(command)) if flag not in FLAG.findall(rows[name])]
    assert not missing, f"options missing from their command's row in README.md: {missing}"


def test_the_readme_command_table_names_no_option_that_does_not_exist():
    known = commands()
    unknown = [f"{name} {flag}" for name, row in sorted(command_rows().items()) if name in known
               for flag in sorted(set(FLAG.findall(row)) - long_flags(known[name]))]
    assert not unknown, f"README.md's command table names options the CLI does not have: {unknown}"


def settings_rows() -> set[str]:
    """The settings that have a row (first cell) in the README's '## Settings' tables."""
    text = section(README.read_text(encoding="utf-8"), "Settings")
    return {name for line in text.splitlines() if line.startswith("|")
            for name in SETTING.findall(line.split("|")[1])}


def test_every_setting_the_code_reads_has_a_row_in_the_readme_settings_table():
    missing = sorted(code_settings() - settings_rows())
    assert not missing, f"POLITIKPI_ settings read by the code without a row in README.md's '## Settings': {missing}"


def test_every_setting_in_the_readme_exists_in_the_code():
    unknown = sorted(set(SETTING.findall(README.read_text(encoding="utf-8"))) - code_settings())
    assert not unknown, f"README.md documents POLITIKPI_ settings no code reads: {unknown}"


def test_no_doc_points_outside_the_repository():
    outside = [f"{doc.relative_to(ROOT)}: {needle}" for doc in DOCS for needle in ("../shared", "SPEC.md")
               if needle in doc.read_text(encoding="utf-8")]
    assert not outside, f"documentation refers to files a user's clone does not have: {outside}"


def test_every_relative_link_in_the_docs_resolves():
    broken = []
    for doc in DOCS:
        for target in LINK.findall(prose(doc.read_text(encoding="utf-8"))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            path = (doc.parent / file_part).resolve() if file_part else doc
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file in the repository)")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no heading #{anchor})")
    assert not broken, f"broken links: {broken}"


def layout_tree() -> list[str]:
    """The file and folder names in the flows/ part of the README's layout tree, with their folders."""
    block = re.search(r"^```\n(flows/\n.*?)^```", section(README.read_text(encoding="utf-8"), "Layout"), re.M | re.S)
    assert block, "the README's layout section has no tree starting at flows/"
    names, folder = [], ""
    for line in block.group(1).splitlines():
        if not line.startswith(" "):
            if line.split() and line.split()[0] != "flows/":
                break
            continue
        word = line.split()[0] if line.split() else ""
        indent = len(line) - len(line.lstrip())
        if re.fullmatch(r"[a-z_]+/|[a-z_]+\.py", word):
            if indent == 2:
                folder = word if word.endswith("/") else ""
                names.append(word)
            elif indent == 4 and folder:
                names.append(folder + word)
    return names


def test_the_readme_layout_matches_the_flows_folder():
    """Every module and package of flows/ is named in the README's layout, in its folder, and nothing else."""
    flows = ROOT / "flows"
    actual = {p.relative_to(flows).as_posix() for p in flows.rglob("*.py")
              if p.name not in ("__init__.py", "__main__.py") and "__pycache__" not in p.parts}
    actual |= {p.relative_to(flows).as_posix() + "/" for p in flows.iterdir()
               if p.is_dir() and (p / "__init__.py").exists()}
    listed = set(layout_tree())
    assert len(listed) > 20, listed
    assert listed == actual, {"not in the README": sorted(actual - listed), "no such module": sorted(listed - actual)}


def test_only_the_flow_modules_import_prefect_and_schemas_import_no_pipeline():
    flows = ROOT / "flows"
    prefect = {p.relative_to(ROOT).as_posix() for p in flows.rglob("*.py")
               if re.search(r"^\s*(from prefect[\s.]|import prefect)", p.read_text(encoding="utf-8"), re.M)}
    assert prefect == {"flows/refresh.py", "flows/serve.py", "flows/national.py", "flows/deploy.py",
                       "flows/concurrency.py"}, prefect
    schemas = [p.name for p in (ROOT / "schemas").glob("*.py")
               if re.search(r"^\s*(from flows[\s.]|import flows)", p.read_text(encoding="utf-8"), re.M)]
    assert schemas == [], schemas


def test_the_committed_kpi_reference_is_what_the_models_generate():
    """docs/kpis.md's generated blocks equal what `make docs` writes from the .toml files (as dbt docs)."""
    from flows.transform.docs import KPIS_MD, render

    committed = KPIS_MD.read_text(encoding="utf-8")
    assert render(committed) == committed, (
        "docs/kpis.md differs from what the models' .toml files generate: run `make docs` and commit it")


def test_every_published_table_and_column_is_in_the_kpi_reference():
    """Guards the check above: each model has its block, naming every column of its .toml."""
    from flows.transform.docs import KPIS_MD, models, toml_path

    text = KPIS_MD.read_text(encoding="utf-8")
    metas = models()
    assert {"kpi_reports", "fct_callouts", "dim_municipality", "kpi_district_comparison"} <= set(metas)
    for meta in metas.values():
        opening = f"<!-- generated from {toml_path(meta)}: edit the .toml, then make docs -->"
        assert text.count(opening) == 1, f"docs/kpis.md has no (or more than one) block for {meta.name}"
        body = text.split(opening, 1)[1].split("<!-- end generated -->", 1)[0]
        missing = [c for c in meta.columns if f"| `{c}`" not in body]
        assert not missing, f"docs/kpis.md's block of {meta.name} lacks the columns {missing}"


def test_docs_check_names_the_file_that_drifted(tmp_path):
    """`politikpi docs --check` exits 1 naming the file when it differs, 0 when it is current."""
    from typer.testing import CliRunner

    stale = tmp_path / "kpis.md"
    stale.write_text("# stale\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["docs", "--check", "--out", str(stale)])
    assert result.exit_code == 1 and str(stale) in result.output + str(result.stderr_bytes or b"", "utf-8")
    assert stale.read_text(encoding="utf-8") == "# stale\n"
    assert CliRunner().invoke(app, ["docs", "--out", str(stale)]).exit_code == 0
    assert CliRunner().invoke(app, ["docs", "--check", "--out", str(stale)]).exit_code == 0
