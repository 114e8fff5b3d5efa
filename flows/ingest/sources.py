"""The four landing sources: where their files live and which schema module governs them. The
schema modules (Pandera) are imported when first used: scanning the landing folder needs none."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Source:
    name: str
    folder: str
    suffixes: tuple[str, ...]
    module: str  # schemas.<module>
    model_name: str  # its raw model

    @property
    def schema(self) -> ModuleType:
        return importlib.import_module(f"schemas.{self.module}")

    @property
    def model(self) -> type:
        return getattr(self.schema, self.model_name)

    @property
    def key(self) -> str | None:
        return self.schema.KEY

    @property
    def pii(self) -> list[str]:
        return list(self.schema.PII)

    @property
    def raw_columns(self) -> list[str]:
        """The columns kept from the raw file: the model's, which declares no personal-data column (and
        never one of PII, should a field be added by mistake)."""
        return [c for c in self.model.to_schema().columns
                if c != "line" and c not in self.parsed_columns and c not in self.pii]

    @property
    def parsed_columns(self) -> list[str]:
        """Columns the validator adds (each costly parse done once), not read from the file."""
        from schemas.common import parsed

        return [parsed(c) for c in self.schema.PARSE]


SOURCES: dict[str, Source] = {
    "reports": Source("reports", "reports", (".csv", ".csv.gz"), "reports", "RawReport"),
    "dispatches": Source("dispatches", "dispatches", (".jsonl", ".jsonl.gz"), "dispatches", "RawDispatch"),
    "outreach": Source("outreach", "outreach", (".csv", ".csv.gz", ".xlsx"), "outreach", "RawOutreach"),
    "ambassadors": Source("ambassadors", "ambassadors", (".csv", ".csv.gz"), "ambassadors", "RawAmbassador"),
}
