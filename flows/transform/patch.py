"""Patch a copy of the previous release up to the current state: only what the changed input
files can move is recomputed (the `[incremental]` rule in a model's .toml says which models and how), with the very
same model SQL as a full build (flows/transform/runner.py). Plain Python, no Prefect."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from flows.transform.models import load as load_metadata
from flows.transform.runner import SQL_DIR, ModelError, create_macros, discover, finish, order


@dataclass(frozen=True)
class Patch:
    """A published model a nightly build patches instead of rebuilding (its `[incremental]` rule)."""

    name: str
    unique_key: str | None = None  # a fact: rows depend only on the staged versions of their key
    source: str | None = None  # the state table holding those versions...
    source_key: str | None = None  # ...under this column
    year: str | None = None  # the fact's year column
    partition: str | None = None  # an aggregate: the year a row belongs to
    facts: tuple[str, ...] = ()  # the facts it reads, for the changed years only


def load_patches(root: Path = SQL_DIR) -> dict[str, Patch]:
    """The models whose .toml has an `[incremental]` rule."""
    try:
        return {name: Patch(name, **{k: tuple(v) if k == "facts" else v for k, v in m.incremental.items()})
                for name, m in load_metadata(root).items() if m.incremental}
    except TypeError as err:
        raise ModelError(f"{root}: [incremental]: {err}") from None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def patch(con: duckdb.DuckDBPyConnection, changed: list[str], root: Path = SQL_DIR, progress=None) -> list[str]:
    """Bring a copy of the previous release (the default database, `release`) up to the state
    attached as `state_db`, re-running only what the changed input files can move.

    Facts are recomputed for the keys the changed files touch, year-partitioned aggregates for
    the years those keys fall in; every other model is rebuilt whole. The state is seen through
    views in a `state` catalog, the facts' sources only for the touched keys, so the models'
    SQL is the same as for a full build."""
    models = discover(root)
    patches = load_patches(root)
    facts = {n: p for n, p in patches.items() if p.unique_key}
    unknown = set(patches) - {m.name for m in models.values() if not m.temporary}
    if unknown:
        raise ModelError(f"{root}: [incremental] on a model that is not published: {', '.join(sorted(unknown))}")
    create_macros(con, root)
    con.execute("create or replace temp table _changed_files as select unnest(?::varchar[]) as identity", [changed])
    filters = {}
    for name, p in facts.items():
        con.execute(f"""
            create or replace temp table {_ident('_keys_' + name)} as
            select {_ident(p.source_key)} as key from state_db.main.{_ident(p.source)}
            where file_identity in (select identity from _changed_files)
            union
            select {_ident(p.unique_key)} from release.main.{_ident(name)}
            where file_identity in (select identity from _changed_files)""")
        filters[p.source] = f"where {_ident(p.source_key)} in (select key from {_ident('_keys_' + name)})"
    con.execute("attach if not exists ':memory:' as state")
    tables = [t for (t,) in con.execute(
        "select table_name from duckdb_tables() where database_name = 'state_db'").fetchall()]

    def state_views(filtered: bool) -> None:
        """Build-only models (the facts' staging) see the facts' sources for the touched keys only;
        a published model reading the state directly (e.g. kpi_data_quality) sees it whole."""
        con.execute(";\n".join(f"create or replace view state.main.{_ident(table)} as select * from "
                                f"state_db.main.{_ident(table)} {filters.get(table, '') if filtered else ''}"
                                for table in tables))

    state_views(filtered=True)
    partial: set[str] = set()  # build-only models that see the filtered sources
    years: dict[str, set[int]] = {}
    for model in order(models):
        if model.state_reads & set(filters):
            state_views(filtered=model.temporary)
        if model.temporary and (model.state_reads & set(filters) or model.reads & partial):
            partial.add(model.name)
        body = model.sql.strip().rstrip(";")
        target = f"release.main.{_ident(model.name)}"
        p = patches.get(model.name)
        try:
            if model.name in facts:
                years[model.name] = _patch_fact(con, p, body, target)
            elif model.reads & partial and model.name not in partial:
                raise ModelError(f"{model.path}: reads {', '.join(sorted(model.reads & partial))}, which a "
                                 "patch holds only in part; only a fact (`[incremental]` unique_key) may")
            elif p is not None and p.partition:
                changed_years = sorted(set().union(*(years.get(f, set()) for f in p.facts)))
                if changed_years:
                    _recompute_years(con, p, body, target, changed_years, patches)
            else:
                # Temporary models are materialised here, never views: the state views switch
                # between filtered and whole from model to model (state_views above).
                kind = "temp table" if model.temporary else "table"
                con.execute(f"create or replace {kind} {_ident(model.name)} as {body}")
        except duckdb.Error as err:
            raise ModelError(f"{model.path}: {err}") from None
        if progress:
            progress(model)
    return finish(con, models, root)


def _patch_fact(con: duckdb.DuckDBPyConnection, p: Patch, body: str, target: str) -> set[int]:
    """Replace the touched keys' rows; returns the years of the rows removed and added."""
    key, keys, year = _ident(p.unique_key), _ident("_keys_" + p.name), _ident(p.year)
    con.execute(f"create or replace temp table _patch as {body}")
    years = {y for (y,) in con.execute(
        f"select distinct {year} from {target} where {key} in (select key from {keys}) "
        f"union select distinct {year} from _patch").fetchall() if y is not None}
    con.execute(f"delete from {target} where {key} in (select key from {keys})")
    con.execute(f"insert into {target} by name select * from _patch")
    con.execute("drop table _patch")
    return years


def _recompute_years(con: duckdb.DuckDBPyConnection, p: Patch, body: str, target: str, changed_years: list[int],
                     patches: dict[str, Patch]) -> None:
    """Delete the model's rows of the changed years and recompute them from those years' facts."""
    listed = ", ".join(str(int(y)) for y in changed_years)
    for fact in p.facts:  # the model reads the fact by its bare name: a temp view shadows it
        con.execute(f"create or replace temp view {_ident(fact)} as "
                    f"select * from release.main.{_ident(fact)} where {_ident(patches[fact].year)} in ({listed})")
    try:
        con.execute(f"delete from {target} where {p.partition} in ({listed})")
        con.execute(f"insert into {target} by name select * from ({body})")
    finally:
        for fact in p.facts:
            con.execute(f"drop view if exists temp.main.{_ident(fact)}")
