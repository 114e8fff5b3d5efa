"""The four landing sources: where their files live and which schema module governs them."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from schemas import ambassadors, dispatches, outreach, reports
from schemas.common import parsed


@dataclass(frozen=True)
class Source:
    name: str
    folder: str
    suffixes: tuple[str, ...]
    schema: ModuleType
    model: type

    @property
    def key(self) -> str | None:
        return self.schema.KEY

    @property
    def pii(self) -> list[str]:
        return list(self.schema.PII)

    @property
    def raw_columns(self) -> list[str]:
        """The columns kept from the raw file: everything but personal data."""
        return [c for c in self.model.to_schema().columns if c != "line" and c not in self.parsed_columns]

    @property
    def parsed_columns(self) -> list[str]:
        """Columns the validator adds (each costly parse done once), not read from the file."""
        return [parsed(c) for c in self.schema.PARSE]


SOURCES: dict[str, Source] = {
    "reports": Source("reports", "reports", (".csv", ".csv.gz"), reports, reports.RawReport),
    "dispatches": Source("dispatches", "dispatches", (".jsonl", ".jsonl.gz"), dispatches,
                         dispatches.RawDispatch),
    "outreach": Source("outreach", "outreach", (".csv", ".csv.gz", ".xlsx"), outreach,
                       outreach.RawOutreach),
    "ambassadors": Source("ambassadors", "ambassadors", (".csv", ".csv.gz"), ambassadors,
                          ambassadors.RawAmbassador),
}
