"""Discover the SQL models in sql/, order them by the tables they read, and run them.

Plain Python, no Prefect. One SELECT per file; the file stem is the table name, unique across
sql/. staging/ models become temporary views over the state and intermediate/ (`int_`) models
temporary tables (both build-only); the rest are published tables. The runner stops at the first
error and names the file. A nightly build that patches the previous release instead runs the
same models through flows/transform/patch.py.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp

from flows.transform.models import SQL_DIR
from flows.transform.models import load as load_metadata

NOT_MODELS = ("audit", "previous", "macros")  # folders of sql/ whose queries build no table of the release
NATIONAL = "national"  # models of the national release only (SPEC 8.4); a district build skips them


class ModelError(RuntimeError):
    """A model cannot be discovered, ordered or run; the message names the file."""


@dataclass(frozen=True)
class Model:
    name: str
    path: Path
    sql: str
    reads: frozenset[str]
    state_reads: frozenset[str] = frozenset()  # tables of the attached state database

    @property
    def temporary(self) -> bool:
        return self.path.parent.name in ("staging", "intermediate") or self.name.startswith("int_")

    @property
    def kind(self) -> str:
        """What a full build creates. A staging model (renames and conversions) is a view read by
        its fact's model: materialised, the national reports (12M rows) overflowed the memory limit
        into temporary files (the build took 15.1 s; 11.0 s as views)."""
        if not self.temporary:
            return "table"
        return "temp view" if self.path.parent.name == "staging" else "temp table"


def discover(root: Path = SQL_DIR, national: bool = False) -> dict[str, Model]:
    """Every .sql file below root but sql/audit/ and sql/previous/ (and sql/national/ unless
    national); duplicate stems are an error."""
    paths: dict[str, Path] = {}
    skip = NOT_MODELS if national else (*NOT_MODELS, NATIONAL)
    for path in sorted(root.rglob("*.sql")):
        if path.relative_to(root).parts[0] in skip:
            continue
        if path.stem in paths:
            raise ModelError(f"duplicate model name {path.stem!r}: {paths[path.stem]} and {path}")
        paths[path.stem] = path
    models = {}
    for name, path in paths.items():
        sql = path.read_text(encoding="utf-8")
        try:
            tree = sqlglot.parse_one(sql, read="duckdb")
        except sqlglot.errors.ParseError as err:
            raise ModelError(f"{path}: cannot parse: {err}") from None
        if not isinstance(tree, exp.Query):
            raise ModelError(f"{path}: a model is one SELECT, found {type(tree).__name__}")
        ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
        reads = {t.name for t in tree.find_all(exp.Table) if not t.db and t.name not in ctes}
        state_reads = {t.name for t in tree.find_all(exp.Table) if t.db == "state"}
        models[name] = Model(name, path, sql, frozenset(reads & set(paths)), frozenset(state_reads))
    return models


def order(models: dict[str, Model]) -> list[Model]:
    """Models in dependency order; a cycle is an error naming its files."""
    sorter = graphlib.TopologicalSorter({m.name: m.reads for m in models.values()})
    try:
        return [models[name] for name in sorter.static_order()]
    except graphlib.CycleError as err:
        cycle = " -> ".join(str(models[n].path) for n in err.args[1])
        raise ModelError(f"dependency cycle: {cycle}") from None


def create_macros(con: duckdb.DuckDBPyConnection, root: Path = SQL_DIR) -> None:
    """The macros of sql/macros/ (temporary: on this connection only), which models may call."""
    for path in sorted((root / "macros").glob("*.sql")):
        for statement in sqlglot.parse(path.read_text(encoding="utf-8"), read="duckdb"):
            if statement is None:
                continue
            try:
                con.execute(statement.sql(dialect="duckdb"))
            except duckdb.Error as err:
                raise ModelError(f"{path}: {err}") from None


def run(con: duckdb.DuckDBPyConnection, models: list[Model], progress=None, root: Path = SQL_DIR) -> None:
    """Create the macros, then materialise each model in order; stop at the first error with the file path."""
    create_macros(con, root)
    for model in models:
        body = model.sql.strip().rstrip(";")
        try:
            con.execute(f'create or replace {model.kind} "{model.name}" as {body}')
        except duckdb.Error as err:
            raise ModelError(f"{model.path}: {err}") from None
        if progress:
            progress(model)


def audit_sql(name: str, root: Path = SQL_DIR) -> str:
    """A query from sql/audit/ (outside model discovery: it reads a release or the state, builds nothing)."""
    return (root / "audit" / f"{name}.sql").read_text(encoding="utf-8")


def run_sql_file(name: str, root: Path = SQL_DIR) -> list[str]:
    """The statements of a script in sql/ outside the models (e.g. previous/empty.sql)."""
    text = (root / f"{name}.sql").read_text(encoding="utf-8")
    return [s.sql(dialect="duckdb") for s in sqlglot.parse(text, read="duckdb") if s is not None]


def apply_comments(con: duckdb.DuckDBPyConnection, metas: dict) -> None:
    """COMMENT ON every documented table and column (values bound as literals safely), sent as
    one script: a statement each costs a round trip through Python (~190 of them)."""
    statements = []
    for table, meta in metas.items():
        statements.append(f'comment on table "{table}" is {sql_literal(meta.description)}')
        statements += [f'comment on column "{table}"."{column}" is {sql_literal(text)}'
                       for column, text in meta.columns.items()]
    if statements:
        con.execute(";\n".join(statements))


def sql_literal(text: str) -> str:
    """A value as a SQL string literal (quotes doubled), where DuckDB takes no parameter (DDL)."""
    return "'" + text.replace("'", "''") + "'"


def build(con: duckdb.DuckDBPyConnection, root: Path = SQL_DIR, progress=None) -> list[str]:
    """Run every model and comment the published ones; returns the published table names."""
    models = discover(root)
    run(con, order(models), progress, root)
    return finish(con, models, root)


def finish(con: duckdb.DuckDBPyConnection, models: dict[str, Model], root: Path) -> list[str]:
    """Comment the published tables; returns their names."""
    published = [m.name for m in models.values() if not m.temporary]
    apply_comments(con, {k: v for k, v in load_metadata(root).items() if k in published})
    return sorted(published)
