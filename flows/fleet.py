"""The fleet file (SPEC 8.3): which districts run, with their folders, schedules and the national
warehouse. TOML, named by `--fleet FILE` or POLITIKPI_FLEET, never picked up implicitly. Relative
paths are relative to the file's folder and made absolute when it is read.

    national_warehouse = "national/warehouse"
    [districts.sydsjaelland]
    landing = "sydsjaelland/landing"
    state = "sydsjaelland/state"
    warehouse = "sydsjaelland/warehouse"
    cron = "0 2 * * *"                # optional (default 0 2 * * *)
    timezone = "Europe/Copenhagen"    # optional (default Europe/Copenhagen)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from schemas.reference import load_districts

TOP_KEYS = {"national_warehouse", "districts", "quiet_seconds"}
DISTRICT_KEYS = {"landing", "state", "warehouse", "cron", "timezone"}
REQUIRED = ("landing", "state", "warehouse")
DEFAULT_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "Europe/Copenhagen"
DEFAULT_QUIET_SECONDS = 60


class FleetError(ValueError):
    """The fleet file cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class FleetDistrict:
    code: str
    landing: Path
    state: Path
    warehouse: Path
    cron: str = DEFAULT_CRON
    timezone: str = DEFAULT_TIMEZONE


@dataclass(frozen=True)
class Fleet:
    path: Path
    national_warehouse: Path
    districts: dict[str, FleetDistrict]
    quiet_seconds: float = DEFAULT_QUIET_SECONDS

    def district(self, code: str) -> FleetDistrict:
        if code not in self.districts:
            raise FleetError(f"{self.path}: district {code!r} is not in the fleet (it names "
                             f"{', '.join(sorted(self.districts)) or 'none'})")
        return self.districts[code]


def _path(base: Path, value, where: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise FleetError(f"{where} must be a folder path (a string)")
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def read_fleet(path: Path) -> Fleet:
    """Read and check a fleet file: unknown keys and district codes are errors naming file and key."""
    path = Path(path).resolve()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FleetError(f"fleet file {path} does not exist (write one with `politikpi sample --country`)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FleetError(f"{path}: not a TOML file ({exc})") from None
    base = path.parent
    if unknown := sorted(set(doc) - TOP_KEYS):
        raise FleetError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(TOP_KEYS))})")
    if "national_warehouse" not in doc:
        raise FleetError(f"{path}: national_warehouse is required")
    known = load_districts()
    districts = {}
    entries = doc.get("districts", {})
    if not isinstance(entries, dict) or not entries:
        raise FleetError(f"{path}: [districts.<code>] tables are required (at least one district)")
    for code, entry in entries.items():
        where = f"{path}: districts.{code}"
        if known is not None and code not in known:
            raise FleetError(f"{where}: unknown district code {code!r} (the districts are {', '.join(sorted(known))})")
        if not isinstance(entry, dict):
            raise FleetError(f"{where} must be a table with landing, state and warehouse")
        if unknown := sorted(set(entry) - DISTRICT_KEYS):
            raise FleetError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(DISTRICT_KEYS))})")
        if missing := [k for k in REQUIRED if k not in entry]:
            raise FleetError(f"{where}.{missing[0]} is required")
        folders = {k: _path(base, entry[k], f"{where}.{k}") for k in REQUIRED}
        districts[code] = FleetDistrict(code, **folders, cron=str(entry.get("cron", DEFAULT_CRON)),
                                        timezone=str(entry.get("timezone", DEFAULT_TIMEZONE)))
    quiet = doc.get("quiet_seconds", DEFAULT_QUIET_SECONDS)
    if not isinstance(quiet, int | float) or quiet < 10:
        raise FleetError(f"{path}: quiet_seconds must be a number of seconds, at least 10 (Prefect's shortest "
                         "window for the national trigger)")
    return Fleet(path, _path(base, doc["national_warehouse"], f"{path}: national_warehouse"), districts, float(quiet))


def write_fleet(path: Path, codes: list[str], national: str = "national/warehouse") -> Path:
    """A fleet file naming each district's folders under <code>/ beside it (politikpi sample --country)."""
    lines = ["# politikpi fleet file (SPEC 8.3): the districts' folders, relative to this file.",
             f'national_warehouse = "{national}"', ""]
    for code in codes:
        lines += [f"[districts.{code}]", f'landing = "{code}/landing"', f'state = "{code}/state"',
                  f'warehouse = "{code}/warehouse"', f'cron = "{DEFAULT_CRON}"', f'timezone = "{DEFAULT_TIMEZONE}"', ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
