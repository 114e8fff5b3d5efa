"""Each model's metadata, in one file beside its SQL (`sql/<folder>/<model>.toml`, as dbt keeps a
model's YAML beside it): description and column comments (COMMENT ON), keys (the audit's
uniqueness and NOT NULL checks, `diff`, the revisions log), the incremental rule (the patcher)
and the audit's expectations. A test fails when a published table or column has no entry.

    description = "..."
    keys = ["month", "municipality_code"]     # the row's key, in table order
    rollup_keys = ["municipality_code"]        # keys that may be NULL: a rollup row ("all")
    null_means = "all"                         # or what else a NULL key says ("not attributable")
    [incremental]                              # optional: how a nightly build patches it
    unique_key = "journal_number"              #   a fact: rows depend only on their key's versions,
    source = "staged_reports"                  #   staged in this state table under
    source_key = "journalnr"                   #   this column; `year` names the fact's year column
    year = "year"
    partition = "year(month)"                  #   or an aggregate: the year a row belongs to, and
    facts = ["fct_reports"]                    #   the facts it reads for the changed years only
    [[expect]]                                 # the audit: bounds or allowed values of a column
    column = "reports"
    min = 0                                    #   also max; or values = [...]; or
    values_from = "schemas.reports:LAW_AREAS"  #   the allowed values the input rules define
    [columns]
    month = "First day of the local month (key)."
    [labels]                                   # optional: Danish labels of the columns people read,
    reports = "Anmeldelser"                    #   in order (the overview, the report, run summaries)

Models without `[incremental]` are rebuilt whole on a nightly build: they read small inputs. A
test builds releases both ways over the same state and requires identical tables.
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


class MetadataError(RuntimeError):
    """A model's .toml cannot be read or names what does not exist; the message names the file."""


@dataclass(frozen=True)
class ModelMeta:
    name: str
    path: Path
    description: str
    columns: dict[str, str]
    keys: tuple[str, ...] = ()
    rollup_keys: tuple[str, ...] = ()
    incremental: dict = field(default_factory=dict)
    expect: tuple[dict, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    null_means: str = "all"  # what a NULL key says (a rollup's "all"; kpi_data_quality: "not attributable")

    def allowed_values(self, rule: dict) -> list:
        """An expectation's allowed values: listed, or taken from the rules that define them."""
        if "values" in rule:
            return list(rule["values"])
        module, _, name = rule["values_from"].partition(":")
        return list(getattr(importlib.import_module(module), name))


KNOWN = {"description", "columns", "keys", "rollup_keys", "null_means", "incremental", "expect", "labels"}


def load(root: Path = SQL_DIR, national: bool = False) -> dict[str, ModelMeta]:
    """The metadata of every model that has a .toml beside its .sql (published models must); the
    national release's own models (sql/national/) only with national."""
    metas = {}
    for path in sorted(root.rglob("*.toml")):
        if not national and path.relative_to(root).parts[0] == "national":
            continue
        if not path.with_suffix(".sql").exists():
            raise MetadataError(f"{path}: no model {path.with_suffix('.sql').name} beside it")
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except tomllib.TOMLDecodeError as err:
            raise MetadataError(f"{path}: {err}") from None
        if unknown := set(doc) - KNOWN:
            raise MetadataError(f"{path}: unknown entries {', '.join(sorted(unknown))} "
                                f"(known: {', '.join(sorted(KNOWN))})")
        if "description" not in doc:
            raise MetadataError(f"{path}: no description")
        meta = ModelMeta(path.stem, path, doc["description"], dict(doc.get("columns", {})),
                         tuple(doc.get("keys", ())), tuple(doc.get("rollup_keys", ())),
                         dict(doc.get("incremental", {})), tuple(doc.get("expect", ())), dict(doc.get("labels", {})),
                         doc.get("null_means", "all"))
        if bad := [k for k in meta.labels if k not in meta.columns]:
            raise MetadataError(f"{path}: labels for columns it does not describe: {bad}")
        if bad := [k for k in meta.rollup_keys if k not in meta.keys]:
            raise MetadataError(f"{path}: rollup_keys {bad} are not among keys")
        metas[meta.name] = meta
    return metas


def labels(model: str, root: Path = SQL_DIR) -> list[tuple[str, str]]:
    """(column, Danish label) of a model's labelled columns, in the order its .toml lists them."""
    return list(load(root)[model].labels.items())
