"""Apply the source's Pandera model to raw text rows: valid rows are cast, the rest quarantined."""

from __future__ import annotations

import pandera.errors
import polars as pl

from flows.ingest.sources import Source
from schemas.common import rule_names, with_parsed

QUARANTINE_SCHEMA = {
    "line": pl.Int64, "kind": pl.String, "rules": pl.String, "record_key": pl.String,
    "raw_values": pl.String, "length": pl.Int64, "sha256": pl.String,
}


def validate_rows(source: Source, raw: pl.DataFrame, carry: tuple[str, ...] = ()) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Raw text rows -> (typed valid rows, quarantined rows naming every rule they broke).

    `carry` columns (e.g. which file a row came from) are not validated and are kept on both.
    Costly parses (timestamps) are computed once, checked by the rules and reused by the cast."""
    raw = with_parsed(raw, source.schema.PARSE)
    try:
        source.model.validate(raw.drop(carry), lazy=True)
        failing = pl.DataFrame(schema={"index": pl.Int64, "rules": pl.String})
    except pandera.errors.SchemaErrors as err:
        cases = err.failure_cases
        unplaced = cases.filter(pl.col("index").is_null())
        if len(unplaced):  # a schema-level failure means our reader is wrong, not the data
            raise RuntimeError(f"{source.name}: schema failure {unplaced.row(0, named=True)}") from None
        failing = rule_names(cases, source.model.__name__).with_columns(pl.col("index").cast(pl.Int64))
    indexed = raw.with_row_index("index").with_columns(pl.col("index").cast(pl.Int64))
    bad = indexed.join(failing, on="index", how="inner").sort("index")
    good = indexed.join(failing, on="index", how="anti").sort("index").drop("index")
    key = pl.col(source.key) if source.key else pl.lit(None, dtype=pl.String)
    quarantined = bad.select(
        *carry,
        "line",
        kind=pl.lit("row"),
        rules="rules",
        record_key=key,
        raw_values=pl.struct(source.raw_columns).struct.json_encode(),
        length=pl.lit(None, dtype=pl.Int64),
        sha256=pl.lit(None, dtype=pl.String),
    )
    return source.schema.cast(good.drop(carry)).hstack(good.select(carry)), quarantined


def broken_to_quarantine(broken: pl.DataFrame) -> pl.DataFrame:
    """Lines that are not records: only line, reason, length and hash are kept."""
    return broken.select(
        "line",
        kind=pl.lit("line"),
        rules="reason",
        record_key=pl.lit(None, dtype=pl.String),
        raw_values=pl.lit(None, dtype=pl.String),
        length="length",
        sha256="sha256",
    )
