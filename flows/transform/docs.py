"""The table reference of docs/kpis.md, generated from the models' .toml files (as dbt generates its
docs): each published model's block sits between two markers,

    <!-- generated from sql/kpi/kpi_reports.toml: edit the .toml, then make docs -->
    ...
    <!-- end generated -->

and everything outside the markers is hand-written prose that `politikpi docs` keeps as it is. A
model without a block gets one at the end of the `## Tables` section; a block whose model is gone
is dropped. A test fails when the committed file differs from what the models generate.
"""

from __future__ import annotations

import re
from pathlib import Path

from flows.transform.models import SQL_DIR, ModelMeta, load

KPIS_MD = SQL_DIR.parent / "docs" / "kpis.md"
BLOCK = re.compile(r"^<!-- generated from (sql/\S+\.toml): edit the \.toml, then make docs -->\n"
                   r".*?^<!-- end generated -->\n", re.M | re.S)


def models(root: Path = SQL_DIR) -> dict[str, ModelMeta]:
    """Every published model: the district's and the national release's own."""
    return load(root, national=True)


def toml_path(meta: ModelMeta, root: Path = SQL_DIR) -> str:
    return (Path(root.name) / meta.path.relative_to(root)).as_posix()


def _names(columns) -> str:
    return ", ".join(f"`{c}`" for c in columns)


def _value(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def expectation(meta: ModelMeta, rule: dict) -> str:
    """An audit rule as a reader says it: ≥ 0, between 0 and 1, one of `a`, `b`."""
    if "values" in rule or "values_from" in rule:
        shown = ", ".join(f"`{v}`" for v in meta.allowed_values(rule))
        return f"one of {shown}" + (f" (`{rule['values_from']}`)" if "values_from" in rule else "")
    low, high = rule.get("min"), rule.get("max")
    if low is not None and high is not None:
        return f"between {_value(low)} and {_value(high)}"
    return f"≥ {_value(low)}" if low is not None else f"≤ {_value(high)}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def grain(meta: ModelMeta) -> str:
    if len(meta.keys) == 1:
        return f"one row per {meta.keys[0]}"
    if meta.keys:
        return f"one row per ({', '.join(meta.keys)})"
    if meta.incremental.get("unique_key"):
        return f"one row per {meta.incremental['unique_key']}"
    return ""


def block(meta: ModelMeta, root: Path = SQL_DIR) -> str:
    """One model's generated block, markers included."""
    heading = f"`{meta.name}`" + (f" — {grain(meta)}" if grain(meta) else "")
    lines = [f"<!-- generated from {toml_path(meta, root)}: edit the .toml, then make docs -->",
             f"### {heading}", "", meta.description.strip(), ""]
    if meta.keys:
        fixed = [k for k in meta.keys if k not in meta.rollup_keys]
        nulls = "never NULL" if not meta.rollup_keys else (
            f"{_names(meta.rollup_keys)} may be NULL, where NULL means **{meta.null_means}** "
            f"({'a rollup row' if meta.null_means == 'all' else 'not a rollup'})"
            + (f"; {_names(fixed)} never NULL" if fixed else ""))
        lines.append(f"- **Key**: {_names(meta.keys)}, unique (audited before every release); {nulls}.")
    elif meta.incremental.get("unique_key"):
        lines.append(f"- **Key**: `{meta.incremental['unique_key']}` (the nightly patch replaces rows by it).")
    else:
        lines.append("- **Key**: none.")
    if meta.incremental:
        how = (f"rows replaced by `{meta.incremental['unique_key']}`" if "unique_key" in meta.incremental
               else f"the changed years of `{meta.incremental['partition']}` recomputed from "
                    f"{_names(meta.incremental.get('facts', []))}")
        lines.append(f"- **Nightly build**: patched ({how}); otherwise rebuilt whole.")
    lines += ["", "| column | meaning | audit |", "|---|---|---|"]
    rules: dict[str, list[str]] = {}
    for rule in meta.expect:
        rules.setdefault(rule["column"], []).append(expectation(meta, rule))
    for column, comment in meta.columns.items():
        mark = ""
        if column in meta.keys:
            mark = " **key**" + (f", NULL = {meta.null_means}" if column in meta.rollup_keys else "")
        audit = "; ".join(rules.get(column, []))
        lines.append(f"| `{column}`{mark} | {_cell(comment)} | {_cell(audit)} |")
    if meta.labels:
        lines += ["", "Danish labels (the overview, the report): "
                  + "; ".join(f"`{c}` {label}" for c, label in meta.labels.items()) + "."]
    lines.append("<!-- end generated -->")
    return "\n".join(lines) + "\n"


class DocsError(RuntimeError):
    """docs/kpis.md cannot take the generated blocks; the message says where."""


def render(text: str, root: Path = SQL_DIR) -> str:
    """The document with every generated block rewritten from the models; prose kept as it is."""
    metas = {toml_path(m, root): m for m in models(root).values()}
    seen: set[str] = set()

    def fresh(match: re.Match) -> str:
        source = match.group(1)
        if source not in metas:
            return ""  # the model is gone: its block goes with it
        seen.add(source)
        return block(metas[source], root)

    text = BLOCK.sub(fresh, text)
    if stray := re.search(r"^<!-- (generated from|end generated).*$", BLOCK.sub("", text), re.M):
        raise DocsError(f"an unpaired marker in docs/kpis.md: {stray.group(0)!r} (each generated block "
                        "opens with '<!-- generated from sql/...toml: edit the .toml, then make docs -->' "
                        "and closes with '<!-- end generated -->')")
    missing = [source for source in metas if source not in seen]
    if missing:
        tables = re.search(r"^## Tables\s*$.*?(?=^## |\Z)", text, re.M | re.S)
        if not tables:
            raise DocsError("docs/kpis.md has no '## Tables' section to add the blocks of new models to")
        added = "".join("\n" + block(metas[source], root) for source in missing)
        end = tables.end()
        text = text[:end].rstrip("\n") + "\n" + added + "\n" + text[end:]
    return text
