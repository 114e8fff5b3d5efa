"""Outreach activity log (borgernært politi): SPEC section 2.3."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas.common import DistrictRows, integer, local_date, parses, passes, whole_number

# The allowed values of `aktivitet`, with the Danish label the overview and the report print.
ACTIVITIES = {
    "mobil_politistation": "Mobil politistation (udkørsler)", "tryghedsopfoelgning": "Tryghedsopfølgninger",
    "borgerraadgiver": "Borgerrådgiver-henvendelser", "sub_besoeg": "SUB-besøg",
    "foredrag": "Bestil en betjent (foredrag)", "faerdselskontrol": "Bestilte færdselskontroller",
}
KEY = None
PII = ["note"]
PARSE: dict = {}  # nothing costly to parse: checks and cast parse as they go
COLUMNS = ["dato", "kommunekode", "aktivitet", "antal", "lokalomraade", "note"]


class RawOutreach(DistrictRows):
    """One activity-log row as text, before casting."""

    line: int
    dato: str = pa.Field(nullable=False)
    aktivitet: str = pa.Field(nullable=False)
    antal: str = pa.Field(nullable=False)
    lokalomraade: str = pa.Field(nullable=True)

    @pa.check("dato", name="dato_local_date")
    def date(cls, data):
        return parses(data, local_date(data.key))

    @pa.check("aktivitet", name="aktivitet_allowed_value")
    def activity(cls, data):
        return passes(data, pl.col(data.key).is_in(list(ACTIVITIES)))

    @pa.check("antal", name="antal_integer")
    def count_int(cls, data):
        return whole_number(data)

    @pa.check("antal", name="antal_at_least_1")
    def count(cls, data):
        return passes(data, integer(data.key).is_null() | (integer(data.key) >= 1))

    class Config:
        strict = True


def cast(raw: pl.DataFrame) -> pl.DataFrame:
    return raw.select(
        "line",
        local_date("dato").alias("dato"),
        integer("kommunekode").cast(pl.Int32).alias("kommunekode"),
        "aktivitet",
        integer("antal").cast(pl.Int32).alias("antal"),
        "lokalomraade",
    )
