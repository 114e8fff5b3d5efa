"""Reports (anmeldelser): SPEC section 2.1."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.engines.polars_engine import DateTime

from schemas.common import (
    DistrictRows,
    integer,
    local_ts,
    parsed,
    parsed_instant,
    parses,
    passes,
    rows_ok,
)

LAW_AREAS = ["Straffelov", "Færdselslov", "Særlov"]
KEY = "journalnr"
PII = ["fritekst", "anmelder_cpr"]
COLUMNS = ["journalnr", "anmeldt_tid", "gerningstid_fra", "kommunekode", "lovomraade",
           "overtraedelse", "sidst_aendret", "fritekst", "anmelder_cpr"]
PARSE = {"anmeldt_tid": local_ts, "gerningstid_fra": local_ts, "sidst_aendret": local_ts}


class RawReport(DistrictRows):
    """One report row as text, before casting; personal-data columns already dropped."""

    line: int
    journalnr: str = pa.Field(nullable=False)
    anmeldt_tid: str = pa.Field(nullable=False)
    gerningstid_fra: str = pa.Field(nullable=True)
    lovomraade: str = pa.Field(nullable=False)
    overtraedelse: str = pa.Field(nullable=False)
    sidst_aendret: str = pa.Field(nullable=False)
    # each timestamp parsed once before validation (schemas.common.with_parsed, PARSE above)
    anmeldt_tid__parsed: DateTime = parsed_instant()
    gerningstid_fra__parsed: DateTime = parsed_instant()
    sidst_aendret__parsed: DateTime = parsed_instant()

    @pa.check("journalnr", name="journalnr_pattern")
    def journalnr_pattern(cls, data):
        return passes(data, pl.col(data.key).str.contains(r"^\d{4}-\d{5}-\d{5}-\d{2}$"))

    @pa.check("anmeldt_tid", "gerningstid_fra", "sidst_aendret", name="local_timestamp")
    def timestamps(cls, data):
        return parses(data, pl.col(parsed(data.key)))

    @pa.check("lovomraade", name="lovomraade_allowed_value")
    def law_area(cls, data):
        return passes(data, pl.col(data.key).is_in(LAW_AREAS))

    @pa.check("overtraedelse", name="overtraedelse_at_most_120_chars")
    def offence_length(cls, data):
        return passes(data, pl.col(data.key).str.len_chars() <= 120)

    @pa.dataframe_check(name="gerningstid_fra_not_after_anmeldt_tid")
    def began_before_reported(cls, data):
        return rows_ok(data, pl.col(parsed("gerningstid_fra")) <= pl.col(parsed("anmeldt_tid")))

    class Config:
        strict = True


def cast(raw: pl.DataFrame) -> pl.DataFrame:
    """Valid rows (with their parsed columns) -> typed staged rows (timestamps as UTC instants)."""
    return raw.select(
        "line",
        "journalnr",
        pl.col(parsed("anmeldt_tid")).alias("anmeldt_tid"),
        pl.col(parsed("gerningstid_fra")).alias("gerningstid_fra"),
        integer("kommunekode").cast(pl.Int32).alias("kommunekode"),
        "lovomraade",
        "overtraedelse",
        pl.col(parsed("sidst_aendret")).alias("sidst_aendret"),
    )
