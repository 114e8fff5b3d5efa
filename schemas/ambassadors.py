"""Safety ambassadors roster: SPEC section 2.4. Each file is a complete snapshot."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from schemas.common import DistrictRows, integer, local_date, parses, rows_ok

KEY = "ambassadoer_id"
FILE_SCOPED_RULES = True  # ids are unique within one roster file, so validate file by file
PII = ["navn"]
PARSE: dict = {}  # nothing costly to parse: checks and cast parse as they go
COLUMNS = ["ambassadoer_id", "lokalomraade", "kommunekode", "aktiv_fra", "aktiv_til", "navn"]


class RawAmbassador(DistrictRows):
    """One roster row as text, before casting."""

    line: int
    ambassadoer_id: str = pa.Field(nullable=False)
    lokalomraade: str = pa.Field(nullable=False)
    aktiv_fra: str = pa.Field(nullable=False)
    aktiv_til: str = pa.Field(nullable=True)

    @pa.check("aktiv_fra", "aktiv_til", name="local_date")
    def dates(cls, data):
        return parses(data, local_date(data.key))

    @pa.dataframe_check(name="ambassadoer_id_unique_in_roster")
    def unique_id(cls, data):
        return rows_ok(data, ~pl.col("ambassadoer_id").is_duplicated())

    @pa.dataframe_check(name="aktiv_til_not_before_aktiv_fra")
    def period_order(cls, data):
        return rows_ok(data, local_date("aktiv_til") >= local_date("aktiv_fra"))

    class Config:
        strict = True


def cast(raw: pl.DataFrame) -> pl.DataFrame:
    return raw.select(
        "line",
        "ambassadoer_id",
        "lokalomraade",
        integer("kommunekode").cast(pl.Int32).alias("kommunekode"),
        local_date("aktiv_fra").alias("aktiv_fra"),
        local_date("aktiv_til").alias("aktiv_til"),
    )
