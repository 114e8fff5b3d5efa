"""Dispatches (udrykninger): SPEC section 2.2.

Typed JSON fields (prioritet, kommunekode, the booleans) arrive as their JSON literal text,
so `"1"` (a string) fails where `1` (a number) passes; string fields arrive unquoted.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.engines.polars_engine import DateTime

from schemas.common import (
    DistrictRows,
    integer,
    integer_in,
    iso_ts,
    parsed,
    parsed_instant,
    parses,
    passes,
    rows_ok,
    whole_number,
)

MEASURED_CAUSES = ["husspektakel", "indbrud_igang", "overfald_slagsmaal", "roeveri",
                   "spirituskoersel", "anden_politimaessig"]
UNMEASURED_CAUSES = ["faerdselsuheld", "brand", "eftersoegning", "psykisk_syg", "andet"]
CAUSES = MEASURED_CAUSES + UNMEASURED_CAUSES
KEY = "haendelse_id"
PRIORITIES = [1, 2, 3]  # 1 most urgent
PII: list[str] = []
STRING_FIELDS = ["haendelse_id", "modtaget", "disponeret", "fremme", "afsluttet", "aarsag",
                 "sidst_aendret", "journalnr"]
LITERAL_FIELDS = ["prioritet", "responstid_maalt", "kommunekode", "aflyst"]
FIELDS = ["haendelse_id", "modtaget", "disponeret", "fremme", "afsluttet", "prioritet", "aarsag",
          "responstid_maalt", "kommunekode", "aflyst", "sidst_aendret", "journalnr"]
TIMESTAMPS = ["modtaget", "disponeret", "fremme", "afsluttet", "sidst_aendret"]
PARSE = dict.fromkeys(TIMESTAMPS, iso_ts)


def boolean(col: str) -> pl.Expr:
    text = pl.col(col)
    return pl.when(text == "true").then(True).when(text == "false").then(False)


class RawDispatch(DistrictRows):
    """One call-out as text, before casting."""

    line: int
    haendelse_id: str = pa.Field(nullable=False)
    modtaget: str = pa.Field(nullable=False)
    disponeret: str = pa.Field(nullable=True)
    fremme: str = pa.Field(nullable=True)
    afsluttet: str = pa.Field(nullable=True)
    prioritet: str = pa.Field(nullable=False)
    aarsag: str = pa.Field(nullable=False)
    responstid_maalt: str = pa.Field(nullable=False)
    aflyst: str = pa.Field(nullable=False)
    sidst_aendret: str = pa.Field(nullable=False)
    journalnr: str = pa.Field(nullable=True)
    # each timestamp parsed once before validation (schemas.common.with_parsed, PARSE above)
    modtaget__parsed: DateTime = parsed_instant()
    disponeret__parsed: DateTime = parsed_instant()
    fremme__parsed: DateTime = parsed_instant()
    afsluttet__parsed: DateTime = parsed_instant()
    sidst_aendret__parsed: DateTime = parsed_instant()

    @pa.check("modtaget", "disponeret", "fremme", "afsluttet", "sidst_aendret",
              name="iso_timestamp_with_offset")
    def timestamps(cls, data):
        return parses(data, pl.col(parsed(data.key)))

    @pa.check("prioritet", name="prioritet_integer")
    def priority_int(cls, data):
        return whole_number(data)

    @pa.check("prioritet", name="prioritet_1_2_or_3")
    def priority(cls, data):
        return integer_in(data, PRIORITIES)

    @pa.check("aarsag", name="aarsag_allowed_value")
    def cause(cls, data):
        return passes(data, pl.col(data.key).is_in(CAUSES))

    @pa.check("responstid_maalt", "aflyst", name="json_boolean")
    def booleans(cls, data):
        return parses(data, boolean(data.key))

    @pa.dataframe_check(name="disponeret_not_before_modtaget")
    def dispatched_after_call(cls, data):
        return rows_ok(data, pl.col(parsed("disponeret")) >= pl.col(parsed("modtaget")))

    @pa.dataframe_check(name="fremme_not_before_modtaget")
    def on_scene_after_call(cls, data):
        return rows_ok(data, pl.col(parsed("fremme")) >= pl.col(parsed("modtaget")))

    @pa.dataframe_check(name="fremme_at_most_24h_after_modtaget")
    def on_scene_within_a_day(cls, data):
        return rows_ok(data, pl.col(parsed("fremme")) - pl.col(parsed("modtaget")) <= pl.duration(hours=24))

    @pa.dataframe_check(name="responstid_maalt_only_for_measured_causes")
    def measured_only_six(cls, data):
        return rows_ok(data, ~boolean("responstid_maalt") | pl.col("aarsag").is_in(MEASURED_CAUSES))

    class Config:
        strict = True


def cast(raw: pl.DataFrame) -> pl.DataFrame:
    """Valid rows (with their parsed columns) -> typed staged rows (timestamps as UTC instants)."""
    return raw.select(
        "line",
        "haendelse_id",
        *[pl.col(parsed(c)).alias(c) for c in ("modtaget", "disponeret", "fremme", "afsluttet")],
        integer("prioritet").cast(pl.Int32).alias("prioritet"),
        "aarsag",
        boolean("responstid_maalt").alias("responstid_maalt"),
        integer("kommunekode").cast(pl.Int32).alias("kommunekode"),
        boolean("aflyst").alias("aflyst"),
        pl.col(parsed("sidst_aendret")).alias("sidst_aendret"),
        "journalnr",
    )
