"""Parsing expressions shared by the source schemas.

Raw values arrive as text. A check passes a NULL (requiredness is the Field's job, reported
as `<column>_required`), so every failing row names exactly the rules it broke.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas.reference import municipality_codes

TZ = "Europe/Copenhagen"
LOCAL_TS_PATTERN = r"^\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2}$"
ISO_TS_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$"
LOCAL_DATE_PATTERN = r"^\d{2}-\d{2}-\d{4}$"


def local_ts(col: str) -> pl.Expr:
    """DD-MM-YYYY HH:MM:SS in Danish local time -> UTC instant; the repeated autumn hour
    takes the earlier (summer) offset, a spring-gap time that does not exist gives NULL."""
    text = pl.col(col)
    parsed = (
        text.str.strptime(pl.Datetime("us"), "%d-%m-%Y %H:%M:%S", strict=False)
        .dt.replace_time_zone(TZ, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
    )
    return pl.when(text.str.contains(LOCAL_TS_PATTERN)).then(parsed)


def iso_ts(col: str) -> pl.Expr:
    """ISO 8601 with a UTC offset (or Z) -> UTC instant; no offset gives NULL."""
    text = pl.col(col)
    parsed = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%#z", strict=False, time_zone="UTC")
    return pl.when(text.str.contains(ISO_TS_PATTERN)).then(parsed)


def local_date(col: str) -> pl.Expr:
    """DD-MM-YYYY -> date."""
    text = pl.col(col)
    return pl.when(text.str.contains(LOCAL_DATE_PATTERN)).then(
        text.str.strptime(pl.Date, "%d-%m-%Y", strict=False)
    )


def integer(col: str) -> pl.Expr:
    """A whole number written as digits (JSON or CSV), else NULL."""
    text = pl.col(col)
    return pl.when(text.str.contains(r"^-?\d{1,9}$")).then(text.cast(pl.Int64, strict=False))


PARSED_SUFFIX = "__parsed"


def parsed(col: str) -> str:
    """Name of the column holding `col` parsed once, before validation (NULL if it does not parse)."""
    return col + PARSED_SUFFIX


def with_parsed(raw: pl.DataFrame, parse: dict) -> pl.DataFrame:
    """Raw text plus each costly parse computed once, so checks and the cast share it."""
    return raw.with_columns(**{parsed(col): fn(col) for col, fn in parse.items()}) if parse else raw


def parsed_instant() -> pa.Field:
    """A raw model's parsed-timestamp column: a UTC instant, or NULL where the text does not parse."""
    return pa.Field(nullable=True, dtype_kwargs={"time_zone": "UTC", "time_unit": "us"})


def passes(data: pa.PolarsData, ok: pl.Expr) -> pl.LazyFrame:
    """A column check result: NULL raw values pass (requiredness is checked elsewhere)."""
    return data.lazyframe.select(pl.col(data.key).is_null() | ok.fill_null(False))


def parses(data: pa.PolarsData, parsed: pl.Expr) -> pl.LazyFrame:
    return passes(data, parsed.is_not_null())


def whole_number(data: pa.PolarsData) -> pl.LazyFrame:
    """The type rule of an integer column (`<column>_integer`): a formula, a decimal or text fails
    here, and only here: the column's value rules pass what is not a whole number."""
    return parses(data, integer(data.key))


def integer_in(data: pa.PolarsData, allowed) -> pl.LazyFrame:
    """A whole number among the allowed values; what is not a whole number is whole_number's to report."""
    number = integer(data.key)
    return passes(data, number.is_null() | number.is_in(allowed))


def in_district(data: pa.PolarsData) -> pl.LazyFrame:
    return integer_in(data, municipality_codes())


def rows_ok(data: pa.PolarsData, ok: pl.Expr) -> pl.LazyFrame:
    """A cross-field check: rows where an operand is missing or unparsable pass here."""
    return data.lazyframe.select(ok.fill_null(True).alias("ok"))


def rule_names(failure_cases: pl.DataFrame, model_name: str) -> pl.DataFrame:
    """Pandera failure cases -> one row per failing row index with its sorted rule names."""
    named = failure_cases.filter(pl.col("index").is_not_null()).with_columns(
        rule=pl.when(pl.col("check") == "not_nullable")
        .then(pl.col("column") + "_required")
        .when((pl.col("column") == model_name) | pl.col("check").str.starts_with(pl.col("column")))
        .then(pl.col("check"))
        .otherwise(pl.col("column") + "_" + pl.col("check"))
    )
    return named.group_by("index").agg(pl.col("rule").unique().sort().str.join("; ").alias("rules"))


class DistrictRows(pa.DataFrameModel):
    """A raw model whose rows name a municipality of the district (`kommunekode`): the column and
    its two rules, written once for every source that has it."""

    kommunekode: str = pa.Field(nullable=False)

    # Named as the rules they are: pandera reports an inherited check by its method's name.
    @pa.check("kommunekode", name="kommunekode_integer")
    def kommunekode_integer(cls, data):
        return whole_number(data)

    @pa.check("kommunekode", name="kommunekode_in_district")
    def kommunekode_in_district(cls, data):
        return in_district(data)
